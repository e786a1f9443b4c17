"""Automatic fine-tuning (issue 20): with the project setting N on, the app queues a job
with the default recipe once N annotations were submitted since the newest job, never
two at once; off (the default) it never does. Through Studio.save_edits, as the Label
screen's Submit calls it (the check runs in the Studio's background worker)."""
import pytest

from models.finetune import default_params
from segui import access
from segui.errors import UserError
from segui.finetuning import AUTO_USER, maybe_auto_finetune
from segui.handlers import Loaded, Studio

from .conftest import job_with


@pytest.fixture
def studio(project):
    store, base = project
    st = Studio(store, device="cpu")
    st.score_submission = lambda *a: None      # the second reviewer's model is not what this tests
    yield st
    st.wait_idle(30)


def _submit(st, image_id, author="ann"):
    """What the Label screen's Submit does: save_edits(status="submitted"), then wait for
    the background work it starts."""
    info = st.store.get_image(image_id)
    ann = st.store.get_annotation(image_id)
    loaded = Loaded(image_id, info.filename, st.store.load_image(image_id), ann.class_map, info.revision,
                    "test", None, info.project_id)
    st.save_edits(loaded, ann.class_map, author, "submitted")
    assert st.wait_idle(30)


def _train_images(store):
    return [im.id for im in store.list_images("toy") if im.split == "train"]


def _auto_records(store, project="toy"):
    return [a for a in store.list_activity(project=project)
            if a.action == "job_started" and (a.details or {}).get("auto")]


def _after_a_job(store, base):
    """The project's 13 submissions came before its newest job (a cancelled one)."""
    store.cancel_job(job_with(store, base).id)


def test_every_two_submissions_queues_one_job_and_never_two(studio, project):
    store, base = project
    _after_a_job(store, base)
    store.set_auto_finetune_every("toy", 2)
    ids = _train_images(store)
    _submit(studio, ids[0])
    assert [j.status for j in store.list_jobs("toy")] == ["cancelled"]   # 1 of 2
    _submit(studio, ids[1], author="bea")
    jobs = store.list_jobs("toy")
    assert [j.status for j in jobs] == ["queued", "cancelled"]
    d = default_params()
    assert jobs[0].params == default_params(epochs=d["epochs"], max_minutes=d["max_minutes"])
    assert jobs[0].base_version_id == base.id
    (rec,) = _auto_records(store)
    assert rec.user == "bea" and rec.subject == f"job {jobs[0].id}"
    assert rec.details["job_id"] == jobs[0].id and rec.details["every"] == 2 and rec.details["submitted"] == 2
    # a third and a fourth submission while that job waits: no second job
    _submit(studio, ids[2])
    _submit(studio, ids[3])
    assert [j.status for j in store.list_jobs("toy")] == ["queued", "cancelled"]
    assert len(_auto_records(store)) == 1
    # once it has ended, the count starts at its creation: those two count, a job follows
    store.cancel_job(jobs[0].id)
    _submit(studio, ids[4])
    assert [j.status for j in store.list_jobs("toy")][0] == "queued"
    assert len(store.list_jobs("toy")) == 3 and len(_auto_records(store)) == 2


def test_without_any_job_every_submission_ever_counts(studio, project):
    store, _ = project
    store.set_auto_finetune_every("toy", 5)       # the project already has 13 submissions
    _submit(studio, _train_images(store)[0])
    assert [j.status for j in store.list_jobs("toy")] == ["queued"]
    assert _auto_records(store)[0].details["submitted"] == 14


def test_jobs_wait_for_the_val_images_that_let_a_job_promote_its_model(tmp_path, base_dir):
    """A new project's first N submissions hold about N/5 val images (the stable hash): a
    job then could not make its model active by itself (MIN_VAL_TO_PROMOTE), and a loop
    that runs by itself never switches to it. The job waits for them, and the Model screen
    says so; the submissions meanwhile still count."""
    import numpy as np

    from models.finetune import MIN_VAL_TO_PROMOTE
    from storage import Store

    from .conftest import png_bytes, populate
    from ..toy import synthetic
    store = Store(None, tmp_path / "data")
    try:
        populate(store, "few", base_dir, n_train=8, n_val=MIN_VAL_TO_PROMOTE - 2)
        st = Studio(store, device="cpu")
        st.score_submission = lambda *a: None
        text = st.set_auto_finetune("few", 2)
        assert "every 2" in text and "wait for 2 more submitted val image(s)" in text
        assert "Automatic jobs wait until then" in st.promotion_readiness("few")
        for image_id in [im.id for im in store.list_images("few") if im.split == "train"][:3]:
            _submit(st, image_id)
        assert store.list_jobs("few") == [] and not _auto_records(store, "few")   # 3 >= 2 submitted, 3 val
        rng = np.random.default_rng(1)
        for k in range(2):
            img, cm = synthetic(rng)
            info = store.add_image("few", png_bytes(img), f"val{k}.png", split="val")
            store.save_annotation(info.id, cm, "tester", "draft", base_revision=0)
            _submit(st, info.id)
        (job,) = store.list_jobs("few")                # the fifth val image: the job starts
        assert job.status == "queued"
        assert "Automatic jobs wait" not in st.promotion_readiness("few")
        assert "wait" not in st.set_auto_finetune("few", 2)
        st.wait_idle(30)
    finally:
        store.close()


@pytest.mark.parametrize("every", [None, 0])
def test_off_never_queues(studio, project, every):
    store, _ = project
    store.set_auto_finetune_every("toy", every)
    for image_id in _train_images(store)[:3]:
        _submit(studio, image_id)
    assert store.list_jobs("toy") == [] and _auto_records(store) == []


