import time
from pathlib import Path
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage import JobStateError, NotFoundError
from storage.models import TrainingJob, utcnow


def test_predictions_and_uncertainty_queue(store, project, png_bytes):
    ids = [store.add_image("p", png_bytes(np.full((16, 24, 3), i, np.uint8)), f"{i}.png").id for i in range(4)]
    mv = store.add_model_version("p", "/w/v1", metrics={"mIoU": 0.5}, activate=True)
    z = np.zeros((16, 24), np.uint8)
    for i, u in zip(ids[:3], [0.2, 0.9, 0.5]):
        store.save_prediction(i, mv.id, z + 1, u)
    assert store.next_image("p").id == ids[1]                      # most uncertain first
    store.save_annotation(ids[1], z, "a", status="draft", base_revision=0)
    assert store.next_image("p").id == ids[2]                      # labelled images leave the queue
    assert store.next_image("p", filter="unsubmitted").id == ids[1]
    assert store.next_image("p", exclude=[ids[2]]).id == ids[0]
    assert store.next_image("p", exclude=ids[:3]).id == ids[3]     # no prediction: last
    order = [i.id for i in store.list_images("p", order="uncertainty")]
    assert order == [ids[1], ids[2], ids[0], ids[3]]
    # re-predicting replaces, and the image's uncertainty follows the latest prediction
    store.save_prediction(ids[0], mv.id, z + 2, 0.99)
    assert store.next_image("p").id == ids[0]
    p = store.get_prediction(ids[0], mv.id)
    assert p.uncertainty == pytest.approx(0.99) and np.array_equal(p.class_map, z + 2)
    assert store.get_prediction(ids[3]) is None
    with pytest.raises(Exception, match="label set"):
        store.save_prediction(ids[0], mv.id, z + 9, 0.1)
    with pytest.raises(NotFoundError):
        store.save_prediction(ids[0], 12345, z, 0.1)


def test_delete_predictions_forgets_one_projects_predictions_only(store, project, png_bytes):
    other = store.create_project("q", ["road", "sky"])
    a = store.add_image("p", png_bytes(np.zeros((16, 24, 3), np.uint8)), "a.png").id
    b = store.add_image("q", png_bytes(np.zeros((16, 24, 3), np.uint8)), "b.png").id
    v1 = store.add_model_version("p", "/w/v1", activate=True)
    v2 = store.add_model_version("p", "/w/v2")
    w = store.add_model_version(other.id, "/w/q1", activate=True)
    z = np.zeros((16, 24), np.uint8)
    store.save_prediction(a, v1.id, z, 0.3)
    store.save_prediction(a, v2.id, z, 0.4)
    store.save_prediction(b, w.id, z, 0.5)
    store.save_annotation(a, z + 1, "ann", status="draft", base_revision=0)
    assert store.delete_predictions("p") == 2
    assert store.get_prediction(a) is None and store.get_prediction(a, v2.id) is None
    assert store.get_prediction(b, w.id) is not None                 # another project's stay
    assert np.array_equal(store.get_annotation(a).class_map, z + 1)  # annotations untouched
    assert store.delete_predictions("p") == 0
    with pytest.raises(NotFoundError):
        store.delete_predictions("nope")


def test_list_latest_annotated_first(store, project, png_bytes):
    """order="latest": the most recently annotated first (the queue weighs the newest
    submissions without listing them all), never-annotated images last; a limit cuts the tail."""
    ids = [store.add_image("p", png_bytes(np.full((16, 24, 3), i, np.uint8)), f"{i}.png").id for i in range(4)]
    z = np.zeros((16, 24), np.uint8)
    for i in (ids[2], ids[0], ids[3]):
        store.save_annotation(i, z, "a", status="submitted", base_revision=0)
        time.sleep(0.01)   # distinct timestamps
    assert [i.id for i in store.list_images("p", order="latest")] == [ids[3], ids[0], ids[2], ids[1]]
    assert [i.id for i in store.list_images("p", status="submitted", order="latest", limit=2)] == [ids[3], ids[0]]
    store.save_annotation(ids[2], z + 1, "a", status="submitted", base_revision=1)   # a new revision moves it up
    assert store.list_images("p", order="latest", limit=1)[0].id == ids[2]
    with pytest.raises(Exception, match="'latest'"):
        store.list_images("p", order="newest")


def test_model_versions_single_active(store, project):
    v1 = store.add_model_version("p", "/w/v1", activate=True)
    v2 = store.add_model_version("p", "/w/v2", parent_id=v1.id, metrics={"mIoU": 0.61, "per_class_iou": [0.5, 0.7]})
    assert store.active_model_version("p").id == v1.id
    store.activate_model_version(v2.id)
    vs = store.list_model_versions("p")
    assert [(v.id, v.is_active) for v in vs] == [(v1.id, False), (v2.id, True)]
    assert vs[1].parent_id == v1.id and vs[1].metrics["per_class_iou"] == [0.5, 0.7]
    v3 = store.add_model_version("p", "/w/v3", activate=True)
    assert store.active_model_version("p").id == v3.id
    assert sum(v.is_active for v in store.list_model_versions("p")) == 1
    with pytest.raises(NotFoundError):
        store.add_model_version("p", "/w/x", parent_id=999)


