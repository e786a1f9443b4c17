import threading
from datetime import timezone

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import ConflictError, InvalidClassMapError, NotFoundError, Store
from storage.models import Annotation


def _map(image, fill=0):
    return np.full((image.height, image.width), fill, np.uint8)


def test_save_and_read_back_exact_pixels(store, image):
    rng = np.random.default_rng(1)
    cm = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(image.height, image.width))
    a = store.save_annotation(image.id, cm, "alice", status="draft", base_revision=0)
    assert a.revision == 1 and a.author == "alice" and a.status == "draft"
    got = store.get_annotation(image.id)
    assert got.revision == 1 and got.class_map.dtype == np.uint8
    assert np.array_equal(got.class_map, cm)
    assert got.saved_at.tzinfo == timezone.utc
    info = store.get_image(image.id)
    assert (info.status, info.revision, info.annotated_by) == ("draft", 1, "alice")


def test_no_annotation_yet(store, image):
    a = store.get_annotation(image.id)
    assert a.revision == 0 and a.class_map is None and a.status == "unlabelled"
    with pytest.raises(NotFoundError):
        store.get_annotation(image.id, revision=1)
    with pytest.raises(NotFoundError):
        store.get_annotation(99999)


def test_conflict_names_who_and_when_and_overwrites_nothing(store, image):
    first = store.save_annotation(image.id, _map(image, 1), "alice", base_revision=0)
    with pytest.raises(ConflictError) as ei:
        store.save_annotation(image.id, _map(image, 2), "bob", base_revision=0)
    e = ei.value
    assert e.author == "alice" and e.revision == 1 and e.saved_at == first.saved_at
    assert "alice" in str(e) and "revision 1" in str(e)
    assert np.array_equal(store.get_annotation(image.id).class_map, _map(image, 1))
    assert [r.revision for r in store.list_annotation_revisions(image.id)] == [1]
    # bob reloads and saves on top: both versions stay reachable
    store.save_annotation(image.id, _map(image, 2), "bob", status="submitted", base_revision=1)
    revs = store.list_annotation_revisions(image.id)
    assert [(r.revision, r.author, r.status) for r in revs] == [(1, "alice", "draft"), (2, "bob", "submitted")]
    assert np.array_equal(store.get_annotation(image.id, revision=1).class_map, _map(image, 1))
    assert np.array_equal(store.get_annotation(image.id).class_map, _map(image, 2))
    # a stale base newer than the latest is a conflict too
    with pytest.raises(ConflictError):
        store.save_annotation(image.id, _map(image, 0), "carol", base_revision=5)


@pytest.mark.parametrize("bad, msg", [
    (lambda im: np.zeros((im.height + 1, im.width), np.uint8), "shape"),
    (lambda im: np.zeros((im.width, im.height), np.uint8), "shape"),
    (lambda im: np.zeros((im.height, im.width), np.int64), "dtype"),
    (lambda im: np.zeros((im.height, im.width), np.float32), "dtype"),
    (lambda im: np.zeros((im.height, im.width, 1), np.uint8), "shape"),
    (lambda im: np.full((im.height, im.width), 7, np.uint8), r"outside the label set: \[7\]"),
    (lambda im: [[0] * im.width] * im.height, "numpy array"),
])
def test_invalid_class_maps_rejected(store, image, bad, msg):
    with pytest.raises(InvalidClassMapError, match=msg):
        store.save_annotation(image.id, bad(image), "alice", base_revision=0)
    assert store.get_annotation(image.id).revision == 0
    assert store.list_annotation_revisions(image.id) == []


