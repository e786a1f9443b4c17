"""Studio.heatmap: a word's probability map over a project image with the active model,
the image's pixel embeddings cached so that a new word costs a text encoding."""
import numpy as np
import pytest

from segui.errors import UserError
from segui.handlers import DEMO_PROJECT


def test_sky_is_hot_at_the_top_and_cold_at_the_bottom(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[0]
    m = st.word_heatmap(info.id, "sky")
    assert m.shape == (info.height, info.width) and m.dtype == np.uint8
    h = m.shape[0]
    top, bottom = m[: h // 5].mean(), m[-h // 5:].mean()
    assert top > 40 and bottom < 5 and top > 10 * bottom, (top, bottom)
    road = st.word_heatmap(info.id, "Road")          # the class, whatever the case
    assert road[-h // 5:].mean() > road[: h // 5].mean()


def test_a_phrase_outside_the_label_set_and_the_cache(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[1]
    first = st.heatmap(info.id, "sky")
    assert first["cached"] is False and first["class"] == "sky"
    misses = st.heat_stats["embed_misses"]
    r = st.heatmap(info.id, "  white   van ")
    assert r["cached"] is True and st.heat_stats["embed_misses"] == misses   # no second forward pass
    assert r["phrase"] == "white van" and r["class"] is None
    assert r["map"].shape == (info.height, info.width) and r["map"].dtype == np.uint8
    assert 0 <= r["min"] <= r["max"] <= 1
    again = st.heatmap(info.id, "sky")
    assert again["cached"] and np.array_equal(again["map"], first["map"])
    assert again["ms"] < first["ms"]


def test_refusals(demo_studio):
    st = demo_studio
    iid = st.store.list_images(DEMO_PROJECT)[0].id
    for bad in ("", "   ", "x" * 81, "a\x00b"):
        with pytest.raises(UserError):
            st.heatmap(iid, bad)


def test_the_uncertainty_map_uses_the_cached_embeddings(demo_studio):
    st = demo_studio
    info = st.store.list_images(DEMO_PROJECT)[2]
    first = st.uncertainty_map(info.id)
    m = first["map"]
    assert m.shape == (info.height, info.width) and m.dtype == np.uint8
    assert 0 <= first["mean"] <= first["max"] <= 1 and m.max() > 0
    assert abs(m.mean() / 255 - first["mean"]) < 0.01
    misses = st.heat_stats["embed_misses"]
    again = st.uncertainty_map(info.id)                # cached: no forward pass
    assert again["cached"] is True and st.heat_stats["embed_misses"] == misses
    assert np.array_equal(again["map"], m)
    assert st.heatmap(info.id, "sky")["cached"] is True   # the word heatmap shares the embeddings
    assert st.heat_stats["embed_misses"] == misses