def test_job_lifecycle(store, project):
    base = store.add_model_version("p", "/w/base", activate=True)
    assert store.newest_job("p") is None
    job = store.create_job("p", {"epochs": 3}, base_version_id=base.id)
    assert store.newest_job("p").id == job.id
    assert job.status == "queued" and job.params == {"epochs": 3}
    with pytest.raises(JobStateError, match="already has job"):
        store.create_job("p", {})
    with pytest.raises(JobStateError, match="not running"):
        store.update_job(job.id, progress=0.1)
    claimed = store.claim_job()
    assert claimed.id == job.id and claimed.status == "running" and claimed.heartbeat_at is not None
    assert store.claim_job() is None
    for i in range(250):
        store.update_job(job.id, log_line=f"line {i}")
    j = store.update_job(job.id, progress=0.5, step=10, metrics={"loss": 0.3})
    assert (j.progress, j.step, j.metrics) == (0.5, 10, {"loss": 0.3})
    assert len(j.log_tail) == 200 and j.log_tail[-1] == "line 249"
    res = store.add_model_version("p", "/w/res", parent_id=base.id)
    done = store.finish_job(job.id, "succeeded", result_version_id=res.id)
    assert done.status == "succeeded" and done.result_version_id == res.id and done.progress == 1.0
    for bad in (lambda: store.start_job(job.id), lambda: store.cancel_job(job.id),
                lambda: store.finish_job(job.id, "failed")):
        with pytest.raises(JobStateError, match="succeeded"):
            bad()
    # the slot is free again
    j2 = store.create_job("p", {})
    assert store.cancel_job(j2.id).status == "cancelled"
    assert [x.status for x in store.list_jobs("p")] == ["cancelled", "succeeded"]
    assert (store.newest_job("p").id, store.newest_job("p").status) == (j2.id, "cancelled")


def test_cancel_running_job_stops_the_worker(store, project):
    job = store.create_job("p", {})
    store.start_job(job.id)
    store.update_job(job.id, step=7, log_line="base val mIoU 0.75")
    store.cancel_job(job.id)
    with pytest.raises(JobStateError, match="cancelled"):
        store.update_job(job.id, progress=0.2)
    j = store.get_job(job.id)
    assert j.status == "cancelled" and list(j.log_tail) == ["base val mIoU 0.75", "cancelled at step 7"]
    queued = store.create_job("p", {})
    assert list(store.cancel_job(queued.id).log_tail) == ["cancelled before it started"]


def test_second_active_job_refused_by_database_index(store, project):
    store.create_job("p", {})
    with Session(store.engine) as s:
        s.add(TrainingJob(project_id=store.get_project("p").id, status="queued", params={}, log_tail=[]))
        with pytest.raises(Exception, match="(?i)unique"):
            s.commit()


