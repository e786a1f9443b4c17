"""The measured loop: does fine-tuning on a labeller's corrections cut the next corrections?

    python -m models.bench_loop --data ../shared/datasets/camvid --base runs/loop/base \\
        --base-removed runs/loop/base_no_bicyclist --out runs/loop/result.json

A simulated labeller works through the 0016E5 train images of CamVid, 20 per round:
the active model predicts them, the labeller corrects each to ground truth
(correction effort = share of labelled pixels whose predicted class was wrong), the
corrections are saved through the storage API, and a fine-tuning job runs through the
same path as the app's button: queued in the database (`jobs.queue.enqueue`) and run by
a worker's one-job function (`jobs.worker.run_one`: a child process, as the app's
local worker runs it).
The same rounds without retraining are the baseline. The base model saw only the
0001TP and 0006R0 sequences (benchmarks/gpu_loop_bases.sh).

With --base-removed (a base trained with one class left out, its pixels void), the
class is added back by name, 20 corrected images containing it are submitted, one job
runs, and its val IoU is compared with the fully trained model's (--full).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import finetune
from .data import list_pairs, load_image, load_label, read_classes
from .inference import DEFAULT_MODEL_DIR, Predictor, evaluate_arrays


def correction_effort(pred: np.ndarray, truth: np.ndarray, ignore_index: int) -> float:
    """Share of labelled (non-void) pixels whose predicted class differs from the truth."""
    labelled = truth != ignore_index
    return float((pred[labelled] != truth[labelled]).mean()) if labelled.any() else 0.0


def _read(pairs):
    out = []
    for name, ip, lp in pairs:
        img = load_image(ip)
        out.append((name, ip, img, load_label(lp, (img.shape[1], img.shape[0]))))
    return out


def labeller_order(data_dir: str, sequence: str, seed: int) -> list:
    """The sequence's train images (name, path, image, label) in the order the simulated
    labeller sees them: shuffled with `seed`, 20 per round."""
    pool = _read(list_pairs(data_dir, "train", [sequence]))
    return [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]


def _run_job(store, project: str, params: dict):
    """Queue a job and run it to its end as the app's worker would; its final JobInfo."""
    from jobs import queue, worker   # the job layer (uses storage): only for this benchmark

    job = queue.enqueue(store, project, params)
    done = worker.run_one(store, project=project)
    return done if done is not None else store.get_job(job.id)


def _setup(store, project: str, label_set, names: list[str], base_dir: str) -> None:
    store.create_project(project, [{"name": n, "color": c} for n, c in zip(names, label_set.colors)],
                         ignore_index=label_set.ignore_index)
    store.add_model_version(project, base_dir, activate=True, name="base")


def _import_val(store, project: str, val) -> None:
    for _, ip, _, lbl in val:
        info = store.add_image(project, ip, split="val")
        store.save_annotation(info.id, lbl, "ground truth", "submitted", base_revision=0)


def _submit(store, project, items) -> None:
    for _, ip, _, lbl in items:
        info = store.add_image(project, ip, split="train")
        store.save_annotation(info.id, lbl, "simulated labeller", "submitted", base_revision=info.revision)


