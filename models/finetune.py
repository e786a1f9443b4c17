"""Fine-tuning jobs: labellers' submitted corrections -> a new model version.

    python -m models.finetune --db URL --data-dir DIR --project NAME [--epochs N] [--max-minutes M]
    python -m models.finetune --db URL --data-dir DIR --job-id ID        # run a queued job (the app's button)
    torchrun --nproc_per_node 2 -m models.finetune ...                    # DistributedDataParallel

A job starts from the project's active model version, trains on the submitted
annotations of the train split, evaluates base and new model on the submitted val
annotations, writes the new version (safetensors + config + metrics; written to a
temporary folder, then renamed) and promotes it when val mIoU does not drop.
Progress, heartbeat, metrics and log lines go to the database; cancel is noticed at
the next step. The app starts jobs with `start_job`, which runs them in their own
process, never in the web server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from storage.errors import JobStateError

from .inference import Predictor, evaluate_arrays
from .segmenter import Segmenter
from .train import SplitData, TrainConfig, train_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DB_URL_ENV = "STUDIO_DB_URL"  # database URL for worker processes (keeps passwords off `ps`)
STALE_AFTER_S = 180.0  # a running job with no heartbeat for this long is marked failed
MIN_VAL_TO_PROMOTE = 5  # fewer val images say too little about a model to replace the active one
_WORKERS: dict[tuple[str, int], subprocess.Popen] = {}  # (db url, job id) -> worker started here


class JobError(RuntimeError):
    """A job that cannot run (no data, no base model, label set changed)."""


def default_params(**overrides) -> dict:
    """A job's recipe. Tuned on the loop benchmark (BENCHMARKS.md): the image encoder is
    frozen (steps twice as fast on a CPU, so more of them fit the time budget), the
    decoder learns at a high rate, and the loss is plain cross-entropy: class weights
    buy rare-class recall with extra wrong pixels, and wrong pixels are what a labeller
    corrects. The time budget, not the epoch cap, usually ends a job."""
    params = {"epochs": 100, "max_minutes": 3.5, "batch_size": 4, "crop": [256, 320], "scale": [0.5, 1.75],
              "lr": 6e-3, "class_weight_power": 0.0, "freeze_blocks": 16, "device": "auto"}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params


def _train_config(params: dict) -> TrainConfig:
    return TrainConfig(
        epochs=int(params["epochs"]), batch_size=int(params["batch_size"]), crop=tuple(params["crop"]),
        scale=tuple(params["scale"]), lr=float(params["lr"]), encoder_lr_mult=0.3, warmup_steps=20,
        class_weight_power=float(params["class_weight_power"]), device=params["device"],
        max_minutes=params.get("max_minutes"), seed=int(params.get("seed", 0)),
        freeze_blocks=int(params.get("freeze_blocks", 0)),
    )


# -- starting, cancelling and reaping jobs (called by the app) ---------------------------
def start_job(store, project: str | int, params: dict | None = None, *, wait: bool = False):
    """Queue a job on the active model version and run it in a separate process.
    Returns the queued JobInfo (or the finished one with wait=True)."""
    reap_dead_jobs(store, project)
    base = store.active_model_version(project)
    if base is None:
        raise JobError("the project has no active model version to fine-tune; add or activate one first")
    if not (store.submitted_annotations(project, "train") or store.submitted_annotations(project, "none")):
        raise JobError("nothing to train on: submit at least one annotation (of an image not in the val split) first")
    job = store.create_job(project, default_params(**(params or {})), base.id)
    # the URL (it may hold a password) goes through the environment, not the visible command line
    cmd = [sys.executable, "-m", "models.finetune", "--data-dir", str(store.data_dir), "--job-id", str(job.id)]
    env = {**os.environ, DB_URL_ENV: store.url}
    log = open(Path(store.data_dir) / f"job-{job.id}.log", "ab")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    _WORKERS[(store.url, job.id)] = proc
    if wait:
        proc.wait()
        reap_dead_jobs(store, project)
        return store.get_job(job.id)
    return job


def cancel_job(store, job_id: int):
    """Queued -> cancelled at once; running -> cancelled, the worker stops at its next step."""
    return store.cancel_job(job_id)


def reap_dead_jobs(store, project: str | int | None = None) -> list[int]:
    """Jobs whose worker died (kill -9, crash) are marked failed: workers started by this
    process are checked directly, others by their heartbeat. The active model is untouched."""
    failed = []
    for (url, job_id), proc in list(_WORKERS.items()):
        code = proc.poll()
        if url != store.url or code is None:
            continue
        del _WORKERS[(url, job_id)]
        job = store.get_job(job_id)
        if job.status in ("queued", "running"):
            if job.status == "queued":
                store.start_job(job_id)
            store.finish_job(job_id, "failed", error=f"the worker process exited with code {code} before finishing")
            failed.append(job_id)
    failed += store.mark_stale_jobs(STALE_AFTER_S)
    return failed


# -- running a job (in the worker process) ----------------------------------------------
def _split_data(store, project, split: str) -> SplitData:
    """Submitted annotations of a split; "train" also takes images with no split set
    (uploads in the app), so only the val split is held out for evaluation."""
    splits = ["train", "none"] if split == "train" else [split]
    examples = [e for s in splits for e in store.training_examples(project, s)]
    return SplitData([img for _, img, _ in examples], [cm for _, _, cm in examples])


def run_job(store, job_id: int, show_progress: bool = False) -> dict:
    """Run one job to the end in this process (rank 0 talks to the database)."""
    ddp = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if ddp else 0
    job = store.get_job(job_id)
    if rank == 0 and job.status == "queued":
        job = store.start_job(job_id)
    project = store.get_project(job.project_id)
    params = default_params(**job.params)
    state = {"last": 0.0, "cancelled": False}

    def log(line: str) -> None:
        if rank == 0:
            store.update_job(job_id, log_line=line)

    try:
        base = store.get_model_version(job.base_version_id) if job.base_version_id else store.active_model_version(project.id)
        if base is None:
            raise JobError("no base model version: the project has no active model")
        train = _split_data(store, project.id, "train")
        val = _split_data(store, project.id, "val")
        if not train.images:
            raise JobError(f"project {project.name!r} has no submitted annotations outside the val split: nothing to train on")
        names = list(project.class_names)
        model = Segmenter.from_pretrained(base.weights_dir)
        added = [n for n in names if n not in model.config.class_names]
        model.config.class_names = names
        model.config.class_colors = [list(map(int, c)) for c in project.palette]
        model.config.ignore_index = project.ignore_index
        log(f"base v{base.id}; {len(train.images)} train / {len(val.images)} val images; classes {names}"
            + (f"; new classes trained by name: {added}" if added else ""))

        cfg = _train_config(params)
        base_metrics = None
        signature = _val_signature(store, project.id, names)
        if rank == 0 and val.images:
            stored = base.metrics or {}
            if stored.get("val_signature") == signature and "miou" in stored:
                base_metrics = stored  # measured on this very val set by the job that made it
                log(f"base val mIoU {base_metrics['miou']:.4f} (stored; same val set and label set)")
            else:
                base_metrics = _evaluate_model(Segmenter.from_pretrained(base.weights_dir), val, names,
                                               project.ignore_index, cfg.device)
                log(f"base val mIoU {base_metrics['miou']:.4f}")

        def on_step(info: dict) -> None:
            state.setdefault("losses", []).append(info["loss"])
            now = time.time()
            if rank != 0 or now - state["last"] < 1.0:
                return
            state["last"] = now
            progress = info["step"] / info["total_steps"]
            if cfg.max_minutes:
                progress = max(progress, (now - started) / 60 / cfg.max_minutes)
            try:
                store.update_job(job_id, progress=min(0.95, progress), step=info["step"],
                                 metrics={"loss": info["loss"], "epoch": info["epoch"],
                                          "losses": state["losses"][-500:]})
            except JobStateError:  # cancelled (or failed by a reaper): stop at this step
                state["cancelled"] = True

        started = time.time()
        train_model(model, train, None, cfg, out_dir=None, on_step=on_step,
                             should_stop=lambda: state["cancelled"], show_progress=show_progress)
        agree = _ranks_agree(model) if ddp else None
        if rank != 0:
            return {"status": "worker"}
        if state["cancelled"] or store.get_job(job_id).status != "running":
            return {"status": store.get_job(job_id).status}
        if store.get_project(project.id).class_names != names:
            raise JobError("the project's label set changed while the job ran; start a new job to train on it")
        new_metrics = _evaluate_model(model, val, names, project.ignore_index, cfg.device) if val.images else None
        if new_metrics is not None:
            new_metrics["val_signature"] = signature
        version = _save_version(store, project, model, base, new_metrics, job_id)
        enough_val = len(val.images) >= MIN_VAL_TO_PROMOTE
        promote = (enough_val and new_metrics is not None and base_metrics is not None
                   and new_metrics["miou"] >= base_metrics["miou"])
        if promote:
            store.activate_model_version(version.id)
        reason = ("promoted" if promote else
                  "not promoted: no val images to compare on" if new_metrics is None else
                  f"not promoted: {len(val.images)} val image(s), at least {MIN_VAL_TO_PROMOTE} needed"
                  if not enough_val else "not promoted: val mIoU dropped")
        summary = {
            "base_val_miou": base_metrics and base_metrics["miou"],
            "val_miou": new_metrics and new_metrics["miou"],
            "per_class_iou": new_metrics and new_metrics["per_class_iou"],
            "promoted": promote, "seconds": time.time() - started, "train_images": len(train.images),
            "val_images": len(val.images), "losses": state.get("losses", []), "not_promoted_because":
                None if promote else reason.split(": ", 1)[1],
            "world_size": dist.get_world_size() if ddp else 1, "ranks_identical_weights": agree,
        }
        store.update_job(job_id, log_line=f"new version v{version.id}: {reason}")
        store.finish_job(job_id, "succeeded", result_version_id=version.id, metrics=summary)
        return {"status": "succeeded", "version_id": version.id, **summary}
    except Exception as err:
        if rank == 0 and store.get_job(job_id).status == "running":
            store.finish_job(job_id, "failed", error=f"{type(err).__name__}: {err}")
        if isinstance(err, JobError):
            return {"status": "failed", "error": str(err)}
        raise


def _val_signature(store, project_id: int, names: list[str]) -> str:
    """Identifies the val set (images and annotation revisions) and label set a val mIoU
    was measured on, so a job can reuse its base version's figure instead of re-measuring."""
    import hashlib

    key = json.dumps([store.submitted_annotations(project_id, "val"), names])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _ranks_agree(model: Segmenter) -> bool:
    """Every rank ends with the same weights and buffers (checked by an exact checksum)."""
    with torch.no_grad():
        total = torch.zeros(2, dtype=torch.float64)
        for i, t in enumerate(model.state_dict().values()):
            if t.is_floating_point():
                total[0] += t.double().sum().cpu()
                total[1] += (t.double().flatten()[: 1000] * (i + 1)).sum().cpu()
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def _evaluate_model(model: Segmenter, val: SplitData, names, ignore_index, device) -> dict:
    return evaluate_arrays(Predictor(model.eval(), device), val.images, val.labels, names, ignore_index)