def test_stale_running_jobs_marked_failed(store, project):
    job = store.create_job("p", {})
    store.start_job(job.id)
    assert store.mark_stale_jobs(60) == []
    with Session(store.engine) as s, s.begin():
        s.execute(update(TrainingJob).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert store.mark_stale_jobs(60) == [job.id]
    j = store.get_job(job.id)
    assert j.status == "failed" and "heartbeat" in j.error


def test_concurrent_claims_take_each_queued_job_exactly_once(make_store):
    """Four workers (threads, each with its own Store and connections) claim six queued
    jobs of six projects: PostgreSQL by SELECT ... FOR UPDATE SKIP LOCKED, SQLite by a
    conditional update."""
    import threading
    store = make_store()
    ids = []
    for i in range(6):
        store.create_project(f"p{i}", ["road", "sky"])
        ids.append(store.create_job(f"p{i}", {}).id)
    workers = [make_store() for _ in range(4)]
    claimed: list[int] = []
    lock, start = threading.Lock(), threading.Barrier(len(workers))

    def work(st):
        start.wait()
        while (job := st.claim_job()) is not None:
            assert job.status == "running"
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == ids
    assert {store.get_job(i).status for i in ids} == {"running"}
    assert store.claim_job() is None


def test_claim_job_of_one_project_and_oldest_first(store, project):
    store.create_project("q", ["road"])
    a = store.create_job("q", {})
    b = store.create_job("p", {})
    assert store.claim_job("p").id == b.id
    assert store.claim_job("p") is None
    assert store.claim_job().id == a.id


def test_postgresql_claim_skips_a_row_another_worker_has_locked(store, backend):
    if backend != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    store.create_project("a", ["road"])
    store.create_project("b", ["road"])
    a, b = store.create_job("a", {}), store.create_job("b", {})
    with Session(store.engine) as s, s.begin():   # another worker in the middle of claiming job a
        s.execute(select(TrainingJob).where(TrainingJob.id == a.id).with_for_update())
        t0 = time.monotonic()
        assert store.claim_job().id == b.id          # not blocked on a, not a
        assert time.monotonic() - t0 < 5
    assert store.claim_job().id == a.id


def test_finish_with_activate_promotes_in_the_same_transaction(store, project):
    base = store.add_model_version("p", "/w/base", activate=True)
    store.create_job("p", {}, base.id)
    job = store.claim_job()
    new = store.add_model_version("p", "/w/new", parent_id=base.id)
    with pytest.raises(JobStateError, match="only a succeeded job"):
        store.finish_job(job.id, "failed", result_version_id=new.id, activate=True)
    store.cancel_job(job.id)   # a cancel that arrives after the last check of the runner
    with pytest.raises(JobStateError, match="cancelled"):
        store.finish_job(job.id, "succeeded", result_version_id=new.id, activate=True)
    assert store.active_model_version("p").id == base.id
    job2 = store.create_job("p", {}, base.id)
    store.claim_job()
    done = store.finish_job(job2.id, "succeeded", result_version_id=new.id, activate=True)
    assert done.status == "succeeded" and store.active_model_version("p").id == new.id


def test_training_examples_use_latest_submitted_revision(store, project, png_bytes):
    a = store.add_image("p", png_bytes(np.full((16, 24, 3), 1, np.uint8)), "a.png", split="train")
    b = store.add_image("p", png_bytes(np.full((16, 24, 3), 2, np.uint8)), "b.png", split="train")
    c = store.add_image("p", png_bytes(np.full((16, 24, 3), 3, np.uint8)), "c.png", split="val")
    z = np.zeros((16, 24), np.uint8)
    store.save_annotation(a.id, z + 1, "u", status="submitted", base_revision=0)
    store.save_annotation(a.id, z + 2, "u", status="draft", base_revision=1)   # later draft ignored
    store.save_annotation(b.id, z + 1, "u", status="draft", base_revision=0)   # only a draft
    store.save_annotation(c.id, z, "u", status="submitted", base_revision=0)   # other split
    ex = store.training_examples("p", split="train")
    assert len(ex) == 1
    image_id, img, cm = ex[0]
    assert image_id == a.id and img.shape == (16, 24, 3) and int(img[0, 0, 0]) == 1
    assert np.array_equal(cm, z + 1)
    assert [e[0] for e in store.training_examples("p", split="val")] == [c.id]


def test_schema_matches_models_after_migration(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_on_start_is_idempotent(make_store, project):
    again = make_store()     # second Store on the same database: upgrade is a no-op
    assert again.get_project("p").class_names == ["road", "car", "sky"]


def test_a_moved_data_folder_keeps_its_model_versions(db_url, tmp_path):
    """A job's model lies in the data folder and is written down relative to it: the folder
    moved (or restored from a backup elsewhere, or mounted at another path) still finds
    it. A folder outside the data folder (the shipped model) keeps its absolute path; a
    version written before, relative to the working directory, is still found there."""
    import os
    import shutil
    from storage import Store
    first = tmp_path / "first"
    st = Store(db_url, first)
    st.create_project("p", ["road"])
    (first / "models" / "p" / "job1").mkdir(parents=True)
    shipped = tmp_path / "weights" / "camvid"
    shipped.mkdir(parents=True)
    job = st.add_model_version("p", first / "models" / "p" / "job1", activate=True)
    base = st.add_model_version("p", shipped)
    assert job.weights_dir == str((first / "models" / "p" / "job1").resolve())
    from sqlalchemy import text
    with st.engine.connect() as c:
        stored = dict(c.execute(text("SELECT id, weights_dir FROM model_versions")).all())
    assert stored[job.id] == "models/p/job1" and stored[base.id] == str(shipped.resolve())
    st.close()
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    url = db_url or f"sqlite:///{moved / 'studio.db'}"
    st = Store(url, moved)
    try:
        assert st.active_model_version("p").weights_dir == str((moved / "models" / "p" / "job1").resolve())
        assert st.get_model_version(base.id).weights_dir == str(shipped.resolve())
        # a row written before this change: relative to the working directory
        with st.engine.begin() as c:
            c.execute(text("UPDATE model_versions SET weights_dir = :w WHERE id = :i"),
                      {"w": os.path.relpath(shipped), "i": base.id})
        assert Path(st.get_model_version(base.id).weights_dir).resolve() == shipped.resolve()
    finally:
        st.close()
