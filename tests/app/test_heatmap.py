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
    assert st.heat_stats["embed_misses"] == misses     # the speed-up is the skipped pass, counted, not timed


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


def test_what_changed_between_two_model_versions(demo_studio):
    """Two versions of the shipped weights; the second's stored prediction differs on a
    block: the mask is that block and the pair counts add up to it."""
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    v1 = st.model_version(p.id)
    assert st.previous_model_version(p.id) is None
    info = st.store.list_images(DEMO_PROJECT)[3]
    assert st.changes_since_previous(info.id)["from"] is None          # one version: nothing to compare
    v2 = st.store.add_model_version(p.id, v1.weights_dir, name="same weights again")
    st.activate_model(DEMO_PROJECT, v2.id)
    assert st.previous_model_version(p.id) == v1.id
    # no stored prediction of v2: predicted (same weights: nothing changed), stored as the active one's
    mask, pairs = st.what_changed(info.id, v1.id, v2.id)
    assert mask.shape == (info.height, info.width) and mask.dtype == bool
    assert mask.mean() < 0.01, mask.mean()
    assert st.store.get_prediction(info.id, v2.id) is not None
    # a changed prediction of v2: the top-left block becomes "road", a strip "void"
    a = st.store.get_prediction(info.id, v1.id).class_map
    b = a.copy()
    road = next(c.index for c in p.classes if c.name == "road")
    b[:40, :60] = road
    b[-5:, :] = p.ignore_index
    st.store.save_prediction(info.id, v2.id, b, 0.5)
    mask, pairs = st.what_changed(info.id, v1.id, v2.id)
    assert np.array_equal(mask, a != b)
    assert sum(n for _, _, n in pairs) == int(mask.sum()) > 0
    assert [n for _, _, n in pairs] == sorted((n for _, _, n in pairs), reverse=True)
    assert {t for _, t, _ in pairs} == {"road", "void"}
    assert sum(n for _, t, n in pairs if t == "road") == int((a[:40, :60] != road).sum())
    assert sum(n for _, t, n in pairs if t == "void") == int((a[-5:] != p.ignore_index).sum())
    # the Label screen's view: from the previous active version to the active one
    r = st.changes_since_previous(info.id, top=3)
    assert (r["from"], r["to"]) == (v1.id, v2.id) and r["changed"] == int(mask.sum())
    assert r["map"].dtype == np.uint8 and set(np.unique(r["map"])) <= {0, 255}
    assert len(r["pairs"]) == min(3, r["pair_count"]) and r["pairs"][0][2] == pairs[0][2]
    # switched back by hand: the previous one is the one it came from
    st.activate_model(DEMO_PROJECT, v1.id)
    assert st.previous_model_version(p.id) == v2.id
    with pytest.raises(LookupError):
        st.what_changed(info.id, v1.id, 10_000)
