"""The model as a second reviewer (issue 11): does it put planted annotation errors first?

    # choose a rule on train (prints and writes the grid, best first): the pixel rules ...
    python benchmarks/bench_second_reviewer.py --split train --tune --seed 0 1 2 3 4 --threads 1 \\
        --cache /tmp/sr_cache_train.npz --out benchmarks/results/cpu_second_reviewer_tuning_train.json
    # ... and the objects rules, without and with pair statistics
    python benchmarks/bench_second_reviewer.py --split train --tune-objects --seed 0 1 2 3 4 --threads 1 \\
        --cache /tmp/sr_cache_train.npz --out benchmarks/results/cpu_second_reviewer_tuning_objects_train.json
    # report ReviewRule() defaults on val (no pair statistics)
    python benchmarks/bench_second_reviewer.py --split val --seed 0 1 2 3 4 5 6 7 8 9 --threads 1 \\
        --cache /tmp/sr_cache_val.npz --time-review 10 --out benchmarks/results/cpu_second_reviewer_objects.json
    # ... with pair statistics of train's clean ground truth (the accepted annotations)
    python benchmarks/bench_second_reviewer.py --split val --seed 0 1 2 3 4 5 6 7 8 9 --threads 1 \\
        --cache /tmp/sr_cache_val.npz --min-share 0 --pair-stats train --stats-cache /tmp/sr_cache_train.npz \\
        --time-review 10 --out benchmarks/results/cpu_second_reviewer_objects_train_stats.json
    # ... with pair statistics of the submitted queue itself (no ground truth)
    python benchmarks/bench_second_reviewer.py --split val --seed 0 1 2 3 4 5 6 7 8 9 --threads 1 \\
        --cache /tmp/sr_cache_val.npz --min-share 0 --pair-stats queue \\
        --out benchmarks/results/cpu_second_reviewer_objects_queue_stats.json
    # the earlier pixel rule: --score regions --threshold 0.95 --min-region 50 (--band 2)
    # third round: rules reading the probability of the labelled class (full float16 probabilities cached)
    python benchmarks/bench_second_reviewer.py --split train --tune-probs --seed 0 1 2 3 4 --threads 1 \\
        --probs-cache /tmp/sr_probs_train.npz --out benchmarks/results/cpu_second_reviewer_tuning_probs_train.json
    python benchmarks/bench_second_reviewer.py --split val --seed 0 1 2 3 4 5 6 7 8 9 --threads 1 \\
        --probs-cache /tmp/sr_probs_val.npz --min-share 0 --low-prob 0.03 --components --pair-stats queue \\
        --time-review 10 --out benchmarks/results/cpu_second_reviewer_probs_queue_stats.json

Takes a split's ground truth as the submitted annotations. In 10% of the images (chosen
with the seed) one error is planted: an object region (an 8-connected component of one
class, at least ``--min-object`` px) is either relabelled to a random wrong class, or
erased into the class that surrounds it most (the majority class of a 3 px ring around
it, void not counted), half and half. Every image is scored by
:func:`models.review.disagreement_from_prediction` (the rule, ``ReviewRule()`` defaults
unless given) against the shipped model's prediction, the
images are ordered by score, highest first (the review queue; ties in random order),
and the benchmark reports:

- recall@20%: the share of planted images in the first 20% of the queue (target >= 0.8);
- the same for a random order: its expectation (= the queue share, analytically, a
  hypergeometric mean) and the chance that a random order reaches the target;
- precision at k = number of planted images, and the ROC AUC of planted vs clean scores.

The model runs once per image (CPU, ``--threads``); seeds reuse the predictions.
``--tune`` / ``--tune-objects`` score a grid of rules instead (use them on train only),
and ``--limit N`` takes N images spread evenly over the split's sorted names.

Pair statistics (``--pair-stats``, the ``"objects"`` score only): ``train`` sums
:func:`models.review.pair_evidence` over the clean ground truth of ``--stats-split``
(on that split itself, leaving out the image scored), as the project's accepted
annotations would be; ``queue`` over the submitted annotations of the queue, planted
errors included, leaving out the image scored: no ground truth at all.

Rules with ``--low-prob`` (``models.review.PROBS_RULE``) read the probability of the
labelled class, so they need the full probabilities (``--probs-cache``); each
annotation's ``Evidence`` comes from :func:`models.review.annotation_evidence_from_probs`
and the queue is ordered by :func:`models.review.queue_scores`, as in the app.

``--input-scale 0.5`` (with ``--probs-cache``) shows the model each image at half size and
scales its logits back up: a weaker model on the same annotations, the fourth round's proxy
for images the model never saw (``benchmarks/tune_second_reviewer_fourth.py``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.review import (  # noqa: E402
    DEFAULT_RULE, PROBS_RULE, Evidence, ReviewRule, annotation_components, annotation_evidence_from_probs,
    disagreement_from_prediction, disagreement_regions, label_probability, object_evidence, pair_evidence,
    pair_weights, predicted_objects, queue_scores)

EIGHT = np.ones((3, 3), dtype=bool)


def evenly(n_total: int, limit: int | None) -> list[int]:
    if not limit or limit >= n_total:
        return list(range(n_total))
    return sorted(set(np.linspace(0, n_total - 1, limit).round().astype(int).tolist()))


def _predict(data: Path, split: str, model: Path, limit: int | None, threads: int, cache: Path | None,
             keep_probs: bool, input_scale: float = 1.0, prefixes: list[str] | None = None, flip: bool = False):
    """(labels_set, names, labels, probs or None, preds, confs, info) for a split, from
    ``cache`` when its key matches (the key says whether it holds the probabilities).

    ``input_scale`` < 1: the model sees the image scaled down by that factor (bilinear) and
    its logits are scaled back up to the label's size (bilinear) before the softmax: a
    weaker, less confident model on images it was trained on (fourth round: CamVid train
    at 0.5 has about the mIoU of the shipped model on an unseen drive)."""
    import torch

    from models.data import list_pairs, load_image, load_label, read_classes
    from models.inference import Predictor

    labels_set = read_classes(data)
    pairs = list_pairs(data, split, prefixes)
    pairs = [pairs[i] for i in evenly(len(pairs), limit)]
    names = [p[0] for p in pairs]
    key = {"split": split, "model": str(Path(model).resolve()), "names": names}
    if keep_probs:
        key["probs"] = "float16"
    if input_scale != 1.0:
        key["input_scale"] = float(input_scale)
    if flip:
        key["flip"] = True
    if cache and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if json.loads(str(z["key"])) == key:
            print(f"{'probabilities' if keep_probs else 'predictions'} from {cache}", flush=True)
            return (labels_set, names, list(z["labels"]), list(z["probs"]) if keep_probs else None,
                    list(z["pred"]), list(z["conf"]), json.loads(str(z["info"])))
    torch.set_num_threads(threads)
    predictor = Predictor.load(model, device="cpu", flip=flip)
    labels, probs, preds, confs = [], [], [], []
    predictor.logits(load_image(pairs[0][1]), labels_set.names)  # warm-up outside the clock
    start = time.perf_counter()
    for i, (name, ip, lp) in enumerate(pairs):
        img = load_image(ip)
        labels.append(load_label(lp, (img.shape[1], img.shape[0])))
        p = _scaled_logits(predictor, img, labels_set.names, input_scale).softmax(0)
        conf, idx = p.max(0)
        if keep_probs:
            probs.append(p.numpy().astype(np.float16))
        preds.append(idx.numpy().astype(np.uint8))
        confs.append(conf.numpy().astype(np.float32))
        if (i + 1) % 20 == 0:
            print(f"  predicted {i + 1}/{len(pairs)}", flush=True)
    elapsed = time.perf_counter() - start
    info = {"device": predictor.device_name, "seconds_per_image": elapsed / len(pairs)}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        extra = {"probs": np.stack(probs)} if keep_probs else {}
        np.savez(cache, key=json.dumps(key), info=json.dumps(info), labels=np.stack(labels),
                 pred=np.stack(preds), conf=np.stack(confs), **extra)
    return labels_set, names, labels, probs if keep_probs else None, preds, confs, info


def _scaled_logits(predictor, img: np.ndarray, names: list[str], input_scale: float):
    """The model's (K, H, W) logits for ``img``, seen at ``input_scale`` of its size (1 = as it is)."""
    if input_scale == 1.0:
        return predictor.logits(img, names)
    import torch
    from PIL import Image

    h, w = img.shape[:2]
    small = np.asarray(Image.fromarray(img).resize((max(8, round(w * input_scale)), max(8, round(h * input_scale))),
                                                   Image.BILINEAR))
    lg = predictor.logits(small, names)
    return torch.nn.functional.interpolate(lg[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def predict_split(data: Path, split: str, model: Path, limit: int | None, threads: int, cache: Path | None,
                  prefixes: list[str] | None = None):
    """names, labels, predicted maps (uint8) and confidences (float32) for a split."""
    labels_set, names, labels, _, preds, confs, info = _predict(data, split, model, limit, threads, cache, False,
                                                                prefixes=prefixes)
    return labels_set, names, labels, preds, confs, info


def predict_probs(data: Path, split: str, model: Path, limit: int | None, threads: int, cache: Path | None,
                  input_scale: float = 1.0, prefixes: list[str] | None = None, flip: bool = False):
    """names, labels and the full softmax (K, H, W) float16 per image, plus the argmax (uint8) and
    its confidence (float32, as :func:`predict_split`), for the rules that read the probability of
    the *labelled* class. Cached in ``cache`` (an uncompressed npz: ~1.4 GB for train's 367 images)."""
    return _predict(data, split, model, limit, threads, cache, True, input_scale, prefixes, flip)


def candidate_objects(label: np.ndarray, ignore_index: int, min_object: int) -> list[tuple[int, np.ndarray]]:
    """(class, bool mask) of every 8-connected one-class region of at least min_object px."""
    out = []
    for c in np.unique(label):
        if c == ignore_index:
            continue
        regions, count = ndimage.label(label == c, structure=EIGHT)
        areas = np.bincount(regions.ravel(), minlength=count + 1)
        for r in np.nonzero(areas[1:] >= min_object)[0] + 1:
            out.append((int(c), regions == r))
    return out


def plant_error(label: np.ndarray, rng: np.random.Generator, num_classes: int, ignore_index: int,
                min_object: int) -> tuple[np.ndarray, dict] | None:
    objects = candidate_objects(label, ignore_index, min_object)
    if not objects:
        return None
    cls, region = objects[rng.integers(len(objects))]
    mode = "relabel" if rng.random() < 0.5 else "erase"
    new = None
    if mode == "erase":
        ring = ndimage.binary_dilation(region, structure=EIGHT, iterations=3) & ~region
        around = label[ring]
        around = around[(around != ignore_index) & (around != cls)]
        if around.size:
            new = int(np.bincount(around, minlength=num_classes).argmax())
        else:
            mode = "relabel"  # nothing but void around it
    if new is None:
        new = int(rng.choice([k for k in range(num_classes) if k != cls]))
    planted = label.copy()
    planted[region] = new
    return planted, {"mode": mode, "from": cls, "to": new, "area": int(region.sum())}


def plant(labels, rng, num_classes, ignore_index, min_object, fraction):
    """{image index: (planted label, info)} for round(fraction * N) images."""
    n = max(1, int(round(fraction * len(labels))))
    out = {}
    for i in rng.permutation(len(labels)):
        if len(out) == n:
            break
        got = plant_error(labels[i], rng, num_classes, ignore_index, min_object)
        if got is not None:
            out[int(i)] = got
    return out


def random_order_baseline(n_total: int, n_planted: int, k: int, target: float) -> dict:
    """Hypergeometric: planted images among the first k of a uniformly random order."""
    total = math.comb(n_total, n_planted)
    need = math.ceil(target * n_planted - 1e-9)
    p_at_least = sum(math.comb(k, j) * math.comb(n_total - k, n_planted - j)
                     for j in range(need, min(k, n_planted) + 1)) / total
    return {"expected_recall_at_queue_share": k / n_total, "p_reaching_target": p_at_least}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(planted score > clean score), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def queue_metrics(scores: np.ndarray, planted: np.ndarray, rng: np.random.Generator, share: float) -> dict:
    n = len(scores)
    k = int(round(share * n))
    order = np.lexsort((rng.random(n), -scores))  # by score descending, ties in random order
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    n_pl = int(planted.sum())
    return {
        "images": n, "planted": n_pl, "queue_head": k,
        "recall_at_head": float(planted[order[:k]].sum() / n_pl),
        "precision_at_planted": float(planted[order[:n_pl]].sum() / n_pl),
        "auc": auc(scores[planted], scores[~planted]),
        "ranks": rank,
    }


def plant_seeds(labels, seeds, num_classes, ignore_index, min_object, fraction):
    """[(seed, {image index: (planted label, info)})]: planted once, scored with any rule."""
    return [(seed, plant(labels, np.random.default_rng(seed), num_classes, ignore_index, min_object, fraction))
            for seed in seeds]


def evaluate(labels, preds, confs, ignore_index, plantings, rule, share, names=None, stats=None, num_classes=None):
    """Score clean images once and each seed's planted images; per-seed queue metrics and their mean.

    ``stats`` (the ``"objects"`` score only): None = no pair statistics; ``("fixed", S)``:
    the (K, K) statistics ``S`` of another split's clean ground truth; ``"loo"``: of this
    split's clean ground truth without the image scored (leave one out); ``"queue"``: of
    the submitted annotations of the queue, planted errors included, without the image
    scored (no ground truth used)."""
    if stats is None:
        def score(i, lbl):
            return disagreement_from_prediction(preds[i], confs[i], lbl, ignore_index, rule)[0]

        clean = np.array([score(i, lbl) for i, lbl in enumerate(labels)], dtype=float)
        return rank_seeds(clean, score, plantings, share, names, len(labels))
    K = num_classes
    if isinstance(stats, tuple) and stats[0] == "fixed":
        S = np.asarray(stats[1], float)

        def score(i, lbl):
            return disagreement_from_prediction(preds[i], confs[i], lbl, ignore_index, rule, pair_stats=S)[0]

        clean = np.array([score(i, lbl) for i, lbl in enumerate(labels)], dtype=float)
        return rank_seeds(clean, score, plantings, share, names, len(labels))
    own = [pair_evidence(preds[i], confs[i], lbl, ignore_index, K, rule) for i, lbl in enumerate(labels)]
    total = sum(own)
    if stats == "loo":
        def score(i, lbl):
            return disagreement_from_prediction(preds[i], confs[i], lbl, ignore_index, rule,
                                                pair_stats=total - own[i])[0]

        clean = np.array([score(i, lbl) for i, lbl in enumerate(labels)], dtype=float)
        return rank_seeds(clean, score, plantings, share, names, len(labels))
    if stats != "queue":
        raise ValueError(f"unknown statistics {stats!r}")
    per_seed = []
    for seed, planted in plantings:  # the statistics change with what was submitted: one queue per seed
        sub = list(own)
        for i, (lbl, _) in planted.items():
            sub[i] = pair_evidence(preds[i], confs[i], lbl, ignore_index, K, rule)
        tot = sum(sub)
        submitted = list(labels)
        for i, (lbl, _) in planted.items():
            submitted[i] = lbl
        scores = np.array([disagreement_from_prediction(preds[i], confs[i], lbl, ignore_index, rule,
                                                        pair_stats=tot - sub[i])[0]
                           for i, lbl in enumerate(submitted)], dtype=float)
        per_seed += rank_seeds(scores, lambda i, lbl, s=scores: s[i], [(seed, planted)], share, names,
                               len(labels))[0]
    return per_seed, seed_mean(per_seed)


def split_pair_stats(data: Path, split: str, model: Path, threads: int, cache: Path | None, rule: ReviewRule):
    """(K, K) pair statistics of a split's clean ground truth (e.g. train: the accepted annotations)."""
    labels_set, _, labels, preds, confs, _ = predict_split(data, split, model, None, threads, cache)
    K, ign = len(labels_set.names), labels_set.ignore_index
    return sum(pair_evidence(p, c, lbl, ign, K, rule) for p, c, lbl in zip(preds, confs, labels))


def rank_seeds(clean, score, plantings, share, names, n):
    """Per seed: the clean scores with the planted images rescored by ``score(i, label)``, queue metrics."""
    per_seed = []
    for seed, planted in plantings:
        scores = clean.copy()
        for i, (lbl, _) in planted.items():
            scores[i] = score(i, lbl)
        is_pl = np.zeros(n, bool)
        is_pl[list(planted)] = True
        m = queue_metrics(scores, is_pl, np.random.default_rng([seed, 1]), share)  # rng: tie-breaks
        ranks = m.pop("ranks")
        m["seed"] = seed
        m["planted_images"] = sorted(
            ({"image": names[i] if names else i, **info, "score": round(float(scores[i]), 5),
              "rank": int(ranks[i]) + 1, "in_head": bool(ranks[i] < m["queue_head"])}
             for i, (_, info) in planted.items()),
            key=lambda d: d["rank"])
        per_seed.append(m)
    return per_seed, seed_mean(per_seed)


def seed_mean(per_seed) -> dict:
    return {k: float(np.mean([m[k] for m in per_seed])) for k in ("recall_at_head", "precision_at_planted", "auc")}


def breakdown(per_seed) -> dict:
    """Recall in the queue head pooled over seeds, by planting mode and by planted area."""
    rows = [d for m in per_seed for d in m["planted_images"]]
    groups = {"relabel": lambda d: d["mode"] == "relabel", "erase": lambda d: d["mode"] == "erase",
              "area < 1000 px": lambda d: d["area"] < 1000,
              "area 1000-5000 px": lambda d: 1000 <= d["area"] < 5000,
              "area >= 5000 px": lambda d: d["area"] >= 5000}
    out = {}
    for name, f in groups.items():
        sel = [d for d in rows if f(d)]
        out[name] = {"planted": len(sel), "in_head": sum(d["in_head"] for d in sel),
                     "recall": (sum(d["in_head"] for d in sel) / len(sel)) if sel else None}
    return out


def tune(labels, preds, confs, ignore_index, plantings, share,
         thresholds=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98), bands=(0, 1, 2, 3, 4),
         min_regions=(0, 25, 50, 100, 150, 300, 600, 1000), scores=("largest", "regions")):
    """Every rule of the grid, best first (mean recall@head, then AUC, then p@k).

    The regions of each (threshold, band) are found once per image and every size cut and
    score is read off their areas; this equals :func:`score_disagreement` (checked on the
    first image) and is much faster than scoring each rule from scratch.
    """
    shape = labels[0].shape
    rows = []

    def rule_rows(t, band_px, areas_of):
        clean = [areas_of(i, lbl) for i, lbl in enumerate(labels)]
        planted = [{i: areas_of(i, lbl) for i, (lbl, _) in p.items()} for _, p in plantings]
        for mr, sc in itertools.product(min_regions, scores):
            rule = ReviewRule(threshold=t, boundary_band=band_px, min_region=mr, score=sc)
            _, mr_px = rule.scaled(shape)

            def s(a):
                areas, n = a
                big = areas[areas >= max(mr_px, 1)]
                if n == 0 or big.size == 0:
                    return 0.0
                return (big.max() if sc == "largest" else big.sum()) / n

            c = np.array([s(a) for a in clean])
            per_seed = []
            for (seed, p), pa in zip(plantings, planted):
                sc_ = c.copy()
                for i in p:
                    sc_[i] = s(pa[i])
                is_pl = np.zeros(len(labels), bool)
                is_pl[list(p)] = True
                m = queue_metrics(sc_, is_pl, np.random.default_rng([seed, 1]), share)
                m.pop("ranks")
                per_seed.append(m)
            mean = seed_mean(per_seed)
            rows.append({"rule": rule.__dict__, **mean, "recall_per_seed": [m["recall_at_head"] for m in per_seed]})

    for t in thresholds:
        for band in bands:
            rule = ReviewRule(threshold=t, boundary_band=band)
            band_px, _ = rule.scaled(shape)

            def areas_of(i, lbl, t=t, band_px=band_px):
                d = (preds[i] != lbl) & (confs[i] > t)
                _, areas, n = disagreement_regions(d, lbl, ignore_index, band_px)
                return areas[1:], n

            # check the fast path against the reference on the first image
            for mr in (0, 150):
                ref = disagreement_from_prediction(preds[0], confs[0], labels[0], ignore_index,
                                                   ReviewRule(threshold=t, boundary_band=band, min_region=mr,
                                                              score="largest"))[0]
                a, n = areas_of(0, labels[0])
                big = a[a >= max(mr, 1)]
                fast = (big.max() / n) if big.size else 0.0
                assert abs(ref - fast) < 1e-12, (t, band, mr, ref, fast)
            rule_rows(t, band, areas_of)
        share_rule = ReviewRule(score="share", threshold=t, boundary_band=0, min_region=0)
        per_seed, mean = evaluate(labels, preds, confs, ignore_index, plantings, share_rule, share)
        rows.append({"rule": share_rule.__dict__, **mean, "recall_per_seed": [m["recall_at_head"] for m in per_seed]})
        best = max((r for r in rows if r["rule"]["threshold"] == t), key=lambda r: (r["recall_at_head"], r["auc"]))
        print(f"  t={t}: best of {sum(r['rule']['threshold'] == t for r in rows)} rules: {best['rule']} "
              f"recall@head {best['recall_at_head']:.3f} AUC {best['auc']:.3f}", flush=True)
    rows.sort(key=lambda r: (-r["recall_at_head"], -r["auc"], -r["precision_at_planted"]))
    return rows


def tune_objects(labels, preds, confs, ignore_index, plantings, share, num_classes,
                 thresholds=(0.5, 0.8, 0.9), min_areas=(50, 150, 300), min_shares=(0.0, 0.3, 0.5),
                 stats=(None, "loo", "queue")):
    """The ``"objects"`` score over a grid (thresholds x smallest object x share x pair
    statistics, see :func:`evaluate`), best first. Each image's objects are found once per
    threshold; the score is read off their table (checked against the module on image 0)."""
    K, shape, rows = num_classes, labels[0].shape, []
    n_lab = [int((lbl != ignore_index).sum()) for lbl in labels]
    for t in thresholds:
        clean_t = [predicted_objects(preds[i], confs[i], lbl, ignore_index, t, K)[1] for i, lbl in enumerate(labels)]
        planted_t = [{i: predicted_objects(preds[i], confs[i], lbl, ignore_index, t, K)[1] for i, (lbl, _) in p.items()}
                     for _, p in plantings]
        for mr, ms in itertools.product(min_areas, min_shares):
            rule = ReviewRule(threshold=t, min_region=mr, min_share=ms, score="objects")
            _, mr_px = rule.scaled(shape)

            def ev(tab):
                kept, e = object_evidence(tab, mr_px, ms)
                M = np.zeros((K, K))
                np.add.at(M, (tab["top"][kept], tab["cls"][kept]), e[kept])
                return kept, e, M

            ce = [ev(tab) for tab in clean_t]
            pe = [{i: ev(tab) for i, tab in pt.items()} for pt in planted_t]

            def s(i, tab, kept_e, S):
                kept, e, _ = kept_e
                if not kept.any() or n_lab[i] == 0:
                    return 0.0
                if S is not None:
                    e = e * pair_weights(S)[np.maximum(tab["top"], 0), np.maximum(tab["cls"], 0)]
                return float(e.max()) / n_lab[i]

            total = sum(x[2] for x in ce)
            if t == thresholds[0] and mr == min_areas[0] and ms == min_shares[0]:  # fast path == module
                for S in (None, total - ce[0][2]):
                    ref = disagreement_from_prediction(preds[0], confs[0], labels[0], ignore_index, rule,
                                                       pair_stats=S)[0]
                    assert abs(ref - s(0, clean_t[0], ce[0], S)) < 1e-12
            for st in stats:
                per_seed = []
                for (seed, p), pt, pe_s in zip(plantings, planted_t, pe):
                    if st == "queue":
                        sub = [x[2] for x in ce]
                        for i in p:
                            sub[i] = pe_s[i][2]
                        tot = sum(sub)
                    sc = np.zeros(len(labels))
                    for i in range(len(labels)):
                        tab, ke = (pt[i], pe_s[i]) if i in p else (clean_t[i], ce[i])
                        S = None if st is None else (total - ce[i][2] if st == "loo" else tot - sub[i])
                        sc[i] = s(i, tab, ke, S)
                    is_pl = np.zeros(len(labels), bool)
                    is_pl[list(p)] = True
                    m = queue_metrics(sc, is_pl, np.random.default_rng([seed, 1]), share)
                    m.pop("ranks")
                    per_seed.append(m)
                rows.append({"rule": rule.__dict__, "pair_stats": st, **seed_mean(per_seed),
                             "recall_per_seed": [m["recall_at_head"] for m in per_seed]})
        best = max((r for r in rows if r["rule"]["threshold"] == t), key=lambda r: (r["recall_at_head"], r["auc"]))
        print(f"  objects t={t}: best {best['rule']} stats {best['pair_stats']}: "
              f"recall@head {best['recall_at_head']:.3f} AUC {best['auc']:.3f}", flush=True)
    rows.sort(key=lambda r: (-r["recall_at_head"], -r["auc"], -r["precision_at_planted"]))
    return rows


def evaluate_probs(labels, probs, ignore_index, plantings, rule, share, names, stats, num_classes):
    """As :func:`evaluate` for rules that read the probability of the labelled class: each
    annotation's :class:`models.review.Evidence` from the full probabilities
    (:func:`models.review.annotation_evidence_from_probs`), scored plainly (``stats``
    None) or with the queue's own statistics by :func:`models.review.queue_scores`, the
    app's computation (``"queue"``)."""
    if stats not in (None, "queue"):
        raise ValueError("with full probabilities, pair statistics are none or queue")
    clean = [annotation_evidence_from_probs(probs[i], lbl, ignore_index, num_classes, rule)
             for i, lbl in enumerate(labels)]
    per_seed = []
    for seed, planted in plantings:
        sub = list(clean)
        for i, (lbl, _) in planted.items():
            sub[i] = annotation_evidence_from_probs(probs[i], lbl, ignore_index, num_classes, rule)
        scores = np.array(queue_scores(sub, num_classes) if stats == "queue" else [e.score() for e in sub])
        per_seed += rank_seeds(scores, lambda i, lbl, s=scores: s[i], [(seed, planted)], share, names,
                               len(labels))[0]
    return per_seed, seed_mean(per_seed)


def tune_probs(labels, probs, preds, confs, ignore_index, plantings, share, num_classes,
               low_probs=(0.01, 0.03, 0.1, 0.2), min_objects=(150, 300), min_components=(50, 150, 300),
               threshold=0.8):
    """Third round, rules that read the probability of the labelled class (p(label)), over
    a grid, each without and with queue statistics, best first. Entries of an annotation:

    - ``sure``: the model's objects as in :data:`models.review.STATS_RULE` (the baseline);
    - ``low e``: the same objects, counting the pixels labelled ``top`` with p(label) < e
      instead of those where the model is sure of its own class;
    - ``union e``: counting both (``ReviewRule(low_prob=e)``);
    - ``+ comp e min c``: also the annotation's own regions of at least c px, evidence from
      their pixels with p(label) < e (``components=True``; c = the objects' minimum in the
      module, where both use ``min_region``);
    - ``comp e min c only``: the regions alone.

    min share 0 throughout. Everything, the baseline included, is computed from the cached
    float16 probabilities. The features are computed once per image; the module's result
    is checked against them for the union + components rule on image 0."""
    K, T = num_classes, threshold
    n_lab = [int((lbl != ignore_index).sum()) for lbl in labels]
    # argmax and confidence of the cached float16 probabilities, as the module computes them from those
    # (the float32 ones of the cache differ on a few near-tied pixels)
    preds = [p.argmax(axis=0) for p in probs]
    confs = [p.max(axis=0) for p in probs]

    def features(i, m):
        pl = label_probability(probs[i], m, ignore_index)
        _, tab = predicted_objects(preds[i], confs[i], m, ignore_index, T, K)
        f = {"obj": tab, "sure": tab["agree_top"]}
        for e in low_probs:
            f[f"union{e}"] = predicted_objects(preds[i], confs[i], m, ignore_index, T, K, label_prob=pl,
                                               low_prob=e)[1]["agree_top"]
            f[f"low{e}"] = predicted_objects(preds[i], np.zeros_like(confs[i]), m, ignore_index, T, K,
                                             label_prob=pl, low_prob=e)[1]["agree_top"]
            f[f"comp{e}"] = annotation_components(m, ignore_index, pl, e, preds[i], K)[1]
        return f

    def entries(f, cfg):
        tops, clss, evs = [], [], []
        if cfg["obj"]:
            tab = dict(f["obj"], agree_top=f[cfg["obj"]])
            kept, e = object_evidence(tab, cfg["min_obj"], 0.0)
            tops.append(tab["top"][kept]), clss.append(tab["cls"][kept]), evs.append(e[kept])
        if cfg.get("comp"):
            tab = f[f"comp{cfg['comp']}"]
            kept, e = object_evidence(tab, cfg["min_comp"], 0.0)
            tops.append(tab["top"][kept]), clss.append(tab["cls"][kept]), evs.append(e[kept])
        return Evidence(0, np.concatenate(tops).astype(np.intp), np.concatenate(clss).astype(np.intp),
                        np.concatenate(evs))

    cfgs = []
    for mo in min_objects:
        cfgs.append({"name": f"sure min {mo}", "obj": "sure", "min_obj": mo})
        for e in low_probs:
            cfgs.append({"name": f"union {e} min {mo}", "obj": f"union{e}", "min_obj": mo})
            cfgs.append({"name": f"low {e} min {mo}", "obj": f"low{e}", "min_obj": mo})
            for mc in min_components:
                for o in ("sure", f"union{e}"):
                    cfgs.append({"name": f"{'sure' if o == 'sure' else f'union {e}'} min {mo} + comp {e} min {mc}",
                                 "obj": o, "min_obj": mo, "comp": e, "min_comp": mc})
    for e in low_probs:
        for mc in min_components:
            cfgs.append({"name": f"comp {e} min {mc} only", "obj": None, "min_obj": None, "comp": e, "min_comp": mc})

    t0 = time.perf_counter()
    clean_f = [features(i, m) for i, m in enumerate(labels)]
    planted_f = [{i: features(i, lbl) for i, (lbl, _) in p.items()} for _, p in plantings]
    print(f"  features: {time.perf_counter() - t0:.0f} s", flush=True)
    # the fast path equals the module (union 0.03 + components, min 150 both)
    ref = annotation_evidence_from_probs(probs[0], labels[0], ignore_index, K, PROBS_RULE)
    fast = entries(clean_f[0], {"obj": "union0.03", "min_obj": 150, "comp": 0.03, "min_comp": 150})
    assert np.allclose(np.sort(ref.evidence), np.sort(fast.evidence)), (ref.evidence, fast.evidence)

    def with_n(ev, i):
        return Evidence(n_lab[i], ev.top, ev.cls, ev.evidence)

    rows = []
    for cfg in cfgs:
        clean = [with_n(entries(f, cfg), i) for i, f in enumerate(clean_f)]
        for st in (None, "queue"):
            per_seed = []
            for (seed, p), pf in zip(plantings, planted_f):
                sub = list(clean)
                for i in p:
                    sub[i] = with_n(entries(pf[i], cfg), i)
                sc = np.array(queue_scores(sub, K) if st else [e.score() for e in sub])
                is_pl = np.zeros(len(labels), bool)
                is_pl[list(p)] = True
                m = queue_metrics(sc, is_pl, np.random.default_rng([seed, 1]), share)
                m.pop("ranks")
                per_seed.append(m)
            rows.append({"rule": cfg["name"], "config": cfg, "pair_stats": st, **seed_mean(per_seed),
                         "recall_per_seed": [m["recall_at_head"] for m in per_seed]})
        print(f"  {cfg['name']:34s} none {rows[-2]['recall_at_head']:.3f}  queue {rows[-1]['recall_at_head']:.3f} "
              f"AUC {rows[-1]['auc']:.3f}", flush=True)
    rows.sort(key=lambda r: (-r["recall_at_head"], -r["auc"], -r["precision_at_planted"]))
    return rows


def command() -> str:
    return "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])


def machine(info: dict) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, model on {info['device']}, no GPU"


def time_review_score(data: Path, split: str, model: Path, threads: int, rule: ReviewRule, n: int,
                      pair_stats=None, prefixes: list[str] | None = None) -> float:
    """Seconds per image of :func:`models.review.review_score` (what the app calls), warm."""
    import torch

    from models.data import list_pairs, load_image, load_label, read_classes
    from models.inference import Predictor
    from models.review import review_score

    torch.set_num_threads(threads)
    labels_set = read_classes(data)
    pairs = list_pairs(data, split, prefixes)[:n]
    predictor = Predictor.load(model, device="cpu")
    items = [(load_image(ip), load_label(lp)) for _, ip, lp in pairs]
    review_score(predictor, items[0][0], items[0][1], labels_set.names, labels_set.ignore_index, rule,
                 pair_stats=pair_stats)  # warm-up
    start = time.perf_counter()
    for img, lbl in items:
        review_score(predictor, img, lbl, labels_set.names, labels_set.ignore_index, rule, pair_stats=pair_stats)
    return (time.perf_counter() - start) / len(items)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--model", default=str(ROOT / "weights" / "camvid"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--limit", type=int, default=None, help="N images spread evenly over the split")
    ap.add_argument("--prefixes", default=None,
                    help="comma-separated file-name prefixes: only the split's images of these drives "
                         "(e.g. 0001TP: images a base trained without that drive never saw)")
    ap.add_argument("--fraction", type=float, default=0.1, help="share of images with a planted error")
    ap.add_argument("--queue-share", type=float, default=0.2, help="head of the queue measured")
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--min-object", type=int, default=300, help="px: smallest region an error is planted in")
    ap.add_argument("--threshold", type=float, default=DEFAULT_RULE.threshold)
    ap.add_argument("--band", type=int, default=DEFAULT_RULE.boundary_band)
    ap.add_argument("--min-region", type=int, default=DEFAULT_RULE.min_region)
    ap.add_argument("--score", default=DEFAULT_RULE.score)
    ap.add_argument("--min-share", type=float, default=DEFAULT_RULE.min_share)
    ap.add_argument("--pair-stats", choices=("none", "train", "queue"), default="none",
                    help='"objects" score: pair statistics from the clean ground truth of --stats-split '
                         '(leave-one-out when it is --split), or from the submitted queue itself (no ground truth)')
    ap.add_argument("--stats-split", default="train")
    ap.add_argument("--stats-cache", type=Path, default=None, help="prediction cache of --stats-split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="npz of the predictions, reused when it matches")
    ap.add_argument("--tune", action="store_true", help="score a grid of rules (use on train, not val)")
    ap.add_argument("--tune-objects", action="store_true",
                    help='score a grid of "objects" rules and pair statistics (use on train, not val)')
    ap.add_argument("--low-prob", type=float, default=0.0,
                    help='"objects": also count pixels whose labelled class the model gives less than this '
                         '(full probabilities: needs --probs-cache; PROBS_RULE: 0.03)')
    ap.add_argument("--components", action="store_true",
                    help="with --low-prob: the annotation's own regions give evidence too (PROBS_RULE)")
    ap.add_argument("--probs-cache", type=Path, default=None,
                    help="npz of the full float16 probabilities (~1.4 GB for train): for --low-prob and "
                         "--tune-probs, used instead of --cache")
    ap.add_argument("--tune-probs", action="store_true",
                    help="score a grid of rules reading p(labelled class), with and without queue statistics "
                         "(use on train, not val)")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="with --probs-cache: the model sees each image scaled by this (e.g. 0.5), its logits "
                         "scaled back up: a weaker model on its own training images (fourth round, choosing on train)")
    ap.add_argument("--flip", action="store_true",
                    help="with --probs-cache: each image is also seen mirrored, the two views averaged (the app's "
                         "--predict-flip)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--note", default="", help="free text kept in the results (e.g. 'CPU shared with other jobs')")
    ap.add_argument("--time-review", type=int, default=0, metavar="N",
                    help="also time models.review.review_score (model + full-probability rule) on N images")
    args = ap.parse_args(argv)
    prefixes = [p.strip() for p in args.prefixes.split(",") if p.strip()] if args.prefixes else None

    probs = None
    if args.input_scale != 1.0 and not (args.tune_probs or args.low_prob > 0):
        ap.error("--input-scale applies to the full probabilities (--tune-probs or --low-prob with --probs-cache)")
    if not 0.05 <= args.input_scale <= 1.0:
        ap.error("--input-scale must be in [0.05, 1]")
    if args.flip and not (args.tune_probs or args.low_prob > 0):
        ap.error("--flip applies to the full probabilities (--tune-probs or --low-prob with --probs-cache)")
    if args.tune_probs or args.low_prob > 0:
        if args.probs_cache is None:
            ap.error("--tune-probs and --low-prob need --probs-cache")
        labels_set, names, labels, probs, preds, confs, info = predict_probs(
            Path(args.data), args.split, Path(args.model), args.limit, args.threads, args.probs_cache,
            args.input_scale, prefixes, args.flip)
    else:
        labels_set, names, labels, preds, confs, info = predict_split(
            Path(args.data), args.split, Path(args.model), args.limit, args.threads, args.cache, prefixes)
    K, ign = len(labels_set.names), labels_set.ignore_index
    print(f"{args.split}: {len(names)} images, {info['device']}, {info['seconds_per_image']:.2f} s/image", flush=True)
    plantings = plant_seeds(labels, args.seed, K, ign, args.min_object, args.fraction)
    if args.tune or args.tune_objects or args.tune_probs:
        if args.tune_probs:
            rows = tune_probs(labels, probs, preds, confs, ign, plantings, args.queue_share, K)
        elif args.tune_objects:
            rows = tune_objects(labels, preds, confs, ign, plantings, args.queue_share, K)
        else:
            rows = tune(labels, preds, confs, ign, plantings, args.queue_share)
        result = {"command": command(), "machine": machine(info), "note": args.note, "split": args.split,
                  "images": len(names), "seeds": args.seed, "queue_share": args.queue_share,
                  "planting": {"fraction": args.fraction, "min_object_px": args.min_object},
                  "order": "mean recall@head, then AUC, then precision@k", "grid": rows}
        for r in rows[:10]:
            print(f"  {r['rule']} {r.get('pair_stats', '')}: recall@head {r['recall_at_head']:.3f} AUC {r['auc']:.3f} "
                  f"p@k {r['precision_at_planted']:.3f}")
    else:
        rule = ReviewRule(threshold=args.threshold, boundary_band=args.band, min_region=args.min_region,
                          score=args.score, min_share=args.min_share, low_prob=args.low_prob,
                          components=args.components)
        stats, fixed = None, None
        if args.pair_stats == "queue":
            stats = "queue"
        elif args.pair_stats == "train":
            if args.stats_split == args.split:
                stats = "loo"
            else:
                fixed = split_pair_stats(Path(args.data), args.stats_split, Path(args.model), args.threads,
                                         args.stats_cache, rule)
                stats = ("fixed", fixed)
        review_s = time_review_score(Path(args.data), args.split, Path(args.model), args.threads, rule,
                                     args.time_review, fixed, prefixes) if args.time_review else None
        start = time.perf_counter()
        if rule.needs_probs:
            per_seed, mean = evaluate_probs(labels, probs, ign, plantings, rule, args.queue_share, names, stats, K)
        else:
            per_seed, mean = evaluate(labels, preds, confs, ign, plantings, rule, args.queue_share, names, stats, K)
        n_scored = len(names) + sum(len(p) for _, p in plantings)
        scoring_s = time.perf_counter() - start
        for m in per_seed:
            for d in m["planted_images"]:
                d["from_name"], d["to_name"] = labels_set.names[d["from"]], labels_set.names[d["to"]]
        n_pl, k = per_seed[0]["planted"], per_seed[0]["queue_head"]
        baseline = random_order_baseline(len(names), n_pl, k, args.target)
        result = {
            "command": command(), "machine": machine(info), "note": args.note,
            "split": args.split, "prefixes": prefixes, "images": len(names), "model": args.model,
            "rule": rule.__dict__,
            "pair_stats": {"none": None, "queue": "the submitted queue itself, leave one out (no ground truth)",
                           "train": f"clean ground truth of {args.stats_split}"
                                    + (", leave one out" if args.stats_split == args.split else "")}[args.pair_stats],
            "pair_stats_matrix": fixed.round(1).tolist() if fixed is not None else None,
            "planting": {"fraction": args.fraction, "min_object_px": args.min_object,
                         "modes": "relabel to a random wrong class / erase into the surrounding majority class, 50/50"},
            "queue_share": args.queue_share, "target": args.target,
            "model_seconds_per_image": info["seconds_per_image"],
            "scoring_seconds_per_image": scoring_s / n_scored,
            "review_score_seconds_per_image": review_s,
            "random_order": baseline, "mean": mean, "breakdown": breakdown(per_seed), "per_seed": per_seed,
        }
        for m in per_seed:
            missed = [f"{d['image']} ({d['mode']} {labels_set.names[d['from']]}->{labels_set.names[d['to']]}, "
                      f"{d['area']} px, rank {d['rank']})" for d in m["planted_images"] if not d["in_head"]]
            print(f"seed {m['seed']}: recall@{args.queue_share:.0%} {m['recall_at_head']:.2f} "
                  f"({m['planted']} planted, head {m['queue_head']}), "
                  f"p@{m['planted']} {m['precision_at_planted']:.2f}, "
                  f"AUC {m['auc']:.3f}; missed: {'; '.join(missed) or 'none'}")
        print(f"mean: {json.dumps(mean)}; random order: {json.dumps(baseline)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
