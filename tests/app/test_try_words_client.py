"""The Try words view and the Model screen's new views through gradio_client: the
demo works on an app with no project at all; the version views on the demo project."""
import json

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from benchmarks.bench_bounds import blank_png
from segui.handlers import DEMO_DIR, DEMO_PROJECT
from segui.screens.try_words import image_path_in
from segui.try_words import TRY_DEMO_WORDS, TRY_MAX_WORDS, read_try_image

from .conftest import make_studio, served

DEMO_IMAGE = DEMO_DIR / "0016E5_08009.jpg"
WORDS = ["sky", "road", "building", "tree", "car"]


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """The app on an empty database: no project at all."""
    st = make_studio(tmp_path_factory.mktemp("try-words"))
    with served(st) as url:
        yield st, url


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    st = make_studio(tmp_path_factory.mktemp("views"), demo=True)
    with served(st) as url:
        yield st, url
        st.wait_idle(30)


def test_try_words_without_a_project(bare):
    st, url = bare
    assert st.store.list_projects() == []
    c = Client(url, verbose=False)
    view, info = c.predict(handle_file(str(DEMO_IMAGE)), ", ".join(WORDS), api_name="/try_words")
    assert info["words"] == WORDS and info["size"] == [360, 480] and abs(sum(info["shares"]) - 1) < 1e-9
    assert view.count('class="tw-tile"') == 5 and all(f'data-word="{w}"' in view for w in WORDS)
    assert view.count("data:image/png;base64,") == 5 + 1          # a heat layer per word and the mask
    # the same as Studio computes it (and from its cache: the app already embedded this image and these words)
    r = st.try_words(read_try_image(DEMO_IMAGE), WORDS)
    assert r["cached"] and np.allclose(r["shares"], info["shares"])
    sky = dict(zip(info["words"], info["shares"]))["sky"]
    assert 0.02 < sky < 0.3 and max(info["shares"]) == dict(zip(info["words"], info["shares"]))["road"]
    # typed text is escaped in the page
    view, info = c.predict(handle_file(str(DEMO_IMAGE)), "<b>sky</b>, road", api_name="/try_words_submit")
    assert "<b>sky</b>" not in view and "&lt;b&gt;sky&lt;/b&gt;" in view
    assert st.store.list_projects() == []


def test_try_words_with_the_rest_left_out(bare):
    _, url = bare
    c = Client(url, verbose=False)
    view, info = c.predict(handle_file(str(DEMO_IMAGE)), "car, person", True, api_name="/try_words")
    assert info["none"] > 0.5 and "road" in info["hidden"] and "none of them" in view
    assert "common scene words" in view and "among the words typed and the scene words" in view
    view, info = c.predict(handle_file(str(DEMO_IMAGE)), "car, person", False, api_name="/try_words")
    assert info["none"] == 0 and "none of them" not in view


def test_try_words_refusals(bare, tmp_path):
    _, url = bare
    c = Client(url, verbose=False)
    too_many = ", ".join(f"w{i}" for i in range(TRY_MAX_WORDS + 1))
    with pytest.raises(Exception, match=f"at most {TRY_MAX_WORDS} words"):
        c.predict(handle_file(str(DEMO_IMAGE)), too_many, api_name="/try_words")
    big = tmp_path / "big.png"
    big.write_bytes(blank_png(12000, 10000))                      # 120 MP declared
    with pytest.raises(Exception, match="megapixels"):
        c.predict(handle_file(str(big)), "sky, road", api_name="/try_words")
    with pytest.raises(Exception, match="drop an image"):
        c.predict(None, "sky", api_name="/try_words")


def test_the_demo_button_gives_an_image_and_words(bare):
    _, url = bare
    c = Client(url, verbose=False)
    img, words = c.predict(api_name="/try_words_demo")
    assert words == TRY_DEMO_WORDS
    assert np.array_equal(np.asarray(Image.open(img).convert("RGB")), read_try_image(DEMO_IMAGE))


