"""The measured loop: does fine-tuning on a labeller's corrections cut the next corrections?

    python -m benchmarks.bench_loop --data ../shared/datasets/camvid --base runs/loop/base \\
        --base-removed runs/loop/base_no_bicyclist --out runs/loop/result.json

A simulated labeller works through the 0016E5 train images of CamVid (--sequence), 20
per round (--per-round), in random order or in a queue order (--order uncertainty: most
uncertain first, by the active model's `Prediction.uncertainty`, the figure the app stores
with a prediction; --order diverse with --one-at-a-time: that, weighed by how unlike the
images already submitted each looks, the app's unlabelled queue since 2026-12-05,
common.queue_order): the active model predicts them, the labeller
corrects each to ground truth. Effort is measured two ways: the share of labelled pixels
whose predicted class was wrong, and the number of separate wrong regions of at least
20 px (8-connected), closer to the number of fixes a labeller makes. The
corrections are saved through the storage API, and a fine-tuning job runs through the
same path as the app's button: queued in the database (`jobs.queue.enqueue`) and run by
a worker's one-job function (`jobs.worker.run_one`: a child process, as the app's
local worker runs it).
The same rounds without retraining are the baseline. The base model saw only the
0001TP and 0006R0 sequences (benchmarks/gpu_loop_bases.sh).

Val images (--val): "split", CamVid's val split (all 0016E5); or "auto", the app's rule
on the sequence's own train images (one in five by a stable hash of the file's bytes,
common.splits.auto_split, as the app), the rest being the labeller's pool. From a strong base on an
unseen drive (issue 10):

    python -m benchmarks.bench_loop --base runs/loop/strong_A --sequence 0001TP --val auto \
        --rounds 4 --per-round 11 --order uncertainty --out runs/loop/strong_A_queue.json

From the shipped model on frames it never saw (--pool-split val: CamVid's val images,
all of drive 0016E5, whose other frames the shipped model was trained on):

    python -m benchmarks.bench_loop --base weights/camvid --sequence 0016E5 --pool-split val --val auto \
        --rounds 4 --per-round 20 --out runs/loop/shipped_val.json

--params '{"lr": 1e-3}' overrides the job recipe (models.finetune.default_params).

--label-set "thin pole=pole;background=*" (issue 20: a second domain with its own label
set) makes the project's label set from CamVid's: each NAME=CLASS+CLASS... is a new class
holding those CamVid classes ("*": every class not named elsewhere); an unnamed class is
void. The base model is asked for the new names (the model takes any words).

With --base-removed (a base trained with one class left out, its pixels void), the
class is added back by name, 20 corrected images containing it are submitted, one job
runs, and its val IoU is compared with the fully trained model's (--full).

--one-at-a-time (issue 20): the loop as the app runs it. Images are submitted one at a
time; each is measured against what the labeller sees then (the active model plus the
instant layer, models.adapt, fitted on every image submitted so far); the instant layer
is fitted again after each, and a job starts every --per-round submissions by the app's
own check (segui.finetuning.auto_finetune_due on the project's auto_finetune_every):

    python -m benchmarks.bench_loop --base weights/camvid --sequence 0016E5 --pool-split val --val auto \
        --rounds 4 --per-round 20 --one-at-a-time --out runs/loop/shipped_val_one_at_a_time.json

Run from the repository root. Until issue 16 this was `python -m benchmarks.bench_loop`
(same flags and output); it moved here because it drives the job layer and storage,
which the model library does not import. Its measures (correction_effort and
wrong_regions, whose owner is ``common.effort``; labeller_order, read_pairs) are
imported by the other benchmarks.
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

from common.effort import MIN_REGION_PIXELS, correction_effort, wrong_regions  # noqa: F401 (re-exported)
from common.queue_order import diverse_pick, layout_descriptor
from common.splits import VAL_EVERY, auto_split_file
from models import finetune
from models.data import LabelSet, label_colors, list_pairs, load_image, load_label, read_classes
from models.inference import DEFAULT_MODEL_DIR, Predictor, evaluate_arrays


DEVICE = "cpu"           # where the jobs train (the worker's setting, recorded in the result)


def read_pairs(pairs) -> list:
    """(name, image path, image, label) of each (name, image path, label path) pair."""
    out = []
    for name, ip, lp in pairs:
        img = load_image(ip)
        out.append((name, ip, img, load_label(lp, (img.shape[1], img.shape[0]))))
    return out


def labeller_order(data_dir: str, sequence: str, seed: int, split: str | None = None,
                   source: str = "train") -> list:
    """The sequence's images of CamVid's ``source`` split (name, path, image, label) in the
    order the simulated labeller sees them: shuffled with `seed`, 20 per round. ``split``
    ("train" / "val") keeps only the images auto_split puts there."""
    pairs = list_pairs(data_dir, source, [sequence])
    if split is not None:
        pairs = [p for p in pairs if auto_split_file(p[1]) == split]
    pool = read_pairs(pairs)
    return [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]


def merged_label_set(label_set, spec: str | None):
    """(project label set, lookup table CamVid index -> project index) for --label-set;
    (label_set, None) without one."""
    if not spec:
        return label_set, None
    groups = [part.split("=", 1) for part in spec.split(";") if part.strip()]
    if any(len(g) != 2 or not g[0].strip() for g in groups):
        raise SystemExit(f"--label-set: expected NAME=CLASS+CLASS;NAME=*, got {spec!r}")
    names = [g[0].strip() for g in groups]
    ignore = label_set.ignore_index
    lut = np.full(256, ignore, np.uint8)
    named = {c.strip() for _, cs in groups for c in cs.split("+") if c.strip() != "*"}
    unknown = named - set(label_set.names)
    if unknown:
        raise SystemExit(f"--label-set names classes the data does not have: {sorted(unknown)}")
    for new, (_, cs) in enumerate(groups):
        members = [c.strip() for c in cs.split("+")]
        for i, c in enumerate(label_set.names):
            if c in members or ("*" in members and c not in named):
                lut[i] = new
    return LabelSet(names, label_colors(names), ignore), lut


def project_data(args):
    """(project label set, pool, val, val source): the CamVid images with labels mapped into
    --label-set's classes when given."""
    label_set, lut = merged_label_set(read_classes(args.data), args.label_set)
    pool, val, val_source = pool_and_val(args)
    if lut is not None:
        pool = [(n, ip, img, lut[lbl]) for n, ip, img, lbl in pool]
        val = [(n, ip, img, lut[lbl]) for n, ip, img, lbl in val]
    return label_set, pool, val, val_source