def run_loop(args) -> dict:
    from storage import Store

    label_set = read_classes(args.data)
    pool = labeller_order(args.data, args.sequence, args.seed)
    val = _read(list_pairs(args.data, "val"))[: args.val_limit]
    names, ignore = label_set.names, label_set.ignore_index
    params = finetune.default_params(max_minutes=args.minutes, epochs=args.epochs, device="cpu")
    base_pred = Predictor.load(args.base, "cpu")
    result = {"rounds": [], "params": params, "machine": f"CPU, {torch.get_num_threads()} torch threads"}

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(None, tmp)
        _setup(store, "loop", label_set, names, args.base)
        _import_val(store, "loop", val)
        base_val = evaluate_arrays(base_pred, [v[2] for v in val], [v[3] for v in val], names, ignore)
        result["base_val_miou"] = base_val["miou"]
        for r in range(args.rounds):
            batch = pool[r * args.per_round : (r + 1) * args.per_round]
            active = store.active_model_version("loop")
            pred = Predictor.load(active.weights_dir, "cpu")
            efforts, base_efforts = [], []
            for _, _, img, lbl in batch:
                efforts.append(correction_effort(pred.predict(img, names).class_map, lbl, ignore))
                base_efforts.append(correction_effort(base_pred.predict(img, names).class_map, lbl, ignore))
            _submit(store, "loop", batch)
            t0 = time.time()
            job = _run_job(store, "loop", params)
            seconds = time.time() - t0
            m = job.metrics or {}
            row = {
                "round": r + 1, "images": len(batch), "effort": float(np.mean(efforts)),
                "effort_no_retraining": float(np.mean(base_efforts)), "job_status": job.status,
                "job_seconds": seconds, "train_images": m.get("train_images"),
                "val_miou_new": m.get("val_miou"), "val_miou_before": m.get("base_val_miou"),
                "promoted": m.get("promoted"), "error": job.error,
            }
            row["val_miou_active"] = row["val_miou_new"] if row["promoted"] else row["val_miou_before"]
            result["rounds"].append(row)
            print(json.dumps(row), flush=True)
        store.close()
    first, last = result["rounds"][0], result["rounds"][-1]
    result["effort_last_over_first"] = last["effort"] / first["effort"] if first["effort"] else None
    result["effort_last_over_baseline"] = (last["effort"] / last["effort_no_retraining"]
                                           if last["effort_no_retraining"] else None)
    return result


def run_added_class(args) -> dict:
    """A class left out of base training, added back by name, 20 corrected images."""
    from storage import Store

    label_set = read_classes(args.data)
    cls = args.removed_class
    idx = label_set.names.index(cls)
    base_names = [n for n in label_set.names if n != cls]
    if label_set.names[-1] != cls:
        raise SystemExit("--removed-class must be the last class of the label set (indices stay put)")
    val = _read(list_pairs(args.data, "val"))[: args.val_limit]
    pool = [p for p in _read(list_pairs(args.data, "train", [args.sequence])) if (p[3] == idx).any()]
    chosen = pool[: args.per_round]
    names, ignore = label_set.names, label_set.ignore_index
    params = finetune.default_params(max_minutes=args.minutes, epochs=args.epochs, device="cpu")
    vimgs, vlbls = [v[2] for v in val], [v[3] for v in val]
    zero_shot = evaluate_arrays(Predictor.load(args.base_removed, "cpu"), vimgs, vlbls, names, ignore)
    full = evaluate_arrays(Predictor.load(args.full, "cpu"), vimgs, vlbls, names, ignore)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(None, tmp)
        _setup(store, "added", label_set, base_names, args.base_removed)
        store.add_class("added", cls, label_set.colors[idx])  # before val: its labels hold the class
        _import_val(store, "added", val)
        _submit(store, "added", chosen)
        t0 = time.time()
        job = _run_job(store, "added", params)
        seconds = time.time() - t0
        newest = store.list_model_versions("added")[-1]
        after = evaluate_arrays(Predictor.load(newest.weights_dir, "cpu"), vimgs, vlbls, names, ignore)
        store.close()
    return {
        "class": cls, "corrected_images_with_class": len(chosen), "job_status": job.status,
        "job_seconds": seconds, "iou_before_added_by_name_only": zero_shot["per_class_iou"][cls],
        "iou_after_20_images": after["per_class_iou"][cls], "iou_fully_trained_model": full["per_class_iou"][cls],
        "val_miou_after": after["miou"], "val_miou_fully_trained": full["miou"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--base", default="runs/loop/base")
    ap.add_argument("--base-removed", help="base trained without --removed-class")
    ap.add_argument("--removed-class", default="bicyclist")
    ap.add_argument("--full", default=str(DEFAULT_MODEL_DIR), help="the fully trained model to compare with")
    ap.add_argument("--sequence", default="0016E5")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--minutes", type=float, help="training time budget per job (default: the job default)")
    ap.add_argument("--epochs", type=int, help="epoch cap per job (default: the job default)")
    ap.add_argument("--val-limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {}
    if not args.skip_loop:
        result["loop"] = run_loop(args)
    if args.base_removed:
        result["added_class"] = run_added_class(args)
        print(json.dumps(result["added_class"]), flush=True)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
