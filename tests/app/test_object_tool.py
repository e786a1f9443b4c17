"""Studio.click_object: the O tool's server side on a demo image with the shipped model
(embeddings shared with the word heatmaps, click prefixes cached, bad clicks refused)."""
import numpy as np
import pytest

from segui.errors import UserError
from segui.handlers import DEMO_PROJECT
from segui.object_tool import OBJECT_STATES, object_scale


def test_a_click_on_the_road_finds_the_road_and_refines(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[0]
    pred = st.store.get_prediction(info.id).class_map
    x, y = info.width // 2, info.height - 20                 # the road, bottom centre
    warm = st.warm_object(info.id)
    assert warm["cached"] is False
    r = st.click_object(info.id, [[x, y, 1]])
    m = r["mask"]
    assert r["cached"] is True and m.shape == (info.height, info.width) and m[y, x]
    assert r["pixels"] == m.sum() and r["clicks"] == 1
    # mostly the predicted region of the class under the click, and connected to it
    region = pred == pred[y, x]
    assert (m & region).sum() > 0.8 * m.sum()
    assert not m[:20].any()                                 # not the sky
    # a negative click inside takes a part away, the positive click's pixel stays
    ys, xs = np.nonzero(m)
    k = int(np.argmax(np.abs(xs - x)))
    r2 = st.click_object(info.id, [[x, y, 1], [int(xs[k]), int(ys[k]), 0]])
    assert r2["pixels"] < r["pixels"] and not r2["mask"][ys[k], xs[k]] and r2["mask"][y, x]
    # the same clicks again: the same mask (from the prefix cache)
    again = st.click_object(info.id, [[x, y, 1], [int(xs[k]), int(ys[k]), 0]])
    np.testing.assert_array_equal(again["mask"], r2["mask"])


def test_the_tool_sees_a_small_image_enlarged_and_the_heatmaps_do_not(demo_studio):
    """Its embeddings are made with the image at twice its size (a grid of 2 px: thin
    objects take fewer clicks, BENCHMARKS.md), the word heatmaps' stay at 4 px."""
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[2]
    st.warm_object(info.id)
    (feat, _), = [v for key, v in st._object_cache().items() if key[0] == info.id]
    assert (feat.h, feat.w) == (info.height // 2, info.width // 2) and feat.size == (info.height, info.width)
    emb = st._heat_inputs(info.id)[3]
    assert tuple(emb.pixels.shape[1:]) == (info.height // 4, info.width // 4)
    assert object_scale(360, 480) == 2.0 and object_scale(1000, 1000) == 1.0 and object_scale(600, 800) == pytest.approx(1.443, abs=1e-3)


def test_bad_clicks_are_refused(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[0]
    for clicks, msg in [([], "click on the object"), (None, "click on the object"),
                        ([[5, 5, 0]], "positive click"), ([[info.width, 0, 1]], "outside"),
                        ([[1, 2]], r"\[x, y, positive\]"), ([["a", 2, 1]], r"\[x, y, positive\]"),
                        ([[1, 1, 1]] * 65, "at most 64")]:
        with pytest.raises(UserError, match=msg):
            st.click_object(info.id, clicks)


def test_the_prefix_cache_is_bounded(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[1]
    for k in range(OBJECT_STATES // 60 + 2):     # each call adds up to 64 prefixes
        st.click_object(info.id, [[10 + k, 300, 1]] + [[100 + j, 10 + k, 0] for j in range(63)])
    (_, states), = [v for key, v in st._object_cache().items() if key[0] == info.id]
    assert len(states) <= OBJECT_STATES


def test_a_big_photo_is_clicked_at_the_predictions_size(demo_studio):
    """A 1920x1440 upload (2.8 megapixels) is worked on at predict_size, as its
    prediction is, and the mask comes back at full size: the same object as the same
    photo at that size gives, scaled up; each click's pixel keeps its state."""
    from PIL import Image

    from segui.handlers import DEMO_DIR
    from segui.predicting import PREDICT_MAX_PIXELS, predict_size

    from .conftest import png_bytes

    st = demo_studio
    photo = Image.open(sorted(DEMO_DIR.glob("*.jpg"))[0]).convert("RGB")
    big = st.store.add_image(DEMO_PROJECT, png_bytes(np.asarray(photo.resize((1920, 1440), Image.BILINEAR))), "big.png")
    h, w = predict_size(1440, 1920)
    assert (h, w) != (1440, 1920)
    clicks = [[960, 1400, 1], [300, 1300, 0]]                # the road, then a part of it off
    r = st.click_object(big.id, clicks)
    m = r["mask"]
    assert m.shape == (1440, 1920) and m[1400, 960] and not m[1300, 300]
    (feat, _), = [v for key, v in st._object_cache().items() if key[0] == big.id]
    assert feat.size == (h, w) and feat.image.shape[:2] == (h, w)
    assert feat.h * feat.w * 16 <= 1.01 * PREDICT_MAX_PIXELS      # not enlarged past a megapixel
    assert 0.1 < m.mean() < 0.9                              # the road (about a quarter), not a speck or all
    # the mask is the small one scaled up (nearest), the clicks' own pixels aside
    ys = np.minimum(((np.arange(h) + 0.5) * 1440 / h).astype(int), 1439)
    xs = np.minimum(((np.arange(w) + 0.5) * 1920 / w).astype(int), 1919)
    small = m[ys][:, xs]
    back = small[np.minimum((np.arange(1440) + 0.5) * h / 1440, h - 1).astype(int)][
        :, np.minimum((np.arange(1920) + 0.5) * w / 1920, w - 1).astype(int)]
    assert (back != m).sum() <= 2
