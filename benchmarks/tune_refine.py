"""Choose (on CamVid train) and report (on val, once) an edge-aware refinement of the
model's probabilities: a guided filter (He et al.) with the image as guide.

    python -m benchmarks.tune_refine --split train --pick 0001TP:20,0006R0:20 --grid R:EPS[:SUB],... --out runs/refine/train.json
    python -m benchmarks.tune_refine --split val --grid R:EPS --out benchmarks/results/cpu_refine_val.json
    python -m benchmarks.tune_refine ... --grid 4:1e-3:2:0.9 --scale 0.5 --ops   # keep >= 0.9 sure pixels; half size

A grid entry is RADIUS:EPS[:SUBSAMPLE[:KEEP[:AREA[:UNSURE]]]] (KEEP: pixels the network is at
least that sure of keep its class, models.refine.RefineSettings.keep; AREA: pieces of one class
smaller than that take their surroundings' class, only those whose mean top probability is
below UNSURE if given: RefineSettings.min_area / unsure). --scale resizes every image
(area) and label (nearest) first; --ops also counts the scripted labeller's operations to
98% pixel accuracy (benchmarks.scripted_labeller).

For each image: the shipped model's logits (one forward pass), then every filter of
--grid on its softmax; scores: wrong pixels and wrong regions (bench_loop's measures),
and mIoU / per-class IoU from one confusion matrix over the images.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.bench_instant import wrong_pixels
from benchmarks.bench_loop import read_pairs, wrong_regions
from benchmarks.scripted_labeller import scripted_ops
from models.data import list_pairs, read_classes
from models.inference import Predictor
from models.metrics import confusion_matrix, scores
from models.refine import RefineSettings, refined_classes


def rescale(image: np.ndarray, label: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """An image resized by ``scale`` (area-averaged, as a smaller camera would see it) and its
    label map (nearest, class indices kept)."""
    from PIL import Image

    h, w = label.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = np.asarray(Image.fromarray(image).resize(size, Image.BOX))
    lbl = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
    return img, lbl


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--model", default="weights/camvid")
    ap.add_argument("--split", default="train")
    ap.add_argument("--pick", default="", help="SEQ:N,... evenly spaced N frames per drive (default: all)")
    ap.add_argument("--grid", default="4:1e-3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="resize images (area) and labels (nearest) first")
    ap.add_argument("--ops", action="store_true", help="also count the scripted labeller's operations")
    ap.add_argument("--flip", action="store_true", help="the model also sees each image mirrored (the app's default)")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ls = read_classes(a.data)
    names, ignore, K = ls.names, ls.ignore_index, len(ls.names)
    pairs = list_pairs(a.data, a.split)
    if a.pick:
        chosen = []
        for spec in a.pick.split(","):
            seq, n = spec.split(":")
            frames = [p for p in pairs if p[0].startswith(seq)]
            idx = np.linspace(0, len(frames) - 1, int(n)).round().astype(int)
            chosen += [frames[i] for i in idx]
        pairs = chosen
    items = read_pairs(pairs)
    if a.scale != 1.0:
        items = [(n, p, *rescale(img, lbl, a.scale)) for n, p, img, lbl in items]
    pred = Predictor.load(a.model, "cpu", flip=a.flip)
    grid = ["none"] + [g for g in a.grid.split(",") if g]
    tot = {g: {"wrong_pixels": 0, "wrong_regions": 0, "ops": 0, "seconds": 0.0} for g in grid}
    conf = {g: np.zeros((K, K), np.int64) for g in grid}
    for n, (name, _, img, lbl) in enumerate(items):
        probs = pred.logits(img, names).softmax(0)
        for g in grid:
            t0 = time.perf_counter()
            if g == "none":
                m = probs.argmax(0).numpy().astype(np.uint8)
            else:
                r, e, *rest = g.split(":")
                rs = RefineSettings(radius=int(r), eps=float(e), subsample=int(rest[0]) if rest else 1,
                                    keep=float(rest[1]) if len(rest) > 1 else 0.0,
                                    min_area=int(rest[2]) if len(rest) > 2 else 0,
                                    unsure=float(rest[3]) if len(rest) > 3 else 1.01)
                m = refined_classes(probs, img, rs).numpy().astype(np.uint8)
            tot[g]["seconds"] += time.perf_counter() - t0
            tot[g]["wrong_pixels"] += wrong_pixels(m, lbl, ignore)
            tot[g]["wrong_regions"] += wrong_regions(m, lbl, ignore)
            conf[g] += confusion_matrix(m, lbl, K, ignore)
            if a.ops:
                tot[g]["ops"] += scripted_ops(m, lbl, ignore)
        if (n + 1) % 10 == 0:
            print(n + 1, flush=True)
    base = tot["none"]
    res = {}
    for g in grid:
        s = scores(conf[g], names)
        res[g] = {**tot[g], "ms_per_image": 1000 * tot[g]["seconds"] / len(items),
                  "pixels_pct": 100 * tot[g]["wrong_pixels"] / base["wrong_pixels"],
                  "regions_pct": 100 * tot[g]["wrong_regions"] / base["wrong_regions"],
                  "ops_pct": 100 * tot[g]["ops"] / base["ops"] if base["ops"] else None,
                  "miou": s["miou"], "per_class_iou": s["per_class_iou"]}
        print(f"{g:10s} pixels {res[g]['pixels_pct']:6.1f}% regions {res[g]['regions_pct']:6.1f}% "
              f"({tot[g]['wrong_regions'] / len(items):.1f}/img) mIoU {s['miou']:.4f} "
              f"pole {s['per_class_iou'].get('pole', float('nan')):.3f} {res[g]['ms_per_image']:.1f} ms"
              + (f" ops {tot[g]['ops']} ({res[g]['ops_pct']:.1f}%)" if a.ops else ""), flush=True)
    if a.out:
        open(a.out, "w").write(json.dumps({"args": vars(a), "images": [p[0] for p in pairs], "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
