"""The Explore screen's stored per-image metrics (migration 0006, storage/store_metrics.py)
on SQLite and PostgreSQL: pages sorted and filtered in SQL, which images are stale,
the confusion matrix and a cell's images."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from storage import ValidationError



ROAD, CAR, SKY = 0, 1, 2


@pytest.fixture
def proj(store, png_bytes):
    """Project "p" (road, car, sky), an active model version, 8 images of 32x48."""
    p = store.create_project("p", ["road", "car", "sky"])
    mv = store.add_model_version("p", "/w", activate=True, name="v")
    rng = np.random.default_rng(1)
    ids = [store.add_image("p", png_bytes(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)), f"i{k}.png",
                           split="val" if k % 2 else "train").id for k in range(8)]
    return p, mv, ids


def _metrics(store, iid, mv, rev=0, pal="pal", **kw):
    store.save_image_metrics(iid, mv.id, None, rev, pal, **kw)


def test_pages_sort_by_a_metric_with_nulls_last_and_page_consistently(store, proj):
    p, mv, ids = proj
    ious = [0.9, 0.1, None, 0.5, 0.3, None, 0.7, 0.2]
    for iid, v in zip(ids, ious):
        _metrics(store, iid, mv, iou=v, entropy=None if v is None else 1 - v, thumb_pred=b"jpeg%d" % iid)
    total, rows = store.explore_images("p", sort="iou", limit=200)
    assert total == 8
    got = [r.iou for r in rows]
    assert got[:6] == sorted(v for v in ious if v is not None) and got[6:] == [None, None]
    assert rows[0].thumb_pred == b"jpeg%d" % rows[0].id
    _, desc = store.explore_images("p", sort="iou", descending=True, limit=200)
    assert [r.iou for r in desc][:6] == sorted((v for v in ious if v is not None), reverse=True)
    assert [r.iou for r in desc][6:] == [None, None]                       # NULLs last either way
    # pages of 3 put together are the whole order, each image once
    paged = []
    for off in range(0, 9, 3):
        t, page = store.explore_images("p", sort="uncertainty", descending=True, offset=off, limit=3)
        assert t == 8
        paged += [r.id for r in page]
    _, whole = store.explore_images("p", sort="uncertainty", descending=True, limit=200)
    assert paged == [r.id for r in whole] and len(set(paged)) == 8
    with pytest.raises(ValidationError):
        store.explore_images("p", sort="colour")
    with pytest.raises(ValidationError):
        store.explore_images("p", limit=0)


def test_filters_status_split_author_date_ranges_and_class_area(store, proj):
    p, mv, ids = proj
    cm = np.zeros((32, 48), np.uint8)
    cm[:, :3] = CAR                                   # 3/48 = 6.25% car
    store.save_annotation(ids[0], cm, "Ann", "submitted")
    store.save_annotation(ids[1], cm, "bob", "draft")
    store.set_review_score(ids[0], 1, 0.8)
    for k, iid in enumerate(ids):
        areas = {("p", ROAD): 0.9, ("p", CAR): 0.01 * k}
        if k == 0:
            areas[("a", CAR)] = 3 / 48
        _metrics(store, iid, mv, rev=1 if k < 2 else 0, iou=k / 10, entropy=k / 10, areas=areas)
    count = lambda **kw: store.explore_images("p", limit=200, **kw)[0]   # noqa: E731
    assert count(status="submitted") == 1 and count(status="draft") == 1 and count(status="unlabelled") == 6
    assert count(split="val") == 4
    assert count(author="ANN") == 1 and count(author="nobody") == 0
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
    assert count(date_from=today, date_to=today) == 2
    assert count(date_to=today - timedelta(days=1)) == 0
    assert count(iou=(0.25, 0.55)) == 3 and count(uncertainty=(None, 0.15)) == 2
    assert count(min_disagreement=0.5) == 1 and count(min_disagreement=0.9) == 0
    _, rows = store.explore_images("p", sort="disagreement", descending=True, limit=2)
    assert rows[0].id == ids[0] and rows[0].review_score == pytest.approx(0.8)
    # "at least 3% car" in the prediction: images 3..7; in the annotation: image 0 only
    assert count(class_index=CAR, class_min_share=0.03) == 5
    assert count(class_index=CAR, class_min_share=0.03, class_source="annotation") == 1
    assert count(class_index=SKY) == 0                                  # presence: no sky anywhere
    assert count(class_index=CAR) == 7                                  # image 0 predicts 0% car: no row


def test_filter_by_file_name(store, proj, png_bytes):
    """A part of the file name, any case; % and _ are the characters themselves."""
    p, mv, ids = proj
    store.add_image("p", png_bytes(np.zeros((32, 48, 3), np.uint8)), "Frame_10%.PNG")
    names = lambda **kw: [r.filename for r in store.explore_images("p", limit=200, **kw)[1]]   # noqa: E731
    assert names(name="I3") == ["i3.png"]
    assert len(names(name=".png")) == 9 and names(name="  .png  ") == names(name=".png")
    assert names(name="_10%") == ["Frame_10%.PNG"] and names(name="e_1") == ["Frame_10%.PNG"]
    assert names(name="i_") == [] and names(name="i%") == []          # not wildcards
    assert names(name="nothing") == []
    assert names(name="i", status="unlabelled", split="val") == ["i1.png", "i3.png", "i5.png", "i7.png"]


def test_stale_images_follow_version_revision_prediction_and_palette(store, proj):
    p, mv, ids = proj
    iid = ids[0]
    assert set(store.stale_metric_images("p", mv.id, "pal", limit=100)) == set(ids)
    # val images first
    first = store.stale_metric_images("p", mv.id, "pal", limit=4)
    assert all(store.get_image(i).split == "val" for i in first)
    pred = store.save_prediction(iid, mv.id, np.zeros((32, 48), np.uint8), 0.1, entropy=0.2)
    store.save_image_metrics(iid, mv.id, pred.created_at, 0, "pal")
    assert iid not in store.stale_metric_images("p", mv.id, "pal", limit=100)
    assert store.metric_counts("p", mv.id, "pal") == {"images": 8, "stale": 7}
    assert iid in store.stale_metric_images("p", mv.id, "other colours", limit=100)
    mv2 = store.add_model_version("p", "/w2")
    assert iid in store.stale_metric_images("p", mv2.id, "pal", limit=100)
    time.sleep(0.01)
    store.save_prediction(iid, mv.id, np.ones((32, 48), np.uint8), 0.1, entropy=0.3)   # predicted again
    assert iid in store.stale_metric_images("p", mv.id, "pal", limit=100)
    pred = store.get_prediction(iid, mv.id)
    assert pred.entropy == pytest.approx(0.3)
    store.save_image_metrics(iid, mv.id, pred.created_at, 0, "pal")
    assert iid not in store.stale_metric_images("p", mv.id, "pal", limit=100)
    store.save_annotation(iid, np.zeros((32, 48), np.uint8), "ann", "draft")          # a new revision
    assert iid in store.stale_metric_images("p", mv.id, "pal", limit=100)
    assert iid not in store.stale_metric_images("p", mv.id, "pal", limit=100, exclude=(iid,))


def test_confusion_matrix_and_a_cells_images(store, proj):
    p, mv, ids = proj
    z = np.zeros((32, 48), np.uint8)
    for iid in ids[:6]:
        store.save_annotation(iid, z, "ann", "submitted" if iid != ids[5] else "draft")
    # car predicted as road: pixels grow with k; every image also gets road right
    for k, iid in enumerate(ids[:6]):
        _metrics(store, iid, mv, rev=1, confusion={(CAR, ROAD): 10 * (k + 1), (ROAD, ROAD): 100})
    mv_old = store.add_model_version("p", "/old")
    store.save_image_metrics(ids[6], mv_old.id, None, 0, "pal", confusion={(CAR, ROAD): 10 ** 6})
    val = store.confusion_counts("p", mv.id, "val")
    # val = odd k (1, 3, 5); image 5 is a draft: 1 and 3 count
    assert val["images"] == 2 and val["cells"] == {(CAR, ROAD): 20 + 40, (ROAD, ROAD): 200}
    every = store.confusion_counts("p", mv.id, "annotated")
    assert every["images"] == 5 and every["cells"][(CAR, ROAD)] == 10 + 20 + 30 + 40 + 50
    total, rows = store.explore_images("p", cell=(CAR, ROAD), cell_scope="annotated", version_id=mv.id, limit=3)
    assert total == 5 and [r.pixels for r in rows] == [50, 40, 30] and rows[0].id == ids[4]
    total, rows = store.explore_images("p", cell=(CAR, ROAD), cell_scope="val", version_id=mv.id)
    assert total == 2 and [r.id for r in rows] == [ids[3], ids[1]]
    assert store.explore_images("p", cell=(SKY, ROAD), cell_scope="val", version_id=mv.id)[0] == 0
    # an annotation saved after the metrics: that image leaves the matrix until recomputed
    store.save_annotation(ids[3], z, "ann", "submitted", 1)
    assert store.confusion_counts("p", mv.id, "val")["images"] == 1
    other = store.create_project("q", ["road"])
    with pytest.raises(Exception):
        store.confusion_counts("q", mv.id)          # a version of another project


def test_saving_replaces_rows_and_checks_values(store, proj):
    p, mv, ids = proj
    iid = ids[0]
    _metrics(store, iid, mv, areas={("p", ROAD): 0.5, ("p", CAR): 0.5}, confusion={(ROAD, CAR): 3})
    _metrics(store, iid, mv, areas={("p", SKY): 1.0}, confusion={})
    m = store.image_metrics_of(iid)
    assert m["areas"] == {("p", SKY): 1.0} and m["confusion"] == {}
    for bad in (dict(iou=1.5), dict(areas={("x", 0): 0.1}), dict(confusion={(0, 1): -1}),
                dict(thumb_pred=b"x" * 300_000)):
        with pytest.raises(ValidationError):
            _metrics(store, iid, mv, **bad)
    other = store.create_project("q", ["road"])
    mv_q = store.add_model_version("q", "/q")
    with pytest.raises(Exception, match="does not exist"):
        store.save_image_metrics(iid, mv_q.id, None, 0, "pal")     # another project's model version
    with pytest.raises(ValidationError):
        store.save_prediction(iid, mv.id, np.zeros((32, 48), np.uint8), 0.1, entropy=2.0)


def test_the_metrics_signature_changes_with_what_a_matrix_depends_on(store, proj):
    p, mv, ids = proj
    sig = store.metrics_signature("p")
    assert store.metrics_signature("p") == sig
    _metrics(store, ids[0], mv)
    assert store.metrics_signature("p") != sig
    sig = store.metrics_signature("p")
    store.set_split(ids[0], "val" if store.get_image(ids[0]).split != "val" else "train")
    assert store.metrics_signature("p") != sig
    sig = store.metrics_signature("p")
    store.save_annotation(ids[2], np.zeros((32, 48), np.uint8), "ann", "submitted")
    assert store.metrics_signature("p") != sig
