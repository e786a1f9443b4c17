"""How similar two class words may be before the label-set map says they "sit too close".

The threshold of ``models.label_map.TOO_CLOSE`` is chosen on CamVid *train* and then
reported once on *val*: the shipped model predicts each split, a pair of classes
counts as confused when at least ``CONFUSED_SHARE`` of one class's pixels are
predicted as the other (``models.label_map.pair_confusion``), and each candidate
threshold (every pair's cosine similarity, rounded to 0.05) is scored by how well
"similarity >= threshold" finds the confused pairs (F1; ties: the higher threshold).

    python -m benchmarks.label_set_threshold --model weights/camvid --data ../shared/datasets/camvid

Prints one JSON object: per split the confused pairs, and the chosen threshold's
precision / recall / F1 on train and on val.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from models.adapt import word_adapter
from models.data import load_split, read_classes
from models.inference import Predictor
from models.label_map import CONFUSED_SHARE, cosine_similarity, pair_confusion
from models.metrics import confusion_matrix


def split_confusion(predictor, data, split, names, ignore, limit=None) -> np.ndarray:
    _, images, labels = load_split(data, split, limit=limit)
    k = len(names)
    conf = np.zeros((k, k), np.int64)
    for img, lbl in zip(images, labels):
        pred = predictor.logits(img, names).argmax(0).numpy()
        conf += confusion_matrix(pred, lbl, k, ignore)
    return conf


def score(sim: np.ndarray, confused: np.ndarray, t: float) -> dict:
    iu = np.triu_indices(len(sim), 1)
    said, true = sim[iu] >= t, confused[iu]
    tp = int((said & true).sum())
    p = tp / max(1, int(said.sum()))
    r = tp / max(1, int(true.sum()))
    return {"threshold": t, "flagged": int(said.sum()), "confused": int(true.sum()), "hits": tp,
            "precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3)}


def pairs(names, m, iu, keep) -> list:
    return [[names[i], names[j], round(float(m[i, j]), 3)] for i, j in zip(*iu) if keep[i, j]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="weights/camvid")
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each split")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ls = read_classes(args.data)
    names = list(ls.names)
    predictor = Predictor.load(args.model, "cpu")
    sim = cosine_similarity(word_adapter(predictor, names).class_vectors.numpy())
    iu = np.triu_indices(len(names), 1)
    out = {"model": args.model, "classes": names, "confused_share": CONFUSED_SHARE}
    confused = {}
    for split in ("train", "val"):
        conf = split_confusion(predictor, args.data, split, names, ls.ignore_index, args.limit)
        pc = pair_confusion(conf)
        confused[split] = pc >= CONFUSED_SHARE
        out[f"{split}_confused_pairs"] = pairs(names, pc, iu, confused[split])
    candidates = sorted({round(float(s) * 20) / 20 for s in sim[iu]} | {1.0})
    scored = [score(sim, confused["train"], t) for t in candidates]
    best = max(scored, key=lambda s: (s["f1"], s["threshold"]))
    out["similar_pairs"] = sorted(pairs(names, sim, iu, sim >= 0.4), key=lambda t: -t[2])
    out["train"] = best
    out["val"] = score(sim, confused["val"], best["threshold"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
