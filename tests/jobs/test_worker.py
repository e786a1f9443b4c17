import pytest
"""jobs.worker: a child process per job, cancel, a killed training process, a killed
worker, torchrun DDP, two workers on PostgreSQL, the compatibility CLI."""
import json
import os
import signal
import subprocess
import sys
import threading


from jobs import queue, worker
from storage import Store

from .conftest import FAST, LONG, REPO, pid_alive, populate, training_pid, wait_for

pytestmark = pytest.mark.slow   # real training in child processes


def in_thread(fn, *a, **kw):
    """Run fn in a thread; returns (thread, box) where box["result"] is its result."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", fn(*a, **kw)), daemon=True)
    t.start()
    return t, box


def worker_process(url, data_dir, *args):
    """`python -m jobs.worker` with the URL in its environment, as the app starts it."""
    return subprocess.Popen([sys.executable, "-m", "jobs.worker", "--data-dir", str(data_dir), *args],
                            cwd=REPO, env={**os.environ, queue.DB_URL_ENV: url, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def test_worker_once_runs_nothing_when_the_queue_is_empty(project):
    store, _ = project
    assert worker.run_one(store) is None
    assert worker.serve(store, once=True) is None


def test_cancel_stops_the_running_job_and_keeps_the_active_model(project):
    store, base = project
    job = queue.enqueue(store, "toy", LONG)
    t, box = in_thread(worker.run_one, store, heartbeat_s=0.5)
    assert wait_for(lambda: store.get_job(job.id).step > 0), store.get_job(job.id)
    pid = training_pid(store, job.id)
    assert store.url not in cmdline(pid) and "--job-id" in cmdline(pid)   # the URL travels in the environment
    queue.cancel(store, job.id)
    t.join(60)
    assert box["result"].status == "cancelled" and box["result"].id == job.id
    assert not pid_alive(pid)
    assert store.active_model_version("toy").id == base.id
    assert len(store.list_model_versions("toy")) == 1


def test_a_killed_training_process_fails_the_job_and_the_worker_goes_on(project):
    store, base = project
    job = queue.enqueue(store, "toy", LONG)
    t, box = in_thread(worker.run_one, store)
    assert wait_for(lambda: store.get_job(job.id).step > 0)
    os.kill(training_pid(store, job.id), signal.SIGKILL)
    t.join(60)
    done = box["result"]
    assert done.status == "failed" and "exited with code -9" in done.error
    assert store.active_model_version("toy").id == base.id
    models_dir = os.path.join(store.data_dir, "models")
    assert not os.path.isdir(models_dir) or os.listdir(os.path.join(models_dir, "toy")) == []
    # a new job can be queued after the crash
    assert queue.enqueue(store, "toy", FAST).status == "queued"


def test_a_killed_worker_leaves_the_job_failed_and_the_active_model_intact(project):
    store, base = project
    job = queue.enqueue(store, "toy", LONG)
    w = worker_process(store.url, store.data_dir, "--once")
    try:
        assert wait_for(lambda: store.get_job(job.id).step > 0), w.stdout.read() if w.poll() is not None else ""
        child = training_pid(store, job.id)
        assert store.url not in cmdline(w.pid)
        w.send_signal(signal.SIGKILL)
        w.wait(10)
        # the training process notices its worker is gone, fails the job and exits
        assert wait_for(lambda: store.get_job(job.id).status != "running", 30)
        done = store.get_job(job.id)
        assert done.status == "failed" and "worker" in done.error and "died" in done.error
        assert wait_for(lambda: not pid_alive(child), 30)
        assert store.active_model_version("toy").id == base.id
        assert len(store.list_model_versions("toy")) == 1
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def test_worker_nproc_2_runs_the_job_under_torchrun_with_identical_weights(project, monkeypatch):
    store, base = project
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = queue.enqueue(store, "toy", {**FAST, "epochs": 2, "batch_size": 2})
    done = worker.run_one(store, nproc=2, device="cpu")
    # (the whole log in the message: pytest shortens a tuple's repr, and a rank's crash is in it)
    assert done.id == job.id and done.status == "succeeded", f"{done.error}\n" + "\n".join(done.log_tail)
    assert done.metrics["world_size"] == 2
    assert done.metrics["ranks_identical_weights"] is True
    assert any("torchrun, 2 ranks" in line for line in done.log_tail)


def test_two_workers_on_postgresql_run_each_of_two_jobs_exactly_once(pg_url, tmp_path, base_dir):
    store = Store(pg_url, tmp_path / "data")
    try:
        jobs = []
        for name in ("toy", "toy2"):    # one queued-or-running job per project: two projects
            populate(store, name, base_dir, n_train=4)
            jobs.append(queue.enqueue(store, name, {**FAST, "epochs": 2}).id)
        workers = [worker_process(pg_url, store.data_dir, "--once") for _ in range(2)]
        outs = []
        for w in workers:
            out, _ = w.communicate(timeout=240)
            assert w.returncode == 0, out
            outs.append(json.loads(out.strip().splitlines()[-1]))
        assert sorted(o["job_id"] for o in outs) == sorted(jobs)     # each worker ran one, a different one
        for jid in jobs:
            done = store.get_job(jid)
            assert done.status == "succeeded", done.error
            assert sum("training process pid" in line for line in done.log_tail) == 1   # started once
            assert sum(" train / " in line for line in done.log_tail) == 1             # trained once
        assert store.claim_job() is None
    finally:
        store.close()


def test_models_finetune_cli_still_runs_a_job_and_says_where_the_code_went(project):
    store, _ = project
    out = subprocess.run([sys.executable, "-m", "models.finetune", "--data-dir", str(store.data_dir),
                          "--project", "toy", "--epochs", "1", "--device", "cpu"],
                         cwd=REPO, env={**os.environ, queue.DB_URL_ENV: store.url},
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "jobs.runner" in out.stderr and "jobs.worker" in out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    assert store.list_jobs("toy")[0].status == "succeeded"


def test_the_apps_local_worker_stopped_mid_job_fails_the_job_and_its_training(project):
    """LocalWorker.stop() (the app exiting): SIGTERM; the worker stops the training
    process and fails the job rather than leaving it running."""
    store, base = project
    job = queue.enqueue(store, "toy", LONG)
    w = worker.LocalWorker(store.url, store.data_dir, poll_seconds=0.2).start()
    try:
        assert wait_for(lambda: store.get_job(job.id).step > 0)
        child = training_pid(store, job.id)
        assert w.stop() == 0
        done = store.get_job(job.id)
        assert done.status == "failed" and "worker was stopped" in done.error
        assert not pid_alive(child)
        assert store.active_model_version("toy").id == base.id
    finally:
        w.stop()


def test_the_local_worker_exits_when_the_app_process_is_killed(tmp_path):
    """An app killed by SIGKILL cannot stop its worker: the worker sees its parent gone."""
    code = ("import sys, time; from jobs.worker import LocalWorker; "
            "w = LocalWorker(sys.argv[1], sys.argv[2], poll_seconds=0.2).start(); "
            "print(w.proc.pid, flush=True); time.sleep(600)")
    app = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path}/studio.db", str(tmp_path)],
                           cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(app.stdout.readline())
        assert pid_alive(pid)
        app.kill()
        app.wait()
        assert wait_for(lambda: not pid_alive(pid), 30)
    finally:
        app.kill()


def fake_runner(monkeypatch, code: str):
    """The worker starts `python -c code` instead of jobs.runner (no torch: fast)."""
    monkeypatch.setattr(worker, "runner_command", lambda *a, **kw: [sys.executable, "-c", code])


def test_the_worker_heartbeats_while_its_child_is_silent_and_fails_a_job_left_running(project, monkeypatch):
    store, _ = project
    fake_runner(monkeypatch, "import time; time.sleep(2.5)")       # a runner that never reports
    job = queue.enqueue(store, "toy", FAST)
    done = worker.run_one(store, heartbeat_s=0.3)
    assert done.id == job.id and done.status == "failed"
    assert "exited with code 0 before finishing" in done.error
    assert (done.heartbeat_at - done.started_at).total_seconds() >= 1.5   # the worker's own beats


def test_a_cancelled_job_whose_child_does_not_stop_is_terminated(project, monkeypatch):
    store, _ = project
    fake_runner(monkeypatch, "import time; print('stuck', flush=True); time.sleep(120)")
    job = queue.enqueue(store, "toy", FAST)
    t, box = in_thread(worker.run_one, store, heartbeat_s=0.2, cancel_grace_s=0.5, kill_grace_s=2)
    assert wait_for(lambda: training_pid(store, job.id) is not None, 30)
    pid = training_pid(store, job.id)
    queue.cancel(store, job.id)
    t.join(30)
    assert not t.is_alive() and box["result"].status == "cancelled" and not pid_alive(pid)
    log = os.path.join(store.data_dir, "job-logs", f"job-{job.id}.log")
    assert "stuck" in open(log).read()       # the child's output is kept per job
