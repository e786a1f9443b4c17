"""A worker: claims queued fine-tuning jobs from the database and runs them.

    python -m jobs.worker [--db URL] [--data-dir DIR] [--device cuda|cpu|auto] [--once]
                          [--poll-seconds S] [--nproc N] [--threads N] [--project NAME]

    STUDIO_DB_URL=postgresql+psycopg://u:pw@host/db python -m jobs.worker --data-dir /srv/studio --device cuda

The database URL: --db, else $STUDIO_DB_URL, else SQLite in --data-dir. A password in
--db is visible to every user of the machine (`ps`): prefer $STUDIO_DB_URL. Children
get the URL through the environment only. --data-dir must be the folder the app uses
(the images are read from it, new model versions written to it).

The loop: fail running jobs without a heartbeat (`jobs.queue.STALE_AFTER_S`), claim
the oldest queued job (`Store.claim_job`: `SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL, so any number of workers on any machines; SQLite: one worker at a time is
the intended use, e.g. the app's local worker), run it in a child process
(`python -m jobs.runner --job-id ID`, or under `torchrun --nproc_per_node N` with
--nproc N > 1), heartbeat the job while the child runs, then poll again. --once runs
at most one job (none when nothing is queued) and exits: 0, or 1 when its job failed.

Failures: a child that exits (crash, kill -9, out of memory) before ending its job
leaves the job failed with its exit code and last output lines; a cancelled job whose
child has not stopped by itself after a grace period is terminated; a worker stopped by
SIGTERM / Ctrl+C stops its child and fails its job. A worker killed by SIGKILL cannot
clean up: its runner notices within a second that the worker is gone, fails the job
and exits; if both died (the machine went away), the job has no heartbeat and the next
worker or app poll marks it failed after STALE_AFTER_S. Failed jobs are not re-queued:
the user starts a new one. Promotion happens in the transaction that marks a job
succeeded, so no failure changes the active model. The child's output goes to
DATA_DIR/job-logs/job-ID.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from storage.errors import JobStateError

from .queue import DB_URL_ENV, WORKER_PID_ENV, process_alive, reap_stale_jobs

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = "job-logs"           # under the data folder: one log file per job
HEARTBEAT_S = 5.0              # the worker's heartbeat while its child runs (the runner beats every second)
CANCEL_GRACE_S = 20.0          # a cancelled job's child stops by itself within this, or is terminated
KILL_GRACE_S = 10.0            # SIGTERM, then SIGKILL after this


def runner_command(job_id: int, data_dir: str | Path, device: str | None = None, nproc: int = 1,
                   threads: int | None = None) -> list[str]:
    """The child's command line (no database URL in it: that goes in the environment)."""
    args = ["-m", "jobs.runner", "--job-id", str(job_id), "--data-dir", str(data_dir)]
    if device:
        args += ["--device", device]
    if threads:
        args += ["--threads", str(threads)]
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                *args]
    return [sys.executable, *args]


def _log_tail(path: Path, lines: int = 5) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)   # the child leads its own process group (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(store, job, *, device: str | None = None, nproc: int = 1, threads: int | None = None,
              heartbeat_s: float = HEARTBEAT_S, cancel_grace_s: float = CANCEL_GRACE_S,
              kill_grace_s: float = KILL_GRACE_S, should_stop: Callable[[], bool] = lambda: False,
              say: Callable[[str], None] = print):
    """Run a job this worker has claimed in a child process until it ends; the job's
    final JobInfo. The job always ends here: by the runner, or failed by us."""
    data_dir = Path(store.data_dir).resolve()
    log_path = data_dir / LOG_DIR / f"job-{job.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, DB_URL_ENV: store.url, WORKER_PID_ENV: str(os.getpid())}
    cmd = runner_command(job.id, data_dir, device, nproc, threads)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    how = f"torchrun, {nproc} ranks" if nproc > 1 else "one process"
    note = f"worker pid {os.getpid()} on {socket.gethostname()}: training process pid {proc.pid} ({how})"
    say(f"job {job.id}: {note}")
    try:
        store.update_job(job.id, log_line=note)
    except JobStateError:
        pass
    beat = time.monotonic()
    ended_at = None        # when the job was cancelled / failed elsewhere, or we were told to stop
    term_at = None         # when the child was sent SIGTERM
    reason = None
    while True:
        try:
            code = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if ended_at is None and should_stop():
            ended_at, reason = now, "the worker was stopped before the job finished"
            term_at = now
            _signal_group(proc, signal.SIGTERM)
        elif ended_at is None and now - beat >= heartbeat_s:
            beat = now
            try:
                store.update_job(job.id)   # heartbeat
            except JobStateError:
                ended_at = now             # cancelled (or reaped): the runner should stop by itself
            except Exception as err:  # noqa: BLE001 - a database hiccup: keep supervising
                say(f"job {job.id}: heartbeat failed: {type(err).__name__}: {err}")
        if ended_at is not None and term_at is None and now - ended_at >= cancel_grace_s:
            say(f"job {job.id}: ended, but its training process did not stop; terminating it")
            term_at = now
            _signal_group(proc, signal.SIGTERM)
        if term_at is not None and now - term_at >= kill_grace_s:
            _signal_group(proc, signal.SIGKILL)
            term_at = float("inf")
    if store.get_job(job.id).status == "running":    # the child died before ending its job
        tail = _log_tail(log_path)
        error = reason or f"the training process exited with code {code} before finishing"
        try:
            if tail:
                store.update_job(job.id, log_line=[f"[output] {ln}" for ln in tail])
            store.finish_job(job.id, "failed", error=error + (f"; last output: {tail[-1]}" if tail else ""))
        except JobStateError:
            pass
    done = store.get_job(job.id)
    say(f"job {job.id}: {done.status}" + (f" ({done.error})" if done.error else ""))
    return done


