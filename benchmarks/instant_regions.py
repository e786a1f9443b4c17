"""Where the instant layer's extra wrong regions come from (issue 20): one simulated
labeller (bench_instant's random order) over CamVid val frames, and for every image after
the first round, the wrong regions (8-connected, >= 20 px) of the un-adapted model and of
the adapter: by size, by the class the labeller would paint there (the region's majority
true class) and the class shown there (its majority predicted class), how many of the
adapter's regions lie mostly where the un-adapted model was right ("new"), and how many
extra pieces come from an un-adapted region split in several by a partial fix.

    python -m benchmarks.instant_regions --images 0:50 --seed 0 --per-round 13

A diagnostic: nothing is chosen on it (BENCHMARKS.md, "Instant adaptation: gated by the
model's confidence").
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from scipy import ndimage

from benchmarks.bench_instant import parse_slice
from benchmarks.bench_loop import MIN_REGION_PIXELS, read_pairs
from models.adapt import AdaptSettings, InstantAdaptation
from models.data import list_pairs, read_classes
from models.inference import DEFAULT_MODEL_DIR, Predictor

EIGHT = np.ones((3, 3), bool)


def _regions(pred: np.ndarray, truth: np.ndarray, ignore: int):
    lab, _ = ndimage.label((truth != ignore) & (pred != truth), structure=EIGHT)
    return lab, np.bincount(lab.ravel())[1:]


def _bucket(size: int) -> str:
    return "20-99 px" if size < 100 else "100-499 px" if size < 500 else ">= 500 px"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--images", default="0:50")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-round", type=int, default=13, help="images before counting starts (round 1)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ls = read_classes(args.data)
    names, ignore, k = ls.names, ls.ignore_index, len(ls.names)
    items = read_pairs(list_pairs(args.data, "val")[parse_slice(args.images)])
    session = InstantAdaptation(Predictor.load(args.model, "cpu"), names, ignore, AdaptSettings(), seed=args.seed)
    embs = [session.embed(it[2]) for it in items]
    out = {w: {"sizes": {}, "true_class": np.zeros(k, int), "shown_class": np.zeros(k, int)} for w in ("base", "adapted")}
    new = from_base = split_pieces = 0
    for done, i in enumerate(np.random.default_rng(args.seed).permutation(len(items))):
        truth, emb = items[i][3], embs[i]
        maps = {"base": emb.base_map, "adapted": session.predict(emb).class_map}
        if done >= args.per_round:
            labs = {}
            base_wrong = (truth != ignore) & (emb.base_map != truth)
            for w, pred in maps.items():
                lab, sizes = labs[w] = _regions(pred, truth, ignore)
                for r in np.flatnonzero(sizes >= MIN_REGION_PIXELS) + 1:
                    m = lab == r
                    o = out[w]
                    bucket = _bucket(sizes[r - 1])
                    o["sizes"][bucket] = o["sizes"].get(bucket, 0) + 1
                    o["true_class"][np.bincount(truth[m], minlength=256)[:k].argmax()] += 1
                    o["shown_class"][np.bincount(pred[m], minlength=256)[:k].argmax()] += 1
                    if w == "adapted":
                        if (base_wrong & m).sum() < 0.5 * m.sum():
                            new += 1
                        else:
                            from_base += 1
            (lb, sb), (la, sa) = labs["base"], labs["adapted"]
            for r in np.flatnonzero(sb >= MIN_REGION_PIXELS) + 1:
                inside = np.unique(la[(lb == r) & (la > 0)])
                split_pieces += max(0, int((sa[inside - 1] >= MIN_REGION_PIXELS).sum()) - 1)
        session.add(items[i][0], emb, truth)
        session.update()
    report = {"images": args.images, "seed": args.seed, "counted_from_image": args.per_round + 1,
              **{w: {"regions": int(o["true_class"].sum()), "sizes": o["sizes"],
                     "true_class": dict(zip(names, o["true_class"].tolist())),
                     "shown_class": dict(zip(names, o["shown_class"].tolist()))} for w, o in out.items()},
              "adapted_regions_new": new, "adapted_regions_on_base_errors": from_base,
              "extra_pieces_from_splits": split_pieces}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