def test_a_removed_project_gets_no_automatic_job_until_it_is_restored(studio, project):
    """A page still open on a project an admin removed can submit (nothing a labeller does
    is lost, and a restore brings it back); that submission queues no job."""
    store, _ = project
    store.set_auto_finetune_every("toy", 1)        # the project already has 13 submissions
    store.remove_project("toy")
    _submit(studio, _train_images(store)[0])
    assert store.get_annotation(_train_images(store)[0]).status == "submitted"
    assert store.list_jobs("toy") == [] and _auto_records(store) == []
    store.restore_project("toy")
    _submit(studio, _train_images(store)[1])
    assert [j.status for j in store.list_jobs("toy")] == ["queued"]


def test_a_job_that_cannot_be_queued_is_logged_not_raised(project, caplog):
    store, base = project
    store.set_auto_finetune_every("toy", 1)
    # no active model version: enqueue refuses
    from sqlalchemy import update
    from storage.models import ModelVersion
    with store.engine.begin() as c:
        c.execute(update(ModelVersion).values(is_active=False))
    assert maybe_auto_finetune(store, "toy", None) is None
    assert store.list_jobs("toy") == [] and "not queued" in caplog.text


def test_the_model_screen_setting_through_studio(studio, project):
    store, _ = project
    assert studio.auto_finetune_every("toy") == 0
    assert "every 3" in studio.set_auto_finetune("toy", 3)
    assert store.auto_finetune_every("toy") == 3 and studio.auto_finetune_every("toy") == 3
    assert "off" in studio.set_auto_finetune("toy", 0)
    assert store.auto_finetune_every("toy") is None
    for bad in (-1, 2.5):
        with pytest.raises(UserError):
            studio.set_auto_finetune("toy", bad)
    with pytest.raises(UserError, match="pick a project"):
        studio.set_auto_finetune("", 2)
    assert AUTO_USER == "auto"


def test_the_endpoints_are_admin_only_and_in_the_app(studio):
    from segui.ui import build_app
    assert access.ENDPOINTS["auto_finetune"] == access.Act.ADMIN
    assert access.ENDPOINTS["auto_finetune_value"] == access.Act.ADMIN
    app = build_app(studio)             # refuses an endpoint without a rule
    names = {fn.api_name for fn in app.fns.values()}
    assert {"auto_finetune", "auto_finetune_value", "auto_finetune_editable"} <= names
    # not editable until the project's value has come (a number typed before was overwritten)
    field = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "segui-auto-finetune")
    assert field.interactive is False


def test_the_model_screen_endpoints_over_http(studio, project):
    """What the page sends: /auto_finetune saves N and answers with it; /auto_finetune_value
    shows the project's N (no accounts: the one person is an admin)."""
    from gradio_client import Client

    from ..app.conftest import served
    store, _ = project
    with served(studio) as url:
        c = Client(url, verbose=False)
        value, text = c.predict("toy", 4, api_name="/auto_finetune")
        assert value == 4 and "every 4" in text and store.auto_finetune_every("toy") == 4
        assert c.predict("toy", api_name="/auto_finetune_value") == 4
        value, text = c.predict("toy", 0, api_name="/auto_finetune")
        assert value == 0 and "off" in text and store.auto_finetune_every("toy") is None


def test_the_label_screen_hears_of_the_newest_job_and_why_its_model_was_not_promoted(studio):
    """Studio.job_brief (the heartbeat's ``job``): a job under way with its progress; a
    succeeded one with whether it was promoted, and if not why, in the Model panel's words."""
    st = studio
    assert st.job_brief("toy") is None
    job = st.store.create_job("toy", {})
    assert st.job_brief("toy") == {"id": job.id, "status": "queued", "progress": 0.0}
    st.store.claim_job()
    st.store.update_job(job.id, progress=0.4041)
    assert st.job_brief("toy") == {"id": job.id, "status": "running", "progress": 0.404}
    st.store.finish_job(job.id, "succeeded", metrics={"val_miou": 0.5, "base_val_miou": 0.6, "promoted": False})
    brief = st.job_brief("toy")
    assert brief["promoted"] is False and brief["why"] == "val mIoU dropped"
    assert "not promoted: val mIoU dropped" in st.finetune_status("toy")[0]
    j2 = st.store.create_job("toy", {})
    st.store.claim_job()
    st.store.finish_job(j2.id, "succeeded", metrics={})
    assert st.job_brief("toy")["why"] == "no val images to compare on"
    j3 = st.store.create_job("toy", {})
    st.store.claim_job()
    st.store.finish_job(j3.id, "succeeded", metrics={"val_miou": 0.7, "base_val_miou": 0.6, "promoted": True})
    assert st.job_brief("toy") == {"id": j3.id, "status": "succeeded", "progress": 1.0, "promoted": True}


def test_the_heartbeat_does_not_show_a_dead_workers_job_as_running(studio, monkeypatch):
    """A running job whose worker stopped beating is reaped when the heartbeat reads it
    (the Model panel's rule), so the Label screen's line does not say "running" for ever."""
    import time

    from jobs import queue
    st = studio
    job = st.store.create_job("toy", {})
    st.store.claim_job()
    assert st.job_brief("toy")["status"] == "running"
    monkeypatch.setattr(queue, "STALE_AFTER_S", 0.05)
    time.sleep(0.2)
    assert st.job_brief("toy") == {"id": job.id, "status": "failed", "progress": 0.0}
