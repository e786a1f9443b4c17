"""The Model screen's fine-tuning panel: it queues, a worker runs, it shows and cancels."""
import pytest

from jobs import worker
from segui import finetune_panel as panel

from .conftest import pid_alive, training_pid, wait_for
from .test_worker import in_thread


@pytest.mark.slow   # real training
def test_finetune_panel_handlers_queue_show_progress_and_cancel(project):
    store, base = project
    assert panel.status(store, "toy")[0] == "No fine-tuning job yet."
    with pytest.raises(panel.PanelError, match="pick a project"):
        panel.start(store, "", 1, 1)
    assert "queued" in panel.start(store, "toy", 500, None)
    with pytest.raises(panel.PanelError, match="already has job"):
        panel.start(store, "toy", 1, None)
    job = store.list_jobs("toy")[0]
    assert job.status == "queued" and job.params["epochs"] == 500   # the panel itself starts no process
    assert "waiting for a worker" in panel.status(store, "toy")[0]
    t, box = in_thread(worker.run_one, store, heartbeat_s=0.5)     # what the app's local worker does
    assert wait_for(lambda: len(panel.status(store, "toy")[2]) >= 2)
    line, pct, curve, log = panel.status(store, "toy")
    assert "running" in line and 0 <= pct < 100 and list(curve.columns) == ["step", "loss"]
    assert "train / 5 val images" in log
    pid = training_pid(store, job.id)
    assert "cancelled" in panel.cancel(store, "toy")
    assert "cancelled" in panel.status(store, "toy")[0]
    with pytest.raises(panel.PanelError, match="no queued or running job"):
        panel.cancel(store, "toy")
    t.join(60)
    assert box["result"].status == "cancelled" and not pid_alive(pid)
    assert store.active_model_version("toy").id == base.id


def test_cancel_of_a_queued_job_needs_no_worker(project):
    store, base = project
    panel.start(store, "toy", 1, None)
    assert "cancelled" in panel.cancel(store, "toy")
    assert store.list_jobs("toy")[0].status == "cancelled"
    assert worker.run_one(store) is None          # nothing left for a worker
