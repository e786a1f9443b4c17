"""Pixels that are none of a project's classes: left unlabelled instead of painted.

A label set of free words often names only some of what a scene holds ("road, bicycle,
bin"); a closed argmax paints everything else with the nearest of those words, and the
labeller erases it. This screens ways to leave such pixels void, on CamVid with label sets
that are random subsets of its 11 classes (the pixels of the classes left out are the
target's void):

- ``closed``: argmax over the project's words (no change);
- ``hidden:T``: the words of ``HIDDEN`` whose class vector's cosine to every project
  word is below T are added to the label set; a pixel whose argmax is one of them is void;
- ``prob:P``: void where the largest softmax probability is below P.

    python -m benchmarks.open_set --split train --every 6 --subsets 16 --seed 0   # choose
    python -m benchmarks.open_set --split val --subsets 16 --seed 1 --methods closed,hidden:0.8  # report once
    python -m benchmarks.open_set --data /tmp/thin_wires --split val --sets "power line" --methods closed,hidden:0.8

Prints one JSON object: per method the wrong pixels summed over the subsets (and the full
label set alone), as counts and as % of ``closed``, and the project classes' pixels
made void.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch

from models.data import load_split, read_classes
from models.inference import Predictor
from models.open_set import HIDDEN_WORDS, hidden_words
from models.wordings import HELD_OUT_SYNONYMS


def subsets(names: list[str], n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [sorted(rng.sample(range(len(names)), rng.randint(2, 6))) for _ in range(n)]


def run_method(predictor, images, labels, words, keep, method, ignore) -> dict:
    """words: the project's words for CamVid classes ``keep``; counts over the frames."""
    kind, _, arg = method.partition(":")
    extra = []
    if kind == "hidden":
        extra = hidden_words(predictor, words, close=2.0 if arg == "none" else float(arg))
    lut = np.full(256, 255, np.uint8)
    for j, c in enumerate(keep):
        lut[c] = j
    wrong = kept_void = kept = other = other_painted = 0
    for img, lbl in zip(images, labels):
        logits = predictor.logits(img, words + extra)
        probs = logits.softmax(0)
        conf, pred = probs.max(0)
        pred = pred.numpy()
        void = pred >= len(words)
        if kind == "prob":
            void |= conf.numpy() < float(arg)
        tgt = lut[lbl]
        valid = lbl != ignore
        in_set = valid & (tgt != 255)
        out_set = valid & (tgt == 255)
        wrong += int((in_set & (void | (pred != tgt))).sum() + (out_set & ~void).sum())
        kept += int(in_set.sum()); kept_void += int((in_set & void).sum())
        other += int(out_set.sum()); other_painted += int((out_set & ~void).sum())
    return {"wrong": wrong, "kept": kept, "kept_void": kept_void, "other": other, "other_painted": other_painted,
            "hidden": extra}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="weights/camvid")
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--split", default="train")
    ap.add_argument("--every", type=int, default=1, help="every N-th frame of the split")
    ap.add_argument("--subsets", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default=None,
                    help='fixed label sets instead of random ones: "a,b;c" (class names of --data), as named')
    ap.add_argument("--methods", default="closed,hidden:0.5,hidden:0.6,hidden:0.7,hidden:0.8,hidden:none,prob:0.5,prob:0.7")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ls = read_classes(args.data)
    names = list(ls.names)
    _, images, labels = load_split(args.data, args.split)
    images, labels = images[::args.every], labels[::args.every]
    predictor = Predictor.load(args.model, "cpu")
    sets = (subsets(names, args.subsets, args.seed) if args.sets is None else
            [[names.index(n.strip()) for n in part.split(",")] for part in args.sets.split(";")])
    methods = args.methods.split(",")
    out = {"split": args.split, "frames": len(images), "seed": args.seed, "hidden_words": list(HIDDEN_WORDS),
           "subsets": [], "full": {}}
    totals = dict.fromkeys(methods, 0)
    for k, keep in enumerate(sets):
        words = [HELD_OUT_SYNONYMS[names[c]] if k % 2 and args.sets is None else names[c] for c in keep]
        row = {"words": words}
        for m in methods:
            r = run_method(predictor, images, labels, words, keep, m, ls.ignore_index)
            row[m] = r
            totals[m] += r["wrong"]
        out["subsets"].append(row)
        print(json.dumps({"subset": k, "words": words, **{m: row[m]["wrong"] for m in methods}}), flush=True)
    for m in methods:
        out["full"][m] = run_method(predictor, images, labels, names, list(range(len(names))), m, ls.ignore_index)
    out["summary"] = {m: {"wrong": totals[m], "pct_of_closed": round(100 * totals[m] / max(1, totals["closed"]), 1),
                          "full_wrong": out["full"][m]["wrong"],
                          "full_pct_of_closed": round(100 * out["full"][m]["wrong"] / max(1, out["full"]["closed"]["wrong"]), 1),
                          "kept_void_pct": round(100 * sum(s[m]["kept_void"] for s in out["subsets"])
                                                 / max(1, sum(s[m]["kept"] for s in out["subsets"])), 2),
                          "other_painted_pct": round(100 * sum(s[m]["other_painted"] for s in out["subsets"])
                                                     / max(1, sum(s[m]["other"] for s in out["subsets"])), 1)}
                      for m in methods}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out["summary"], indent=1))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
