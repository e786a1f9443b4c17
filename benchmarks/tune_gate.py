"""Exploration (issue 20, fewer fixes): what cuts the instant layer's extra wrong regions?

Runs one instant-adaptation session (bench_instant's simulated labeller) and scores, on
each image before it is corrected, several post-hoc rules on the same predictions:
- gate T: changes from the base map that form a component (8-connected, per new class)
  smaller than T pixels are reverted to the base's class;
- guided filter (r, eps) of the probabilities with the image as guide (base and adapted);
- island removal S: predicted components under S pixels take their neighbours' class.
The session itself (what is fitted) does not depend on the rule, so one pass scores all.

    python -m benchmarks.tune_gate --split train --images 62:163 --seed 0 --out runs/gate/train_0006R0.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy import ndimage

from benchmarks.bench_instant import parse_slice, wrong_pixels
from benchmarks.bench_loop import read_pairs, wrong_regions
from models.adapt import AdaptSettings, InstantAdaptation
from models.data import list_pairs, read_classes
from models.inference import Predictor
from models.refine import RefineSettings, guided_refine

EIGHT = np.ones((3, 3), bool)


def gate(adapted: np.ndarray, base: np.ndarray, min_pixels: int) -> np.ndarray:
    if min_pixels <= 0:
        return adapted
    out = adapted.copy()
    changed = adapted != base
    for c in np.unique(adapted[changed]):
        lab, n = ndimage.label(changed & (adapted == c), structure=EIGHT)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        small = sizes < min_pixels
        small[0] = False
        m = small[lab]
        out[m] = base[m]
    return out


def islands(pred: np.ndarray, min_pixels: int) -> np.ndarray:
    out = pred.copy()
    for c in np.unique(pred):
        lab, n = ndimage.label(pred == c, structure=EIGHT)
        sizes = np.bincount(lab.ravel())
        for r in np.flatnonzero(sizes[1:] < min_pixels) + 1:
            m = lab == r
            ring = ndimage.binary_dilation(m, EIGHT) & ~m
            if ring.any():
                out[m] = np.bincount(pred[ring]).argmax()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--model", default="weights/camvid")
    ap.add_argument("--split", default="train")
    ap.add_argument("--images", default="62:163")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=80)
    ap.add_argument("--gates", default="0,50,100,200,400,800,1600")
    ap.add_argument("--guided", default="2:0.001,4:0.001,4:0.01,8:0.01")
    ap.add_argument("--islands", default="")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ls = read_classes(a.data)
    names, ignore = ls.names, ls.ignore_index
    items = read_pairs(list_pairs(a.data, a.split)[parse_slice(a.images)])
    order = list(np.random.default_rng(a.seed).permutation(len(items)))[: a.count]
    pred = Predictor.load(a.model, "cpu")
    session = InstantAdaptation(pred, names, ignore, AdaptSettings(), seed=a.seed)
    rules = ["base", "adapted"] + [f"gate{t}" for t in map(int, a.gates.split(","))]
    gspecs = [(int(s.split(":")[0]), float(s.split(":")[1])) for s in a.guided.split(",") if s]
    rules += [f"gf{r}:{e}/base" for r, e in gspecs] + [f"gf{r}:{e}/adapted" for r, e in gspecs]
    isl = [int(s) for s in a.islands.split(",") if s]
    rules += [f"isl{s}/base" for s in isl] + [f"isl{s}/adapted" for s in isl]
    tot = {r: [0, 0] for r in rules}
    t0 = time.time()
    for n, i in enumerate(order):
        name, _, img, lbl = items[i]
        emb = session.embed(img)
        logits = session.adapter.logits(emb)
        ad = logits.argmax(0).numpy().astype(np.uint8)
        base = emb.base_map
        maps = {"base": base, "adapted": ad}
        for r in rules[2:]:
            if r.startswith("gate"):
                maps[r] = gate(ad, base, int(r[4:]))
        if gspecs:
            bl = session.base.logits(emb)
            for r, e in gspecs:
                rs = RefineSettings(radius=r, eps=e, subsample=1)
                maps[f"gf{r}:{e}/base"] = guided_refine(bl.softmax(0), img, rs).argmax(0).numpy().astype(np.uint8)
                maps[f"gf{r}:{e}/adapted"] = guided_refine(logits.softmax(0), img, rs).argmax(0).numpy().astype(np.uint8)
        for s in isl:
            maps[f"isl{s}/base"] = islands(base, s)
            maps[f"isl{s}/adapted"] = islands(ad, s)
        for r in rules:
            tot[r][0] += wrong_pixels(maps[r], lbl, ignore)
            tot[r][1] += wrong_regions(maps[r], lbl, ignore)
        session.add(name, emb, lbl)
        session.update()
        if (n + 1) % 20 == 0:
            print(n + 1, f"{time.time() - t0:.0f}s", flush=True)
    bp, br = tot["base"]
    res = {r: {"wrong_pixels": p, "wrong_regions": g, "pixels_pct_of_base": 100 * p / bp,
               "regions_pct_of_base": 100 * g / br} for r, (p, g) in tot.items()}
    for r, v in res.items():
        print(f"{r:22s} pixels {v['pixels_pct_of_base']:6.1f}%  regions {v['regions_pct_of_base']:6.1f}%  ({v['wrong_regions']})")
    if a.out:
        open(a.out, "w").write(json.dumps({"args": vars(a), "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