def test_unique_revision_is_enforced_by_the_database(store, image):
    store.save_annotation(image.id, _map(image), "alice", base_revision=0)
    with Session(store.engine) as s:
        s.add(Annotation(image_id=image.id, revision=1, author="x", status="draft", png=b"x"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_concurrent_writers_from_same_revision_exactly_one_wins(make_store, image):
    # two independent Stores = two engines/connections, as two app processes would be
    a, b = make_store(), make_store()
    rounds = 8
    for r in range(rounds):
        barrier = threading.Barrier(2)
        results = {}

        def save(st, who, fill):
            barrier.wait()
            try:
                results[who] = st.save_annotation(image.id, _map(image, fill), who, base_revision=r)
            except ConflictError as e:
                results[who] = e
        t1 = threading.Thread(target=save, args=(a, "alice", 1))
        t2 = threading.Thread(target=save, args=(b, "bob", 2))
        t1.start(); t2.start(); t1.join(30); t2.join(30)
        wins = [w for w, v in results.items() if not isinstance(v, Exception)]
        losses = [v for v in results.values() if isinstance(v, ConflictError)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].author == wins[0] and losses[0].revision == r + 1
        latest = a.get_annotation(image.id)
        assert latest.revision == r + 1 and latest.author == wins[0]
        assert np.array_equal(latest.class_map, _map(image, 1 if wins[0] == "alice" else 2))
    assert [x.revision for x in a.list_annotation_revisions(image.id)] == list(range(1, rounds + 1))


def test_list_images_status_and_filters(store, project, png_bytes):
    ids = []
    for i in range(5):
        ids.append(store.add_image("p", png_bytes(np.full((16, 24, 3), i, np.uint8)), f"{i}.png",
                                   split="train" if i < 3 else "val").id)
    z = np.zeros((16, 24), np.uint8)
    store.save_annotation(ids[0], z, "a", status="submitted", base_revision=0)
    store.save_annotation(ids[1], z, "a", status="draft", base_revision=0)
    assert [i.status for i in store.list_images("p")] == ["submitted", "draft", "unlabelled", "unlabelled", "unlabelled"]
    assert [i.id for i in store.list_images("p", status="unlabelled", split="val")] == ids[3:]
    assert store.count_images("p") == {"unlabelled": 3, "draft": 1, "submitted": 1, "total": 5}


def test_list_images_is_one_query(store, project, png_bytes):
    from sqlalchemy import event
    for i in range(20):
        info = store.add_image("p", png_bytes(np.full((16, 24, 3), i, np.uint8)), f"{i}.png")
        store.save_annotation(info.id, np.zeros((16, 24), np.uint8), "a", base_revision=0)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    out = store.list_images("p")
    assert len(out) == 20 and all(i.status == "draft" for i in out)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, selects   # the project lookup + one query for all images


def test_a_save_keeps_what_was_changed_of_the_prediction_and_bad_records_are_refused(store, image):
    from storage import ValidationError
    store.save_annotation(image.id, _map(image, 1), "alice", base_revision=0)          # a draft: no record
    store.save_annotation(image.id, _map(image, 2), "alice", status="submitted", base_revision=1,
                          correction={"changed": 0.125, "fixes": 3, "model_version": None})
    for bad in ({"changed": 1.5}, {"changed": "x"}, {"fixes": 2}, {"changed": 0.1, "other": 1},
                {"changed": 0.1, "fixes": -1}):
        with pytest.raises(ValidationError):
            store.save_annotation(image.id, _map(image, 3), "bob", base_revision=2, correction=bad)
    assert store.get_image(image.id).revision == 2                                     # refused before storing
    got = store.corrections(image.project_id)
    assert [(c.image_id, c.revision, c.author, c.changed, c.fixes, c.model_version) for c in got] == [
        (image.id, 2, "alice", 0.125, 3, None)]
    assert got[0].saved_at.tzinfo == timezone.utc
    store.save_annotation(image.id, _map(image, 0), "bob", status="submitted", base_revision=2,
                          correction={"changed": 0.5, "fixes": 1, "model_version": 7})
    assert [c.changed for c in store.corrections(image.project_id)] == [0.125, 0.5]     # oldest first
    assert [c.changed for c in store.corrections(image.project_id, limit=1)] == [0.5]   # the newest saves only
