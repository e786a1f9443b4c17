"""Instant adaptation (issue 20, part 1): does each corrected image improve the next
predictions, with no training job?

    python -m benchmarks.bench_instant --model weights/camvid --data ../shared/datasets/camvid \\
        --images 50:101 --seed 1 --rounds 4 --per-round 20 --out runs/instant/seed1.json

A simulated labeller works through CamVid val frames (--images, a slice of the val
split sorted by name: all of drive 0016E5, which the shipped model never trained on) in
a seeded random order (--order random) or the app's queue order (--order uncertainty:
at each round's start, the most uncertain under the current adapter first), --per-round
per round. Before an image is corrected, the current adapter (models.adapt) predicts
it; its wrong pixels and wrong regions (8-connected, >= 20 px: bench_loop's
correction_effort / wrong_regions measure) are counted, and so are the shipped model's
on the same image (no adaptation). Then its ground truth is added and the adapter
updated; the update's wall time is recorded.

--grid '[{"steps": 40}, {"lr": 0.05}]' runs several adapter settings on the same
images (each dict overrides the flags) and prints one summary line each: the tuning
mode (tune on --images 0:50 --seed 0 only; report on 50:101).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_loop import MIN_REGION_PIXELS, read_pairs, wrong_regions
from benchmarks.scripted_labeller import scripted_ops
from models.adapt import AdaptSettings, InstantAdaptation
from models.data import list_pairs, read_classes
from models.inference import DEFAULT_MODEL_DIR, Predictor


def parse_slice(text: str) -> slice:
    a, _, b = text.partition(":")
    return slice(int(a) if a else None, int(b) if b else None)


def wrong_pixels(pred: np.ndarray, truth: np.ndarray, ignore_index: int) -> int:
    """Labelled (non-void) pixels whose predicted class differs from the truth (the
    numerator of bench_loop.correction_effort)."""
    labelled = truth != ignore_index
    return int((pred[labelled] != truth[labelled]).sum())


def run(items: list, embs: list, predictor: Predictor, names: list[str], ignore: int,
        settings: AdaptSettings, args) -> dict:
    """One simulated labelling session; items[i] = (name, path, image, label), embs[i] its embeddings."""
    session = InstantAdaptation(predictor, names, ignore, settings, seed=args.seed)
    order = list(np.random.default_rng(args.seed).permutation(len(items)))
    rounds, update_s = [], []
    for r in range(args.rounds):
        if not order:
            break
        if args.order == "uncertainty":
            unc = {i: session.predict(embs[i]).uncertainty for i in order}
            order.sort(key=lambda i: (-unc[i], i))
        batch, order = order[: args.per_round], order[args.per_round:]
        row = {"round": r + 1, "images": len(batch), "wrong_pixels": 0, "wrong_pixels_base": 0,
               "wrong_regions": 0, "wrong_regions_base": 0, "labelled_pixels": 0}
        if args.ops:
            row.update(ops=0, ops_base=0)
        for i in batch:
            lbl, emb = items[i][3], embs[i]
            pred = session.predict(emb).class_map
            row["wrong_pixels"] += wrong_pixels(pred, lbl, ignore)
            row["wrong_pixels_base"] += wrong_pixels(emb.base_map, lbl, ignore)
            row["wrong_regions"] += wrong_regions(pred, lbl, ignore)
            row["wrong_regions_base"] += wrong_regions(emb.base_map, lbl, ignore)
            row["labelled_pixels"] += int((lbl != ignore).sum())
            if args.ops:  # the scripted labeller's fills and strokes to 98% (benchmarks/scripted_labeller.py)
                row["ops"] += scripted_ops(pred, lbl, ignore)
                row["ops_base"] += scripted_ops(emb.base_map, lbl, ignore)
            session.add(items[i][0], emb, lbl)
            session.update()
            update_s.append(session.last_update_seconds)
        row["pixels_pct_of_base"] = 100.0 * row["wrong_pixels"] / max(row["wrong_pixels_base"], 1)
        row["regions_pct_of_base"] = 100.0 * row["wrong_regions"] / max(row["wrong_regions_base"], 1)
        if args.ops:
            row["ops_pct_of_base"] = 100.0 * row["ops"] / max(row["ops_base"], 1)
        row["image_names"] = [items[i][0] for i in batch]
        rounds.append(row)
    tot = {k: sum(r[k] for r in rounds) for k in
           ("images", "wrong_pixels", "wrong_pixels_base", "wrong_regions", "wrong_regions_base", "labelled_pixels")}
    tot["pixels_pct_of_base"] = 100.0 * tot["wrong_pixels"] / max(tot["wrong_pixels_base"], 1)
    tot["regions_pct_of_base"] = 100.0 * tot["wrong_regions"] / max(tot["wrong_regions_base"], 1)
    if args.ops:
        tot["ops"], tot["ops_base"] = sum(r["ops"] for r in rounds), sum(r["ops_base"] for r in rounds)
        tot["ops_pct_of_base"] = 100.0 * tot["ops"] / max(tot["ops_base"], 1)
    return {"rounds": rounds, "total": tot, "settings": settings.to_dict(),
            "update_seconds_median": float(np.median(update_s)) if update_s else None,
            "update_seconds_max": float(np.max(update_s)) if update_s else None,
            "update_seconds": update_s,  # i-th: the update with i + 1 images cached
            "cached_images_at_end": len(session.examples)}


def summary(res: dict) -> str:
    rs = " ".join(f"r{r['round']}:{r['pixels_pct_of_base']:.1f}%/{r['regions_pct_of_base']:.1f}%" for r in res["rounds"])
    t = res["total"]
    return (f"pixels/regions % of base: {rs} total:{t['pixels_pct_of_base']:.1f}%/{t['regions_pct_of_base']:.1f}% "
            f"update median {res['update_seconds_median']:.3f}s max {res['update_seconds_max']:.3f}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--split", default="val")
    ap.add_argument("--images", default="50:101", help="slice of the split's images sorted by name, e.g. 0:50")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--order", choices=["random", "uncertainty"], default="random")
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: fastest update on a CPU shared with other work)")
    defaults = AdaptSettings()
    for f in fields(AdaptSettings):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                        default=getattr(defaults, f.name), help=f"adapter setting (default {getattr(defaults, f.name)})")
    ap.add_argument("--ops", action="store_true",
                    help="also count the scripted labeller's fills and brush strokes to 98%% pixel accuracy "
                         "(benchmarks/scripted_labeller.py) for the adapted and the base maps")
    ap.add_argument("--grid", help="JSON list of setting overrides: one run each, summary lines only")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="the network sees each image resized by this (the app's --predict-scale): base and adapted maps alike")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    label_set = read_classes(args.data)
    names, ignore = label_set.names, label_set.ignore_index
    items = read_pairs(list_pairs(args.data, args.split)[parse_slice(args.images)])
    predictor = Predictor.load(args.model, "cpu", input_scale=args.input_scale)
    session = InstantAdaptation(predictor, names, ignore)
    t0 = time.perf_counter()
    embs = [session.embed(it[2]) for it in items]  # one forward pass per image, as the app's prediction
    embed_s = (time.perf_counter() - t0) / max(len(items), 1)
    base = {f.name: getattr(args, f.name) for f in fields(AdaptSettings)}
    header = {"model": args.model, "split": args.split, "images": args.images, "num_images": len(items),
              "input_scale": args.input_scale,
              "seed": args.seed, "order": args.order, "per_round": args.per_round, "rounds": args.rounds,
              "machine": f"CPU, {torch.get_num_threads()} torch threads", "embed_seconds_per_image": embed_s,
              "min_region_pixels": MIN_REGION_PIXELS}
    if args.grid:
        results = []
        for over in json.loads(args.grid):
            s = AdaptSettings(**{**base, **over})
            res = run(items, embs, predictor, names, ignore, s, args)
            print(json.dumps(over), summary(res), flush=True)
            results.append({"overrides": over, **res})
        out = {**header, "grid": results}
    else:
        res = run(items, embs, predictor, names, ignore, AdaptSettings(**base), args)
        for r in res["rounds"]:
            print(json.dumps({k: v for k, v in r.items() if k != "image_names"}), flush=True)
        print(summary(res), flush=True)
        out = {**header, **res}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