def pool_and_val(args) -> tuple[list, list, str]:
    """(labeller's pool in random order, val images, what the val set is)."""
    source = args.pool_split
    if args.val == "auto":
        pool = labeller_order(args.data, args.sequence, args.seed, split="train", source=source)
        val = read_pairs([p for p in list_pairs(args.data, source, [args.sequence]) if auto_split_file(p[1]) == "val"])
        return pool, val[: args.val_limit], f"{args.sequence} {source} images auto_split puts in val (1 in {VAL_EVERY})"
    if source != "train":
        raise SystemExit("--pool-split val needs --val auto (the pool would be the val images)")
    pool = labeller_order(args.data, args.sequence, args.seed)
    return pool, read_pairs(list_pairs(args.data, "val"))[: args.val_limit], "CamVid val split"


def queue_pick(pool: list, predictions: list, n: int) -> list[int]:
    """Indices of the ``n`` most uncertain images (the app's queue order; ties by position)."""
    order = sorted(range(len(pool)), key=lambda i: (-predictions[i].uncertainty, i))
    return order[:n]


def _run_job(store, project: str, params: dict):
    """Queue a job and run it to its end as the app's worker would (on the CPU: the
    worker's --device); its final JobInfo."""
    from jobs import queue, worker

    job = queue.enqueue(store, project, params)
    done = worker.run_one(store, project=project, device=DEVICE)
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

    label_set, pool, val, val_source = project_data(args)
    names, ignore = label_set.names, label_set.ignore_index
    params = finetune.default_params(**{"max_minutes": args.minutes, "epochs": args.epochs,
                                        **json.loads(args.params or "{}")})
    base_pred = Predictor.load(args.base, "cpu")
    # "params" keeps the key "device" that scripts reading this output know (the device is
    # the worker's setting now, not the recipe's); "device" says the same at the top level.
    result = {"rounds": [], "label_set": names, "params": {**params, "device": DEVICE}, "device": DEVICE,
              "machine": f"CPU, {torch.get_num_threads()} torch threads",
              "base": args.base, "sequence": args.sequence, "pool_split": args.pool_split, "order": args.order, "seed": args.seed,
              "val_source": val_source, "val_images": len(val), "pool_images": len(pool),
              "min_region_pixels": MIN_REGION_PIXELS}

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(None, tmp)
        _setup(store, "loop", label_set, names, args.base)
        _import_val(store, "loop", val)
        base_val = evaluate_arrays(base_pred, [v[2] for v in val], [v[3] for v in val], names, ignore)
        result["base_val_miou"] = base_val["miou"]
        remaining = list(pool)
        for r in range(args.rounds):
            active = store.active_model_version("loop")
            pred = Predictor.load(active.weights_dir, "cpu")
            if args.order == "uncertainty":   # the app's queue: the active model's most uncertain first
                preds = [pred.predict(p[2], names) for p in remaining]
                picked = queue_pick(remaining, preds, args.per_round)
                batch, batch_preds = [remaining[i] for i in picked], [preds[i] for i in picked]
            else:
                batch = remaining[: args.per_round]
                batch_preds = [pred.predict(p[2], names) for p in batch]
            if not batch:
                break
            taken = {p[0] for p in batch}
            remaining = [p for p in remaining if p[0] not in taken]
            efforts, base_efforts, regions, base_regions = [], [], [], []
            for (_, _, img, lbl), pr in zip(batch, batch_preds):
                base_map = base_pred.predict(img, names).class_map
                efforts.append(correction_effort(pr.class_map, lbl, ignore))
                base_efforts.append(correction_effort(base_map, lbl, ignore))
                regions.append(wrong_regions(pr.class_map, lbl, ignore))
                base_regions.append(wrong_regions(base_map, lbl, ignore))
            _submit(store, "loop", batch)
            t0 = time.time()
            job = _run_job(store, "loop", params)
            seconds = time.time() - t0
            m = job.metrics or {}
            row = {
                "round": r + 1, "images": len(batch), "effort": float(np.mean(efforts)),
                "effort_no_retraining": float(np.mean(base_efforts)),
                "wrong_regions": float(np.mean(regions)), "wrong_regions_no_retraining": float(np.mean(base_regions)),
                "job_status": job.status,
                "job_seconds": seconds, "train_images": m.get("train_images"),
                "val_miou_new": m.get("val_miou"), "val_miou_before": m.get("base_val_miou"),
                "promoted": m.get("promoted"), "error": job.error, "blend": m.get("blend"), "lr": m.get("lr"),
                "train_steps": len(m.get("losses") or []), "image_names": [p[0] for p in batch],
            }
            row["val_miou_active"] = row["val_miou_new"] if row["promoted"] else row["val_miou_before"]
            result["rounds"].append(row)
            print(json.dumps(row), flush=True)
        store.close()
    first, last = result["rounds"][0], result["rounds"][-1]
    result["effort_last_over_first"] = last["effort"] / first["effort"] if first["effort"] else None
    result["effort_last_over_baseline"] = (last["effort"] / last["effort_no_retraining"]
                                           if last["effort_no_retraining"] else None)
    result["regions_last_over_first"] = (last["wrong_regions"] / first["wrong_regions"]
                                         if first["wrong_regions"] else None)
    result["regions_last_over_baseline"] = (last["wrong_regions"] / last["wrong_regions_no_retraining"]
                                            if last["wrong_regions_no_retraining"] else None)
    return result


