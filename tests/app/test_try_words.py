"""Studio.try_words (the demo view's rules): words parsed and bounded, the image read
within the limits before it is decoded, each word's map and the segmentation they
make, the embeddings cached per image and word set; no project anywhere."""
import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_bounds import blank_png
from common import limits
from segui.errors import UserError
from segui.handlers import DEMO_DIR
from segui.screens.try_words import view_html
from segui.try_words import TRY_MAX_SIDE, TRY_MAX_WORDS, parse_words, read_try_image

DEMO_IMAGE = DEMO_DIR / "0016E5_08009.jpg"


def test_words_are_parsed_and_bounded():
    assert parse_words(" sky,  road ,,white   van\nperson ") == ["sky", "road", "white van", "person"]
    for bad in ("", " , ,", ",".join(f"w{i}" for i in range(TRY_MAX_WORDS + 1)), "car, Car", "x" * 401,
                "sky, a\x00b"):
        with pytest.raises(UserError):
            parse_words(bad)


def test_the_image_is_bounded_before_it_is_decoded(tmp_path, monkeypatch):
    from .test_uploads_bounds import NoDecode
    big = tmp_path / "big.png"
    big.write_bytes(blank_png(12000, 10000))       # 120 MP declared, ~120 KB of bytes
    spy = NoDecode(monkeypatch)
    with pytest.raises(UserError, match="megapixels"):
        read_try_image(big)
    assert spy.calls == 0
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(UserError, match="over"):
        read_try_image(DEMO_IMAGE)
    not_image = tmp_path / "x.png"
    not_image.write_bytes(b"hello")
    monkeypatch.undo()
    with pytest.raises(UserError, match="not an image"):
        read_try_image(not_image)


def test_a_big_photo_is_scaled_to_the_view(tmp_path):
    p = tmp_path / "wide.png"
    Image.new("RGB", (3000, 600), (90, 120, 200)).save(p)
    rgb = read_try_image(p)
    assert rgb.shape == (round(600 * TRY_MAX_SIDE / 3000), TRY_MAX_SIDE, 3)


def test_each_word_has_its_map_and_the_words_segment_together(studio):
    st = studio                                     # no project at all
    assert st.store.list_projects() == []
    img = read_try_image(DEMO_IMAGE)
    r = st.try_words(img, "sky, road, building, tree, car")
    h, w = img.shape[:2]
    assert r["words"] == ["sky", "road", "building", "tree", "car"] and r["size"] == (h, w)
    assert len(r["maps"]) == 5 and all(m.shape == (h, w) and m.dtype == np.uint8 for m in r["maps"])
    cm = r["class_map"]
    assert cm.shape == (h, w) and cm.max() < 5
    assert abs(sum(r["shares"]) - 1) < 1e-9
    assert np.allclose(r["shares"], np.bincount(cm.ravel(), minlength=5) / cm.size)
    # the segmentation is the word most likely at each pixel: its map is the highest there
    stack = np.stack(r["maps"]).astype(int)
    assert (np.take_along_axis(stack, cm[None].astype(int), 0)[0] >= stack.max(0) - 1).all()
    sky = r["maps"][0]
    assert sky[: h // 5].mean() > 10 * max(1.0, sky[-h // 5:].mean())
    road = r["maps"][1]
    assert road[-h // 5:].mean() > road[: h // 5].mean() + 100
    assert r["cached"] is False and len(set(r["colors"])) == 5
    again = st.try_words(img, ["sky", "road", "building", "tree", "car"])
    assert again["cached"] is True and np.array_equal(again["class_map"], cm)
    other = st.try_words(img, "sky, road")          # another word set: another forward pass
    assert other["cached"] is False and len(other["maps"]) == 2
    assert st.store.list_projects() == []           # nothing stored


def test_the_rest_left_out_of_a_few_words(studio):
    """"car, person" on a street: painted as the nearest word, the road and the sky are
    "car"; with the rest left out, hidden scene words take them and the cars stay cars."""
    img = read_try_image(DEMO_IMAGE)
    closed = studio.try_words(img, "car, person")
    assert closed["none"] == 0 and closed["hidden"] == [] and closed["shares"][0] > 0.4
    open_ = studio.try_words(img, "car, person", others_unlabelled=True)
    assert "road" in open_["hidden"] and "sky" in open_["hidden"] and "car" not in open_["hidden"]
    cm = open_["class_map"]
    assert cm.max() == 2 and open_["none"] > 0.8                 # 2: none of the words
    assert abs(sum(open_["shares"]) + open_["none"] - 1) < 1e-9
    assert np.allclose(open_["shares"] + [open_["none"]], np.bincount(cm.ravel(), minlength=3) / cm.size)
    cars = closed["class_map"] == 0
    assert 0 < open_["shares"][0] < closed["shares"][0] and (cm[cars] == 0).mean() < 0.3
    assert len(open_["maps"]) == 2 and open_["cached"] is False  # another word set: another forward pass
    assert open_["rest_out"] and not closed["rest_out"]
    assert "none of them" in view_html(open_) and "none of them" not in view_html(closed)
    # ticked, but every scene word sits close to a typed one (no hidden word): the view says so
    nothing_hidden = {**closed, "rest_out": True}
    assert "too close" in view_html(nothing_hidden) and "too close" not in view_html(closed)


def test_the_file_route_and_the_demo(studio):
    with pytest.raises(UserError, match="drop an image"):
        studio.try_words_file(None, "sky")
    with pytest.raises(UserError, match="words"):
        studio.try_words_file(DEMO_IMAGE, " , ")
    img, words = studio.try_words_demo()
    assert img.shape == (360, 480, 3) and len(parse_words(words)) >= 3
    r = studio.try_words_file(DEMO_IMAGE, words)
    assert r["words"] == parse_words(words)


def test_the_caches_stay_bounded(studio):
    from segui.try_words import TRY_CACHED
    st = studio
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    st.try_words(img, "sky, road")
    locks = len(st._work_locks)
    for words in ("road, sky", "sky, tree", "tree, road", "sky, road, tree", "road, tree, sky"):
        assert st.try_words(img, words)["cached"] is False
    assert len(st._try_cache()) == TRY_CACHED < 2 * 6               # 6 word sets: 12 entries made, 8 kept
    assert len(st._work_locks) == locks                              # no lock per typed word set
    assert st.try_words(img, "road, tree, sky")["cached"] is True