def run_one(store, *, project: str | int | None = None, **options):
    """Claim the oldest queued job (of ``project``, when given) and run it to its end in
    a child process; its final JobInfo, or None when nothing was queued. ``options``:
    those of :func:`supervise`. What the worker loop, `--once` and the loop benchmark use."""
    job = store.claim_job(project)
    if job is None:
        return None
    return supervise(store, job, **options)


def serve(store, *, once: bool = False, poll_seconds: float = 2.0, project: str | int | None = None,
          should_stop: Callable[[], bool] = lambda: False, **options):
    """The worker loop: reap stale jobs, claim and run, poll. Returns the last job run
    (with ``once``: the only one, or None)."""
    say = options.get("say", print)
    last = None
    while not should_stop():
        try:
            reap_stale_jobs(store)
            job = run_one(store, project=project, should_stop=should_stop, **options)
        except Exception as err:  # noqa: BLE001 - e.g. the database is unreachable for a while
            if once:
                raise
            say(f"error: {type(err).__name__}: {err}; trying again in {poll_seconds:g} s")
            job = None
        last = job or last
        if once:
            break
        if job is None:
            end = time.monotonic() + poll_seconds
            while time.monotonic() < end and not should_stop():
                time.sleep(min(0.2, poll_seconds))
    return last


class LocalWorker:
    """The app's own worker: one `python -m jobs.worker` child on the app's database and
    data folder. It exits with the app: `stop()` (SIGTERM), and by itself when the app
    process is gone (--parent-pid)."""

    def __init__(self, url: str, data_dir: str | Path, *, device: str | None = None,
                 poll_seconds: float = 1.0):
        self.url, self.data_dir, self.device, self.poll_seconds = url, Path(data_dir), device, poll_seconds
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "jobs.worker", "--data-dir", str(self.data_dir.resolve()),
               "--poll-seconds", str(self.poll_seconds), "--parent-pid", str(os.getpid())]
        return cmd + (["--device", self.device] if self.device else [])

    def start(self) -> "LocalWorker":
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env={**os.environ, DB_URL_ENV: self.url})
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = KILL_GRACE_S + 20) -> int | None:
        """SIGTERM (the worker stops its job's child and fails the job), then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "LocalWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(database URL)"


def main(argv: list[str] | None = None) -> int:
    from storage import Store

    ap = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None,
                    help=f"SQLAlchemy URL (default: ${DB_URL_ENV}, else SQLite in --data-dir); "
                         f"a password here is visible in `ps`: prefer ${DB_URL_ENV}")
    ap.add_argument("--data-dir", default="data", help="the app's data folder (images, model versions)")
    ap.add_argument("--device", default=None,
                    help="auto, cpu or cuda[:N]: where jobs train (default: auto, or an older job row's "
                         "own device)")
    ap.add_argument("--once", action="store_true", help="run at most one queued job, then exit")
    ap.add_argument("--poll-seconds", type=float, default=2.0, help="wait between looks at an empty queue")
    ap.add_argument("--nproc", type=int, default=1, help="ranks per job: > 1 runs each job under torchrun (DDP)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per training process")
    ap.add_argument("--project", default=None, help="take only this project's jobs")
    ap.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)  # the app: exit with it
    args = ap.parse_args(argv)
    if args.nproc < 1:
        ap.error("--nproc must be at least 1")
    url = args.db or os.environ.get(DB_URL_ENV) or None
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def should_stop() -> bool:
        if args.parent_pid and not stop.is_set() and (os.getppid() != args.parent_pid
                                                        or not process_alive(args.parent_pid)):
            stop.set()   # the app that started us is gone
        return stop.is_set()

    def say(line: str) -> None:
        print(f"jobs.worker: {line}", flush=True)

    store = Store(url, args.data_dir)
    say(f"pid {os.getpid()} on {_safe_url(store.url)}, data in {Path(args.data_dir).resolve()}"
        + (f", {args.nproc} ranks per job" if args.nproc > 1 else "") + (", one job" if args.once else ""))
    try:
        job = serve(store, once=args.once, poll_seconds=args.poll_seconds, project=args.project,
                    should_stop=should_stop, say=say, device=args.device, nproc=args.nproc, threads=args.threads)
    finally:
        store.close()
    if args.once:
        print(json.dumps(None if job is None else {"job_id": job.id, "status": job.status, "error": job.error}),
              flush=True)
        return 1 if job is not None and job.status == "failed" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