def _submit_one(store, project: str, item) -> int:
    """One corrected image submitted, as the Label screen's Submit stores it; its image id."""
    _, ip, _, lbl = item
    info = store.add_image(project, ip, split="train")
    store.save_annotation(info.id, lbl, "simulated labeller", "submitted", base_revision=info.revision)
    return info.id


def _instant_session(weights_dir: str, names: list[str], ignore: int, seed: int, submitted: list,
                     input_scale: float = 1.0, flip: bool = False):
    """An instant-adaptation session on the model in ``weights_dir`` with the images
    submitted so far (the newest ``max_images``, as the app's rebuild), fitted once;
    (session, predictor, seconds it took)."""
    from models.adapt import InstantAdaptation

    t0 = time.perf_counter()
    pred = Predictor.load(weights_dir, "cpu", input_scale=input_scale, flip=flip)
    session = InstantAdaptation(pred, names, ignore, seed=seed)
    for name, _, img, lbl in submitted[-session.settings.max_images:]:
        session.add(name, session.embed(img), lbl)
    if session.examples:
        session.update()
    return session, pred, time.perf_counter() - t0


def run_one_at_a_time(args) -> dict:
    """The loop as the app runs it (issue 20): the labeller submits the pool's images one
    at a time; before each, its wrong pixels and regions are counted against what the
    labeller sees then (the active model with the instant layer fitted on every image
    submitted so far) and against the base model (no retraining, no instant layer).
    After each submission the instant layer is fitted again and the app's own check
    (``segui.finetuning.auto_finetune_due``, the project's ``auto_finetune_every`` =
    --per-round) decides whether a job starts; it is queued (``jobs.queue.enqueue``, the
    benchmark's recipe: --minutes, --epochs, --params) and runs to its end through
    ``jobs.worker.run_one`` before the next image (in the app the labeller goes on
    meanwhile, still on the old model); after a promoted job the instant layer is rebuilt
    on the new model from the images submitted so far. "Rounds" group --per-round
    images for the summary, so the rows compare with the batch loop's."""
    from segui.finetuning import auto_finetune_due
    from storage import Store

    label_set, pool, val, val_source = project_data(args)
    names, ignore = label_set.names, label_set.ignore_index
    params = finetune.default_params(**{"max_minutes": args.minutes, "epochs": args.epochs,
                                        **json.loads(args.params or "{}")})
    result = {"mode": "one_at_a_time", "label_set": names, "rounds": [], "jobs": [], "images": [],
              "params": {**params, "device": DEVICE}, "device": DEVICE,
              "machine": f"CPU, {torch.get_num_threads()} torch threads", "base": args.base,
              "sequence": args.sequence, "pool_split": args.pool_split, "seed": args.seed,
              "val_source": val_source, "val_images": len(val), "pool_images": len(pool),
              "auto_finetune_every": args.per_round, "min_region_pixels": MIN_REGION_PIXELS}
    todo = pool[: args.rounds * args.per_round]   # random order: the shuffled pool's first images
    result["order"] = args.order
    result["input_scale"] = args.input_scale
    result["flip"] = args.flip
    base_pred = Predictor.load(args.base, "cpu", input_scale=args.input_scale, flip=args.flip)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(None, tmp)
        _setup(store, "loop", label_set, names, args.base)
        _import_val(store, "loop", val)
        # with no job yet the app counts every submission ever, the val import's too; that is
        # not the labeller's work: a job queued and cancelled at once makes the count start here
        store.cancel_job(store.create_job("loop", params, store.active_model_version("loop").id).id)
        store.set_auto_finetune_every("loop", args.per_round)
        result["base_val_miou"] = evaluate_arrays(base_pred, [v[2] for v in val], [v[3] for v in val],
                                                  names, ignore)["miou"]
        active = store.active_model_version("loop")
        session, _, _ = _instant_session(active.weights_dir, names, ignore, args.seed, [], args.input_scale,
                                         args.flip)
        submitted: list = []
        queue_order = args.order in ("uncertainty", "diverse")
        chosen_layouts: list = []   # --order diverse: the submitted annotations' layout descriptors
        if queue_order:   # a queue: the labeller takes the image the page's queue picks (most uncertain, or diverse)
            todo, embs, ranked = list(pool), {}, []
        for i in range(min(len(todo), args.rounds * args.per_round)):
            if queue_order:
                # uncertainty of what the page shows now (active model + instant layer) for every
                # image not yet submitted, as the app's background re-prediction keeps it; the
                # embeddings are the active model's, cached until a promotion changes it
                uncs, layouts = [], []
                for nm, _, im, _ in todo:
                    key = (active.id, nm)
                    if key not in embs:
                        embs[key] = session.embed(im)
                    p = session.predict(embs[key])
                    uncs.append(p.uncertainty)
                    if args.order == "diverse":
                        layouts.append(layout_descriptor(p.class_map, len(names)))
                # nothing chosen: the most uncertain (ties to the earlier image), as --order uncertainty
                pick = diverse_pick(uncs, layouts, chosen_layouts)
                item = todo.pop(pick)
                ranked.append(item[0])
                emb = embs.pop((active.id, item[0]))
            else:
                item = todo[i]
                emb = session.embed(item[2])
            name, _, img, lbl = item
            shown = session.predict(emb).class_map
            base_map = base_pred.predict(img, names).class_map
            row = {"image": i + 1, "name": name, "model_version": active.id,
                   "instant_images": len(session.examples),
                   "effort": correction_effort(shown, lbl, ignore),
                   "effort_no_retraining": correction_effort(base_map, lbl, ignore),
                   "wrong_regions": wrong_regions(shown, lbl, ignore),
                   "wrong_regions_no_retraining": wrong_regions(base_map, lbl, ignore)}
            if args.ops:   # the scripted labeller's fills and brush strokes to 98% (benchmarks/scripted_labeller.py)
                from benchmarks.scripted_labeller import scripted_ops

                row["ops"] = scripted_ops(shown, lbl, ignore)
                row["ops_no_retraining"] = scripted_ops(base_map, lbl, ignore)
            _submit_one(store, "loop", item)
            submitted.append(item)
            if args.order == "diverse":
                chosen_layouts.append(layout_descriptor(lbl, len(names)))
            session.add(name, emb, lbl)
            session.update()
            row["instant_update_seconds"] = session.last_update_seconds
            if auto_finetune_due(store, "loop") is not None:   # the app's check after a submission
                t0 = time.time()
                done = _run_job(store, "loop", params)
                seconds = time.time() - t0
                m = done.metrics or {}
                jr = {"after_image": i + 1, "job_id": done.id, "status": done.status, "seconds": seconds,
                      "train_images": m.get("train_images"), "val_miou_new": m.get("val_miou"),
                      "val_miou_before": m.get("base_val_miou"), "promoted": m.get("promoted"),
                      "train_steps": len(m.get("losses") or []), "lr": m.get("lr"), "error": done.error}
                new = store.active_model_version("loop")
                if new.id != active.id:   # promoted: the instant layer is rebuilt on the new model
                    active = new
                    if queue_order:
                        embs.clear()   # the old model's embeddings
                    session, _, jr["instant_rebuild_seconds"] = _instant_session(
                        active.weights_dir, names, ignore, args.seed, submitted, args.input_scale, args.flip)
                result["jobs"].append(jr)
                row["job"] = done.id
                print(json.dumps(jr), flush=True)
            result["images"].append(row)
            print(json.dumps(row), flush=True)
        store.close()
    for r in range(0, len(result["images"]), args.per_round):
        rows = result["images"][r: r + args.per_round]
        keys = ("effort", "effort_no_retraining", "wrong_regions", "wrong_regions_no_retraining")
        keys += ("ops", "ops_no_retraining") if rows and "ops" in rows[0] else ()
        agg = {k: float(np.mean([x[k] for x in rows])) for k in keys}
        result["rounds"].append({"round": r // args.per_round + 1, "images": len(rows), **agg,
                                 "model_versions": sorted({x["model_version"] for x in rows})})
    if result["rounds"]:
        first, last = result["rounds"][0], result["rounds"][-1]
        result["effort_last_over_first"] = last["effort"] / first["effort"] if first["effort"] else None
        result["effort_last_over_baseline"] = (last["effort"] / last["effort_no_retraining"]
                                               if last["effort_no_retraining"] else None)
        result["regions_last_over_baseline"] = (last["wrong_regions"] / last["wrong_regions_no_retraining"]
                                                if last["wrong_regions_no_retraining"] else None)
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
    val = read_pairs(list_pairs(args.data, "val"))[: args.val_limit]
    pool = [p for p in read_pairs(list_pairs(args.data, "train", [args.sequence])) if (p[3] == idx).any()]
    chosen = pool[: args.per_round]
    names, ignore = label_set.names, label_set.ignore_index
    params = finetune.default_params(max_minutes=args.minutes, epochs=args.epochs)
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
    ap.add_argument("--val", choices=["split", "auto"], default="split",
                    help="val images: CamVid's val split, or one in five of the sequence's own (the app's rule)")
    ap.add_argument("--pool-split", choices=["train", "val"], default="train",
                    help="CamVid split the sequence's images come from: val = frames the shipped model never saw "
                         "(with --base weights/camvid --sequence 0016E5 --val auto)")
    ap.add_argument("--order", choices=["random", "uncertainty", "diverse"], default="random",
                    help="the labeller's order: shuffled; uncertainty: most uncertain first (the app's "
                         "unlabelled queue before 2026-12-05); diverse (--one-at-a-time only): uncertainty x "
                         "layout distance to the images submitted so far, the app's unlabelled queue now "
                         "(common.queue_order)")
    ap.add_argument("--params", help="JSON overrides of the job recipe (models.finetune.default_params)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--minutes", type=float, help="training time budget per job (default: the job default)")
    ap.add_argument("--epochs", type=int, help="epoch cap per job (default: the job default)")
    ap.add_argument("--val-limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="submit the pool's images one at a time as a labeller does, the instant layer "
                         "updated after each and a job every --per-round images as the app starts it "
                         "(auto_finetune_every); --rounds x --per-round images, in random order or, with "
                         "--order uncertainty, the most uncertain of what the page shows first, re-ranked "
                         "after every submission")
    ap.add_argument("--ops", action="store_true",
                    help="--one-at-a-time: also count the scripted labeller's fills and brush strokes to 98%% "
                         "pixel accuracy (benchmarks/scripted_labeller.py), shown and no retraining")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="with --one-at-a-time: the network sees each image resized by this (the app's "
                         "--predict-scale), for what the labeller sees and for no retraining alike")
    ap.add_argument("--flip", action="store_true",
                    help="with --one-at-a-time: each image is also seen mirrored, the two views averaged (the "
                         "app's --predict-flip), for what the labeller sees and for no retraining alike")
    ap.add_argument("--label-set", help='a label set made of CamVid classes, e.g. "thin pole=pole;background=*"')
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.order == "diverse" and not args.one_at_a_time:
        ap.error("--order diverse needs --one-at-a-time")
    torch.set_num_threads(args.threads)
    result = {}
    if not args.skip_loop:
        result["loop"] = run_one_at_a_time(args) if args.one_at_a_time else run_loop(args)
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
