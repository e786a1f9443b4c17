"""The second reviewer, fourth round (issue 20, item 3): a rule chosen on CamVid train only.

The shipped model was trained on CamVid train, so on train its evidence is better than on
images it never saw. Two guards, both on train only:

- ``--input-scale 0.5``: the model sees each image at half size and its logits are scaled
  back up (``bench_second_reviewer._scaled_logits``). On train that gives mIoU 0.64 (0.78 at
  full size; the shipped model on an unseen drive: 0.61, issue 20), a weaker, less sure
  model on the same annotations;
- ``--queues drive``: one review queue per drive (0001TP 62, 0006R0 101, 0016E5 204
  images), as a project holds one drive (val is one drive), each with its own planted
  errors (10%, ``bench_second_reviewer.plant_seeds``) and its own queue statistics.

Rules scored (recall@20% per queue, mean over seeds; relabelled and erased separately):

- ``base``: ``models.review.PROBS_RULE`` evidence (the app's since the third round), plain
  (``Evidence.score``) or with queue statistics (``queue_scores``: the app's order), and
  with other queue weightings (``relpair``: an entry's weight is e / (e + the mean evidence
  of its pair in the other images), times the queue's -log weight; ``freqw``: 1 - the share
  of the other images with that pair; ``rankrel``: the share of the other images whose
  strongest entry of that pair is weaker);
- ``--grid components``: also the *disagreement components*, 8-connected regions where the
  model's argmax differs from the label, grouped by (label, predicted) pair or by label,
  eroded by r = 0 / 1 / 2 px (boundary seams drop out), evidence = their pixels (``ind``),
  those with p(label) < 0.03 or p(predicted) > 0.8 (``strong``), or the sum of
  clip(log(p(predicted) / p(label)) / log 100, 0, 1) (``soft``): alone and with the base
  entries, plain and with queue statistics.

``--probe 30`` printed the model's mIoU on 30 train images under each weakening tried
(:func:`perturb`) before the proxy was chosen.

Each planted region's *visibility* (the share of it that the model predicts as its true
class) is reported with whether it reached the head: what no rule on the model's output
can do better than.

    python benchmarks/tune_second_reviewer_fourth.py --split train --input-scale 0.5 --queues drive \\
        --grid components --probs-cache runs/sr4/probs_train_s05.npz \\
        --out benchmarks/results/cpu_second_reviewer_fourth_train_s05.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_second_reviewer as bench  # noqa: E402
from models.review import PROBS_RULE, Evidence, annotation_evidence_from_probs, pair_weights, queue_scores  # noqa: E402

EIGHT = np.ones((3, 3), bool)
LOG100 = float(np.log(100.0))


# --------------------------------------------------------------------------- disagreement components

def pixel_weights(p_pred: np.ndarray, p_label: np.ndarray) -> dict[str, np.ndarray | None]:
    """Per-pixel weights of a disagreeing pixel: ``ind`` (1), ``strong`` (p(label) < 0.03 or
    p(predicted) > 0.8) and ``soft`` (log(p(predicted) / p(label)) / log 100, clipped to [0, 1])."""
    strong = ((p_label < 0.03) | (p_pred > 0.8)).astype(np.float32)
    soft = np.clip(np.log(np.maximum(p_pred, 1e-6) / np.maximum(p_label, 1e-6)) / LOG100, 0, 1).astype(np.float32)
    return {"ind": None, "strong": strong, "soft": soft}


def disagreement_components(probs, class_map: np.ndarray, ignore_index: int, num_classes: int, group: str,
                            radii=(0, 1, 2)) -> dict:
    """{(r, weight): (top, cls, evidence)} of the 8-connected regions of labelled pixels whose
    argmax differs from the label, grouped by ``group`` ("pair": (label, predicted) or
    "label"), each eroded by r px; ``top`` = the label, ``cls`` = the predicted class (most
    of the region's for "label"), evidence = the weighted pixel count of the eroded region."""
    p = np.asarray(probs)
    m = np.asarray(class_map)
    K = int(num_classes)
    pred = p.argmax(0)
    pc = np.take_along_axis(p, pred[None], 0)[0].astype(np.float32)
    lab = m != ignore_index
    pl = np.take_along_axis(p, np.where(lab, m, 0).astype(np.intp)[None], 0)[0].astype(np.float32)
    weights = pixel_weights(pc, pl)
    dis = lab & (pred != m)
    key = m.astype(np.int64) * K + pred if group == "pair" else m.astype(np.int64)
    acc = {(r, w): ([], [], []) for r in radii for w in weights}
    for k in (np.unique(key[dis]) if dis.any() else []):
        mk = dis & (key == k)
        comp, n = ndimage.label(mk, structure=EIGHT)
        label = int(k // K) if group == "pair" else int(k)
        for r in radii:
            core = mk if r == 0 else ndimage.binary_erosion(mk, structure=EIGHT, iterations=r)
            if not core.any():
                continue
            cid = comp[core]
            for w, arr in weights.items():
                ev = np.bincount(cid, weights=None if arr is None else arr[core], minlength=n + 1)[1:]
                nz = np.nonzero(ev > 0)[0]
                if nz.size == 0:
                    continue
                if group == "pair":
                    cls = np.full(nz.size, int(k % K))
                else:
                    hist = np.bincount(cid * K + pred[core], minlength=(n + 1) * K).reshape(n + 1, K)[1:]
                    cls = hist[nz].argmax(1)
                t, c, e = acc[(r, w)]
                t.append(np.full(nz.size, label)), c.append(cls), e.append(ev[nz].astype(float))
    return {key_: tuple(np.concatenate(x) if x else np.zeros(0) for x in v) for key_, v in acc.items()}


def entries(probs, class_map, ignore_index, num_classes, grid: bool) -> dict:
    """Every entry set of one annotation: ``"n"`` (labelled px), ``"base"`` (PROBS_RULE) and,
    with ``grid``, (group, r, weight) for the disagreement components."""
    ev = annotation_evidence_from_probs(probs, class_map, ignore_index, num_classes, PROBS_RULE)
    f = {"n": ev.labelled, "base": (ev.top, ev.cls, ev.evidence)}
    if grid:
        for g in ("pair", "label"):
            for (r, w), v in disagreement_components(probs, class_map, ignore_index, num_classes, g).items():
                f[(g, r, w)] = v
    return f


def evidence_of(f: dict, keys) -> Evidence:
    parts = [f[k] for k in keys]
    t, c, e = (np.concatenate([np.asarray(x[j]) for x in parts]) for j in range(3))
    return Evidence(f["n"], t.astype(np.intp), c.astype(np.intp), e.astype(float))


# --------------------------------------------------------------------------- queue weightings

def relpair_scores(evs: list[Evidence], k: int, with_log: bool = True) -> list[float]:
    """Leave-one-out: an entry's weight is e / (e + the mean evidence of its pair over the
    other annotations), times the -log pair weight of :func:`models.review.queue_scores`."""
    per = [e.pairs(k) for e in evs]
    tot, n = np.sum(per, 0), len(evs)
    out = []
    for e, p in zip(evs, per):
        if e.labelled == 0 or e.evidence.size == 0:
            out.append(0.0)
            continue
        mean = (tot - p) / max(n - 1, 1)
        w = e.evidence / (e.evidence + mean[e.top, e.cls] + 1e-9)
        if with_log:
            w = w * pair_weights(tot - p)[e.top, e.cls]
        out.append(float((e.evidence * w).max()) / e.labelled)
    return out


def freq_scores(evs: list[Evidence], k: int) -> list[float]:
    """Weight 1 - the share of the other annotations with any evidence of the entry's pair."""
    per = [(e.pairs(k) > 0).astype(float) for e in evs]
    tot, n = np.sum(per, 0), len(evs)
    return [0.0 if e.labelled == 0 or e.evidence.size == 0 else
            float((e.evidence * (1 - ((tot - p) / max(n - 1, 1))[e.top, e.cls])).max()) / e.labelled
            for e, p in zip(evs, per)]


def rank_scores(evs: list[Evidence], k: int) -> list[float]:
    """Weight = the share of the other annotations whose strongest entry of the pair is weaker."""
    best = np.zeros((len(evs), k, k))
    for j, e in enumerate(evs):
        np.maximum.at(best[j], (e.top, e.cls), e.evidence)
    out = []
    for j, e in enumerate(evs):
        if e.labelled == 0 or e.evidence.size == 0:
            out.append(0.0)
            continue
        others = np.delete(best[:, e.top, e.cls], j, axis=0)  # (n - 1, entries)
        out.append(float((e.evidence * (others < e.evidence).mean(0)).max()) / e.labelled)
    return out


ORDERS = {
    "plain": lambda evs, k: [e.score() for e in evs],
    "queue": queue_scores,
    "relpair x queue": relpair_scores,
    "freqw": freq_scores,
    "rankrel": rank_scores,
}


def rule_list(grid: bool) -> list[tuple[str, list, list[str]]]:
    rules = [("base PROBS_RULE", ["base"], list(ORDERS))]
    if grid:
        for g in ("pair", "label"):
            for r in (0, 1, 2):
                for w in ("ind", "strong", "soft"):
                    rules.append((f"{g} r{r} {w}", [(g, r, w)], ["plain", "queue"]))
                    rules.append((f"{g} r{r} {w} + base", [(g, r, w), "base"], ["plain", "queue"]))
    return rules


# --------------------------------------------------------------------------- choosing the proxy

def perturb(img: np.ndarray, kind: str) -> np.ndarray:
    """The weakenings tried before the proxy was chosen: ``half`` (half size, bilinear; the
    logits are scaled back up), ``blurjpeg`` (Gaussian blur 1.5 px, then JPEG quality 25),
    ``dark`` (0.6 x^1.6 + 0.05) and ``combo`` (dark, then blurjpeg)."""
    import io

    from PIL import Image, ImageFilter

    if kind == "none":
        return img
    im = Image.fromarray(img)
    if kind == "half":
        return np.asarray(im.resize((img.shape[1] // 2, img.shape[0] // 2), Image.BILINEAR))
    if kind == "blurjpeg":
        buf = io.BytesIO()
        im.filter(ImageFilter.GaussianBlur(1.5)).save(buf, "JPEG", quality=25)
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "dark":
        x = img.astype(np.float32) / 255
        return (np.clip(0.6 * x ** 1.6 + 0.05, 0, 1) * 255).astype(np.uint8)
    if kind == "combo":
        return perturb(perturb(img, "dark"), "blurjpeg")
    raise ValueError(kind)


def probe(data: Path, model: Path, split: str, n: int, threads: int) -> dict:
    """mIoU of the model on ``n`` images spread over ``split`` under each weakening."""
    import torch

    from models.data import list_pairs, load_image, load_label, read_classes
    from models.inference import Predictor

    torch.set_num_threads(threads)
    ls = read_classes(data)
    K, ign = len(ls.names), ls.ignore_index
    pairs = list_pairs(data, split)
    pairs = [pairs[i] for i in bench.evenly(len(pairs), n)]
    predictor = Predictor.load(model, device="cpu")
    out = {}
    for kind in ("none", "half", "blurjpeg", "dark", "combo"):
        conf = np.zeros((K, K))
        for _, ip, lp in pairs:
            img = load_image(ip)
            lbl = load_label(lp, (img.shape[1], img.shape[0]))
            lg = predictor.logits(perturb(img, kind), ls.names)
            if tuple(lg.shape[1:]) != lbl.shape:
                lg = torch.nn.functional.interpolate(lg[None], size=lbl.shape, mode="bilinear", align_corners=False)[0]
            pred = lg.argmax(0).numpy()
            m = lbl != ign
            conf += np.bincount(lbl[m].astype(np.int64) * K + pred[m], minlength=K * K).reshape(K, K)
        iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
        out[kind] = round(float(iou.mean()), 3)
        print(f"  {kind:9s} mIoU {out[kind]:.3f}", flush=True)
    return out


# --------------------------------------------------------------------------- the run

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--model", default=str(ROOT / "weights" / "camvid"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--input-scale", type=float, default=1.0)
    ap.add_argument("--probs-cache", type=Path, default=None)
    ap.add_argument("--queues", choices=("drive", "all"), default="drive",
                    help="one queue per drive (the name's prefix) or the whole split as one queue")
    ap.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--grid", choices=("none", "components"), default="none")
    ap.add_argument("--orders", nargs="+", default=None, help=f"only these orders of the base rule: {list(ORDERS)}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--probe", type=int, default=0, metavar="N",
                    help="only print the model's mIoU on N images of --split under each weakening, and stop")
    args = ap.parse_args(argv)
    if args.probe:
        probe(Path(args.data), Path(args.model), args.split, args.probe, args.threads)
        return
    if not 0.05 <= args.input_scale <= 1.0:
        ap.error("--input-scale must be in [0.05, 1]")
    if args.probs_cache is None:
        ap.error("--probs-cache is needed (the float16 probabilities of --split)")

    t0 = time.perf_counter()
    ls, names, labels, probs, _, _, info = bench.predict_probs(Path(args.data), args.split, Path(args.model), None,
                                                               args.threads, args.probs_cache, args.input_scale)
    K, ign, grid = len(ls.names), ls.ignore_index, args.grid == "components"
    groups = sorted({n.split("_")[0] for n in names}) if args.queues == "drive" else ["all"]
    clean = [entries(probs[i], m, ign, K, grid) for i, m in enumerate(labels)]
    queues, planted, vis = {}, {}, {}
    for d in groups:
        idx = [i for i, n in enumerate(names) if d == "all" or n.startswith(d + "_")]
        pls = bench.plant_seeds([labels[i] for i in idx], args.seed, K, ign, 300, 0.1)
        queues[d] = (idx, [(s, {idx[j]: v for j, v in p.items()}) for s, p in pls])
        for s, p in queues[d][1]:
            for i, (lbl, inf) in p.items():
                planted[(d, s, i)] = entries(probs[i], lbl, ign, K, grid)
                region = lbl != labels[i]
                vis[(d, s, i)] = float((np.asarray(probs[i]).argmax(0)[region] == inf["from"]).mean())
    print(f"entries: {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    for name, keys, orders in rule_list(grid):
        for order in orders:
            if args.orders and name.startswith("base") and order not in args.orders:
                continue
            res, hits = {}, []
            for d, (idx, pls) in queues.items():
                per = []
                for s, p in pls:
                    evs = [evidence_of(planted[(d, s, i)] if i in p else clean[i], keys) for i in idx]
                    sc = np.asarray(ORDERS[order](evs, K), float)
                    is_pl = np.array([i in p for i in idx])
                    m = bench.queue_metrics(sc, is_pl, np.random.default_rng([s, 1]), 0.2)
                    ranks = m.pop("ranks")
                    per.append(m)
                    hits += [{"queue": d, "seed": s, "image": names[i], "mode": p[i][1]["mode"], "area": p[i][1]["area"],
                              "from": ls.names[p[i][1]["from"]], "to": ls.names[p[i][1]["to"]],
                              "visibility": round(vis[(d, s, i)], 3), "rank": int(ranks[j]) + 1,
                              "in_head": bool(ranks[j] < m["queue_head"])} for j, i in enumerate(idx) if i in p]
                res[d] = {"recall": float(np.mean([m["recall_at_head"] for m in per])),
                          "per_seed": [m["recall_at_head"] for m in per],
                          "auc": float(np.mean([m["auc"] for m in per])), "images": len(idx),
                          "planted": per[0]["planted"], "head": per[0]["queue_head"]}

            def rec(sel):
                return round(float(np.mean([h["in_head"] for h in sel])), 3) if sel else None

            kinds = {mode: rec([h for h in hits if h["mode"] == mode]) for mode in ("relabel", "erase")}
            by_vis = {f"{mode} visibility {lo}-{hi}": {"planted": len(sel), "recall": rec(sel)}
                      for mode in ("relabel", "erase") for lo, hi in ((0, 0.5), (0.5, 0.8), (0.8, 1.0))
                      for sel in [[h for h in hits if h["mode"] == mode and lo <= h["visibility"] < hi + (hi == 1.0)]]}
            row = {"rule": name, "order": order, "mean": float(np.mean([r["recall"] for r in res.values()])),
                   "min": float(np.min([r["recall"] for r in res.values()])), "queues": res, **kinds,
                   "by_visibility": by_vis}
            if name.startswith("base"):
                row["planted_images"] = hits
            rows.append(row)
            print(f"{name:24s} {order:16s} mean {row['mean']:.3f} | "
                  + " ".join(f"{d} {r['recall']:.2f}" for d, r in res.items())
                  + f" | relabel {kinds['relabel']:.2f} erase {kinds['erase']:.2f}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
            "machine": bench.machine(info), "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "split": args.split, "input_scale": args.input_scale, "queues": args.queues, "seeds": args.seed,
            "planting": "bench_second_reviewer.plant_seeds: 10% of each queue, regions >= 300 px, relabel / erase 50/50",
            "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