def test_an_inline_image_is_not_decoded_by_gradio():
    class Payload:
        url, path = "data:image/png;base64,AAAA", None
    with pytest.raises(Exception, match="file upload"):
        image_path_in(Payload())
    Payload.url, Payload.path = "/gradio_api/file=x.png", "/tmp/gradio/x.png"
    assert image_path_in(Payload()) == "/tmp/gradio/x.png" and image_path_in(None) is None


def plot_data(p) -> dict:
    """A gr.Plot output as the client gets it: Plotly's JSON."""
    return json.loads(p["plot"]) if isinstance(p, dict) else json.loads(p)


def array(v) -> np.ndarray:
    """A Plotly JSON array: a list, or {"dtype", "bdata" (base64), "shape"} (plotly's binary form)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = v.get("shape")
        return a.reshape([int(n) for n in str(shape).split(",")]) if shape else a
    return np.asarray(v)


def test_model_views_and_compare(demo):
    st, url = demo
    c = Client(url, verbose=False)
    c.predict(api_name="/init")
    ctext, cplot, iou, image_dd, left, right, text, lmap, sim = c.predict(DEMO_PROJECT, api_name="/model_views")
    assert "No submission recorded" in ctext        # the demo's labelled images came without a correction record
    assert plot_data(cplot)["data"] == []
    fig = plot_data(iou)
    names = [t["name"] for t in fig["data"]]
    assert names[-1] == "mIoU" and "road" in names
    road = array(fig["data"][names.index("road")]["y"])
    assert len(road) == 1 and road[0] > 0.9
    p = st.store.get_project(DEMO_PROJECT)
    active = st.model_version(p.id).id
    assert left["value"] == right["value"] == active
    image_ids = [v for _, v in image_dd["choices"]]
    assert image_dd["value"] == image_ids[0] and set(image_ids) == {im.id for im in st.store.list_images(p.id)}
    assert "too close" in text or "No two words" in text
    words = plot_data(lmap)["data"][-1]["text"]
    assert words == p.class_names
    z = array(plot_data(sim)["data"][0]["z"])
    assert z.shape == (11, 11) and np.allclose(np.diag(z), 1)
    # a second version whose stored prediction differs on a block: the slider shows both
    v2 = st.store.add_model_version(p.id, st.model_version(p.id).weights_dir, name="other")
    iid = image_ids[0]
    a = st.predict(DEMO_PROJECT, iid)
    b = a.copy()
    b[:40, :60] = p.classes[0].index if a[0, 0] != p.classes[0].index else p.classes[1].index
    st.store.save_prediction(iid, v2.id, b, 0.2)
    c.predict(DEMO_PROJECT, api_name="/model_views")      # as the page does when the tab opens: v2 offered
    pair, info = c.predict(DEMO_PROJECT, iid, active, v2.id, api_name="/compare_versions")
    left_img, right_img = (np.asarray(Image.open(x["path"] if isinstance(x, dict) else x).convert("RGB"))
                           for x in (pair if isinstance(pair, (list, tuple)) else pair["value"]))
    assert left_img.shape == right_img.shape == (*a.shape, 3)
    diff = np.abs(left_img.astype(int) - right_img.astype(int)).sum(-1) > 0
    assert diff[:40, :60].mean() > 0.9 and diff[40:, 60:].mean() < 0.01   # what differs is the block only
    assert f"{int((a != b).sum()):,} pixels" in info
    # an image of another project is refused, whatever the picker offered this session
    st.create_project("other", "sky\nroad")
    o = st.store.add_image("other", sorted(DEMO_DIR.glob("*.jpg"))[0], "o.jpg")
    ov = st.model_version("other").id
    with pytest.raises(Exception, match="not in the list of choices"):
        c.predict(DEMO_PROJECT, o.id, active, v2.id, api_name="/compare_versions")
    c.predict(api_name="/init")                             # the project picker offers "other" too
    c.predict("other", api_name="/model_views")           # and the image picker its image
    with pytest.raises(Exception, match="not in project"):
        c.predict(DEMO_PROJECT, o.id, ov, ov, api_name="/compare_versions")