def _save_version(store, project, model: Segmenter, base, metrics, job_id: int):
    """Write weights to a temporary folder, then rename it: no half-written version is visible."""
    root = Path(store.data_dir) / "models" / project.name.replace("/", "_")
    final = root / f"job{job_id}-{int(time.time())}"
    tmp = root / (final.name + ".partial")
    model.config.metrics = {"val_" + k: v for k, v in (metrics or {}).items() if k in ("miou", "pixel_accuracy", "per_class_iou")}
    model.save_pretrained(tmp)
    os.replace(tmp, final)
    return store.add_model_version(project.id, str(final), parent_id=base.id, metrics=metrics,
                                   name=f"fine-tune job {job_id}")


def _init_distributed() -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def main(argv: list[str] | None = None) -> int:
    from storage import Store

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=os.environ.get(DB_URL_ENV),
                    help=f"SQLAlchemy URL (default: ${DB_URL_ENV}, else SQLite in --data-dir)")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--project", help="project name (creates and runs a new job)")
    ap.add_argument("--job-id", type=int, help="run this queued job")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--device")
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
            ids = [0]
            if rank == 0:
                try:
                    base = store.active_model_version(args.project)
                    if base is None:
                        raise JobError(f"project {args.project!r} has no active model version")
                    params = default_params(epochs=args.epochs, max_minutes=args.max_minutes,
                                            batch_size=args.batch_size, device=args.device)
                    ids = [store.create_job(args.project, params, base.id).id]
                except Exception as err:
                    print(f"error: {err}", file=sys.stderr)
                    ids = [-1]
            if ddp:
                dist.broadcast_object_list(ids, src=0)
            job_id = ids[0]
            if job_id < 0:
                return 2
        result = run_job(store, job_id, show_progress=args.progress)
        if rank == 0:
            print(json.dumps({k: v for k, v in result.items() if k != "losses"}, default=str))
        return 0 if result.get("status") in ("succeeded", "worker", "cancelled") else 1
    finally:
        store.close()
        if ddp:
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
