"""Run one fine-tuning job: the project's data from the store, the recipe of
`models.finetune`, a new model version, promotion.

    python -m jobs.runner --job-id ID [--data-dir DIR] [--device cuda]     # what a worker starts
    python -m jobs.runner --project NAME [--epochs N] [--max-minutes M]      # queue a job and run it here
    torchrun --nproc_per_node 2 -m jobs.runner ...                          # DistributedDataParallel

The database URL comes from $STUDIO_DB_URL (or --db, visible in `ps`). A job starts
from its base model version (the project's active one when it was queued), trains on
the submitted annotations of every split but val, evaluates base and new model on the
submitted val annotations, writes the new version (safetensors + config + metrics;
into a temporary folder, then renamed) and promotes it when the rule of
`models.finetune.promotion` allows (at least 5 val images, val mIoU not lower), in
the same transaction that marks the job succeeded. Progress, heartbeat, metrics and
log lines go to the database; a cancel is noticed at the next step. Started by a
worker (`$STUDIO_WORKER_PID` set), the runner also stops, and fails its job, when that
worker dies.

Where a job trains is this process's setting (--device, a worker passes its own; default
auto), not part of the job's recipe. A job row queued before that change may still hold
a "device" parameter: it is honoured only when the runner is given no --device (as then).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from common.splits import training_splits
from models import finetune
from models.metrics import checkpoint_metrics
from models.segmenter import Segmenter
from models.train import SplitData
from storage.errors import JobStateError

from .queue import DB_URL_ENV, WORKER_PID_ENV, JobError, process_alive

WATCH_SECONDS = 1.0


def _split_data(store, project, split: str) -> SplitData:
    """Submitted annotations of a split; "train" also takes images with no split set
    (uploads in the app), so only the val split is held out for evaluation."""
    examples = [e for s in training_splits(split) for e in store.training_examples(project, s)]
    return SplitData([img for _, img, _ in examples], [cm for _, _, cm in examples])


def _val_signature(store, project_id: int, names: list[str]) -> str:
    """Identifies the val set (images and annotation revisions) and label set a val mIoU
    was measured on, so a job can reuse its base version's figure instead of re-measuring."""
    key = json.dumps([store.submitted_annotations(project_id, "val"), names])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _save_version(store, project, model, base, metrics, job_id: int):
    """Write weights to a temporary folder, then rename it: no half-written version is visible."""
    root = Path(store.data_dir) / "models" / project.name.replace("/", "_")
    final = root / f"job{job_id}-{int(time.time())}"
    tmp = root / (final.name + ".partial")
    model.config.metrics = checkpoint_metrics(metrics)
    model.save_pretrained(tmp)
    os.replace(tmp, final)
    return store.add_model_version(project.id, str(final), parent_id=base.id, metrics=metrics,
                                   name=f"fine-tune job {job_id}")


