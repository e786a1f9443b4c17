"""The Explore screen's data endpoints through gradio_client (sorted and filtered pages,
paging, the confusion matrix and its cells), the per-image figures the background
computes, and who may ask (segui/explore.py, segui/screens/explore.py)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from gradio_client import Client

from segui.explore import image_scores, outline
from segui.handlers import DEMO_DIR, DEMO_PROJECT

from .conftest import make_studio, served

OTHER = "explore other"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    st = make_studio(tmp_path_factory.mktemp("explore"), demo=True)
    st.create_project(OTHER, "sky\nroad")
    st.store.add_image(OTHER, sorted(DEMO_DIR.glob("*.jpg"))[0], "other.jpg")
    st.refresh_explore_metrics(DEMO_PROJECT)
    st.refresh_explore_metrics(OTHER)
    with served(st) as url:
        yield st, url
        st.wait_idle(30)


def explore(c, project=DEMO_PROJECT, sort="iou", descending=False, mask="annotation", status="any", review="any",
            split="any", author="", date_from="", date_to="", unc_min="", unc_max="", iou_min="", iou_max="",
            disagree="", cls="any", cls_pct="1", cls_src="prediction", name=None):
    args = [project, sort, descending, mask, status, review, split, author, date_from, date_to,
            unc_min, unc_max, iou_min, iou_max, disagree, cls, cls_pct, cls_src]
    if name is not None:     # (left out: a script written before the file-name filter still works)
        args.append(name)
    grid, progress = c.predict(*args, api_name="/explore")
    assert grid["kind"] == "page"
    return grid, progress


@pytest.fixture(scope="module")
def c(running):
    return Client(running[1], verbose=False)


def test_sorted_by_iou_matches_the_stored_figures(running, c):
    st, _ = running
    grid, _ = explore(c)
    _, _, progress = c.predict(DEMO_PROJECT, "val", api_name="/explore_confusion")
    assert grid["total"] == 14 and "all 14 images up to date" in progress
    rows = grid["rows"]
    ious = [r["iou"] for r in rows]
    labelled = [v for v in ious if v is not None]
    assert len(labelled) == 10 and labelled == sorted(labelled) and ious[10:] == [None] * 4
    for r in rows:
        m = st.store.image_metrics_of(r["id"])
        assert r["iou"] == m["iou"] and r["uncertainty"] == m["entropy"]
        assert r["thumb"].startswith("data:image/jpeg;base64,")
        assert r["mask"] == ("annotation" if r["status"] != "unlabelled" else "prediction")
    desc, _ = explore(c, descending=True)
    assert [r["iou"] for r in desc["rows"]][:10] == sorted(labelled, reverse=True)
    # the most uncertain first: the entropies of the model's stored predictions
    unc, _ = explore(c, sort="uncertainty", descending=True)
    ent = [r["uncertainty"] for r in unc["rows"]]
    assert ent == sorted(ent, reverse=True) and all(0 < e < 1 for e in ent)
    assert ent[0] == pytest.approx(max(st.store.get_prediction(r["id"]).entropy for r in unc["rows"]))


def test_filters_narrow_the_page(running, c):
    st, _ = running
    val, _ = explore(c, split="val")
    assert val["total"] == sum(1 for im in st.store.list_images(DEMO_PROJECT) if im.split == "val") > 0
    assert {r["split"] for r in val["rows"]} == {"val"}
    unl, _ = explore(c, status="unlabelled", mask="prediction")
    assert unl["total"] == 4 and all(r["iou"] is None for r in unl["rows"])
    good, _ = explore(c, iou_min="0.72")
    assert good["total"] and all(r["iou"] >= 0.72 for r in good["rows"])
    # "at least 1% bicyclist" in the annotation: the stored areas say which images
    p = st.store.get_project(DEMO_PROJECT)
    bic = next(c_.index for c_ in p.classes if c_.name == "bicyclist")
    want = {im.id for im in st.store.list_images(DEMO_PROJECT) if im.revision
            and (st.store.get_annotation(im.id).class_map == bic).mean() >= 0.01}
    got, _ = explore(c, cls="bicyclist", cls_pct="1", cls_src="annotation")
    assert {r["id"] for r in got["rows"]} == want
    none, _ = explore(c, author="nobody at all")
    assert none["total"] == 0
    named, _ = explore(c, name="08109", mask="prediction")          # a part of the file name
    assert [r["name"] for r in named["rows"]] == ["0016E5_08109.jpg"]
    assert explore(c, name="0016e5_08")[0]["total"] == sum(
        1 for im in st.store.list_images(DEMO_PROJECT) if "0016E5_08" in im.filename)
    with pytest.raises(Exception, match="file name"):
        explore(c, name="x" * 201)
    with pytest.raises(Exception, match="IoU from"):
        explore(c, iou_min="lots")


def test_pages_put_together_are_the_whole_order(running, c):
    _, url = running
    grid, _ = explore(c, sort="uncertainty", descending=True)
    q = grid["query"]
    seen = []
    for off in range(0, 14, 5):
        page = c.predict(DEMO_PROJECT, q, off, 5, api_name="/explore_page")
        assert page["total"] == 14 and page["offset"] == off
        seen += [r["id"] for r in page["rows"]]
    assert seen == [r["id"] for r in grid["rows"]]


def test_a_confusion_cell_opens_the_images_where_it_is_largest(running, c):
    st, _ = running
    plot, note, _ = c.predict(DEMO_PROJECT, "annotated", api_name="/explore_confusion")
    assert plot is not None and "wait" not in note
    conf = st.explore_confusion(DEMO_PROJECT, "annotated")
    m = np.array(conf["matrix"])
    assert conf["images"] == 10 and m.sum() > 0
    off = m.copy()
    np.fill_diagonal(off, 0)
    i, j = np.unravel_index(off.argmax(), off.shape)
    t, p_ = conf["indices"][i], conf["indices"][j]
    grid, _ = c.predict(DEMO_PROJECT, {"cell": {"t": t, "p": p_}}, "annotated", "annotation",
                        api_name="/explore_cell")
    rows = grid["rows"]
    mv = st.model_version(DEMO_PROJECT)
    # every submitted image with that confusion, most pixels first, counted from the maps themselves
    want = {}
    for im in st.store.list_images(DEMO_PROJECT, status="submitted"):
        a = st.store.get_annotation(im.id).class_map
        b = st.store.get_prediction(im.id, mv.id).class_map
        n = int(((a == t) & (b == p_)).sum())
        if n:
            want[im.id] = n
    assert grid["total"] == len(want) and sum(want.values()) == off[i, j]
    assert [(r["id"], r["pixels"]) for r in rows] == sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))
    assert all(r["thumb"].startswith("data:image/jpeg") for r in rows)
    with pytest.raises(Exception, match="class this project does not have"):
        c.predict(DEMO_PROJECT, {"cell": {"t": 250, "p": 0}}, "val", "annotation", api_name="/explore_cell")


def test_another_project_shows_only_its_own_images(running, c):
    st, _ = running
    grid, _ = explore(c, project=OTHER)
    other_ids = {im.id for im in st.store.list_images(OTHER)}
    assert grid["total"] == 1 and {r["id"] for r in grid["rows"]} == other_ids


def test_image_scores_and_outline():
    class P:
        ignore_index = 255
    ann = np.array([[0, 0, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0]], np.uint8)
    iou, acc, counts = image_scores(pred, ann, P)
    # class 0: inter 1, union 2; class 1: inter 1, union 2; the void pixel is left out
    assert iou == pytest.approx(0.5) and acc == pytest.approx(2 / 3)
    assert counts == {(0, 0): 1, (0, 1): 1, (1, 1): 1}
    mask = np.zeros((120, 160), bool)
    mask[:, 80] = True                                    # one pixel wide: still outlined when shrunk
    out = outline(np.full((12, 16, 3), 128, np.uint8), mask)
    assert (out[:, 8] == (255, 0, 255)).all(axis=-1).all()


def test_the_background_worker_follows_a_new_annotation(running):
    st, _ = running
    iid = next(im.id for im in st.store.list_images(DEMO_PROJECT, status="unlabelled"))
    st.start_explore_worker(poll_s=0.2)
    try:
        pred = st.store.get_prediction(iid).class_map
        st.store.save_annotation(iid, pred, "tester", "draft")
        st.explore_poke()
        end = time.monotonic() + 60
        while time.monotonic() < end and (st.store.image_metrics_of(iid) or {}).get("revision") != 1:
            time.sleep(0.2)
        m = st.store.image_metrics_of(iid)
        assert m["revision"] == 1 and m["iou"] == pytest.approx(1.0) and m["thumb_ann"]
    finally:
        st.stop_explore_worker()


def test_mean_entropy_is_normalised():
    import torch

    from models.inference import mean_entropy
    k, h, w = 11, 36, 48
    assert mean_entropy(torch.full((k, h, w), 1 / k)) == pytest.approx(1.0, abs=1e-5)   # all classes alike
    sure = torch.zeros(k, h, w)
    sure[3] = 1
    assert mean_entropy(sure) == pytest.approx(0.0, abs=1e-5)
    half = sure.clone()
    half[:, :, : w // 2] = 1 / k                       # half the image unsure
    assert mean_entropy(half) == pytest.approx(0.5, abs=0.02)
    assert mean_entropy(torch.ones(1, h, w)) == 0.0