def watch_worker(store, job_id: int, rank: int, worker_pid: int, interval_s: float = WATCH_SECONDS) -> None:
    """A daemon thread: when the worker that started this runner dies (kill -9, crash;
    or, under torchrun, the torchrun agent between them), fail the job (rank 0) and exit
    at once. The job's active model is untouched: promotion happens only in the
    transaction that marks the job succeeded."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent or not process_alive(worker_pid):
                break
        if rank == 0:
            try:
                store.finish_job(job_id, "failed", error=f"the worker (pid {worker_pid}) died while the job "
                                                         "ran; the active model is unchanged")
            except Exception:  # noqa: BLE001 - already ended (cancelled, reaped); exit anyway
                pass
        print(f"jobs.runner: worker pid {worker_pid} is gone; job {job_id} stopped", file=sys.stderr, flush=True)
        os._exit(3)

    threading.Thread(target=watch, name="watch-worker", daemon=True).start()


def job_device(params: dict, device: str | None = None) -> str:
    """Where a job trains: the runner's ``device``; else a "device" an older job row holds
    (from when it was a recipe field); else auto."""
    return device or params.get("device") or "auto"


def run_job(store, job_id: int, show_progress: bool = False, device: str | None = None) -> dict:
    """Run one job to the end in this process (under torchrun: every rank calls it; rank
    0 talks to the database), training on ``device`` (None: see `job_device`)."""
    ddp = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if ddp else 0
    job = store.get_job(job_id)
    if rank == 0 and job.status == "queued":
        job = store.start_job(job_id)
    status = [job.status]
    if ddp:
        dist.broadcast_object_list(status, src=0)
    if status[0] != "running":
        return {"status": status[0]}
    project = store.get_project(job.project_id)
    params = finetune.default_params(**job.params)
    device = job_device(params, device)
    state = {"last": 0.0, "cancelled": False}

    def log(line: str) -> None:
        if rank == 0:
            store.update_job(job_id, log_line=line)

    try:
        base = (store.get_model_version(job.base_version_id) if job.base_version_id
                else store.active_model_version(project.id))
        if base is None:
            raise JobError("no base model version: the project has no active model")
        train = _split_data(store, project.id, "train")
        val = _split_data(store, project.id, "val")
        if not train.images:
            raise JobError(f"project {project.name!r} has no submitted annotations outside the val split: "
                           "nothing to train on")
        names = list(project.class_names)
        model, added = finetune.start_from(base.weights_dir, names, project.palette, project.ignore_index)
        log(f"base v{base.id}; {len(train.images)} train / {len(val.images)} val images; classes {names}"
            + (f"; new classes trained by name: {added}" if added else ""))
        if added and params.get("lr_new_words"):
            params = {**params, "lr": float(params["lr_new_words"])}
            log(f"learning rate {params['lr']:g}: words the model never learned ({len(added)} of {len(names)})")

        cfg = finetune.train_config(params, device)
        base_metrics = None
        signature = _val_signature(store, project.id, names)
        if rank == 0 and val.images:
            stored = base.metrics or {}
            if stored.get("val_signature") == signature and "miou" in stored:
                base_metrics = stored  # measured on this very val set by the job that made it
                log(f"base val mIoU {base_metrics['miou']:.4f} (stored; same val set and label set)")
            else:
                base_metrics = finetune.evaluate_model(Segmenter.from_pretrained(base.weights_dir), val, names,
                                                       project.ignore_index, cfg.device)
                log(f"base val mIoU {base_metrics['miou']:.4f}")

        started = time.time()

        def on_step(info: dict) -> None:
            state.setdefault("losses", []).append(info["loss"])
            now = time.time()
            if rank != 0 or now - state["last"] < 1.0:
                return
            state["last"] = now
            progress = info["step"] / info["total_steps"]
            if cfg.max_minutes:
                progress = max(progress, (now - started) / 60 / cfg.max_minutes)
            try:   # also the heartbeat
                store.update_job(job_id, progress=min(0.95, progress), step=info["step"],
                                 metrics={"loss": info["loss"], "epoch": info["epoch"],
                                          "losses": state["losses"][-500:]})
            except JobStateError:  # cancelled (or failed by a reaper): stop at this step
                state["cancelled"] = True

        alphas = [float(a) for a in params.get("blend") or [1.0]]
        base_state = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                      if alphas != [1.0] else None)
        finetune.fine_tune(model, train, params, device=device, on_step=on_step,
                           should_stop=lambda: state["cancelled"], show_progress=show_progress)
        agree = finetune.ranks_agree(model) if ddp else None
        if rank != 0:
            return {"status": "worker"}
        if state["cancelled"] or store.get_job(job_id).status != "running":
            return {"status": store.get_job(job_id).status}
        if store.get_project(project.id).class_names != names:
            raise JobError("the project's label set changed while the job ran; start a new job to train on it")
        blend = None
        if base_state is not None and len(val.images) >= finetune.MIN_VAL_TO_PROMOTE:
            # the val split decides how far the new model moves from its base
            alpha, new_metrics, tried = finetune.choose_blend(model, base_state, val, names, project.ignore_index,
                                                              cfg.device, alphas, base_metrics["miou"])
            blend = {"alpha": alpha, "tried": tried}
        else:
            new_metrics = (finetune.evaluate_model(model, val, names, project.ignore_index, cfg.device)
                           if val.images else None)
        if new_metrics is not None:
            new_metrics["val_signature"] = signature
        promote, reason = finetune.promotion(len(val.images), base_metrics and base_metrics["miou"],
                                             new_metrics and new_metrics["miou"])
        version = _save_version(store, project, model, base, new_metrics, job_id)
        summary = {
            "base_val_miou": base_metrics and base_metrics["miou"],
            "val_miou": new_metrics and new_metrics["miou"],
            "per_class_iou": new_metrics and new_metrics["per_class_iou"],
            "promoted": promote, "seconds": time.time() - started, "train_images": len(train.images),
            "val_images": len(val.images), "losses": state.get("losses", []),
            "not_promoted_because": None if promote else reason.split(": ", 1)[1],
            "world_size": dist.get_world_size() if ddp else 1, "ranks_identical_weights": agree,
            "blend": blend, "lr": float(params["lr"]),
        }
        try:
            if blend:
                store.update_job(job_id, log_line="blends base + a * (trained - base) on val: " + ", ".join(
                    f"a={a:g} mIoU {m:.4f}" for a, m in blend["tried"]) + f"; kept a={blend['alpha']:g}")
            store.update_job(job_id, log_line=f"new version v{version.id}: {reason}")
            # succeeded and (if promoted) active, in one transaction
            store.finish_job(job_id, "succeeded", result_version_id=version.id, metrics=summary,
                             activate=promote)
        except JobStateError:  # cancelled at the last moment: the version stays, not active
            return {"status": store.get_job(job_id).status, "version_id": version.id}
        return {"status": "succeeded", "version_id": version.id, **summary}
    except Exception as err:
        if rank == 0 and store.get_job(job_id).status == "running":
            store.finish_job(job_id, "failed", error=f"{type(err).__name__}: {err}")
        if isinstance(err, JobError):
            return {"status": "failed", "error": str(err)}
        raise


def _init_distributed() -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def _new_job(store, args) -> int:
    """--project: queue a job and claim it for this process (-1 on error)."""
    from .queue import enqueue

    try:
        job = enqueue(store, args.project, {"epochs": args.epochs, "max_minutes": args.max_minutes,
                                            "batch_size": args.batch_size})
        claimed = store.claim_job(job.project_id)
        if claimed is None or claimed.id != job.id:
            raise JobError(f"job {job.id} was claimed by a worker meanwhile; follow it in the app")
        return job.id
    except Exception as err:  # noqa: BLE001 - shown to the user, exit code 2
        print(f"error: {err}", file=sys.stderr)
        return -1


def main(argv: list[str] | None = None) -> int:
    from storage import Store

    ap = argparse.ArgumentParser(prog="python -m jobs.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=os.environ.get(DB_URL_ENV),
                    help=f"SQLAlchemy URL (default: ${DB_URL_ENV}, else SQLite in --data-dir); "
                         "a password here is visible in `ps`: prefer the variable")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--project", help="project name: queue a new job and run it here")
    ap.add_argument("--job-id", type=int, help="run this job (queued, or claimed by the worker that started us)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--device", help="auto, cpu or cuda[:N]: where the job trains (default: auto, or an older "
                         "job row's own device)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--progress", action="store_true", help="show a progress bar")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.project is None) == (args.job_id is None):
        ap.error("give either --project (new job) or --job-id (queued job)")
    ddp = _init_distributed()
    rank = dist.get_rank() if ddp else 0
    store = Store(args.db, args.data_dir)
    try:
        job_id = args.job_id
        if job_id is None:
            ids = [_new_job(store, args) if rank == 0 else 0]
            if ddp:
                dist.broadcast_object_list(ids, src=0)
            job_id = ids[0]
            if job_id < 0:
                return 2
        if os.environ.get(WORKER_PID_ENV):
            watch_worker(store, job_id, rank, int(os.environ[WORKER_PID_ENV]))
        result = run_job(store, job_id, show_progress=args.progress, device=args.device)
        if rank == 0:
            print(json.dumps({k: v for k, v in result.items() if k != "losses"}, default=str), flush=True)
        return 0 if result.get("status") in ("succeeded", "worker", "cancelled") else 1
    finally:
        store.close()
        if ddp:
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
