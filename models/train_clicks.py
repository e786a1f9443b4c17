"""Train the click-conditioned head (:mod:`models.click_head`) on CamVid train objects.

    python -m models.train_clicks --make-cache --split train    # the shipped model's features, once (runs/click_cache)
    python -m models.train_clicks --out runs/click_head --minutes 40 [--holdout 0001TP ...]
    python -m models.train_clicks --eval runs/click_head --split train --only 0001TP   # NoC on held-out frames
    python -m models.train_clicks --eval grow --split train --only 0001TP              # the grow, same objects

An object is an 8-connected region of one class (void excluded) of at least 400 px, as
in ``benchmarks/bench_clicks.py``. Training is iterative as in RITM: for each batch the
first click is the simulator's (``models.click_object.next_click``: the interior point
farthest from the boundary), then 0 to ``--max-iter`` more clicks are simulated with the
head itself (no gradient), each from the error of its own previous mask, which is fed
back as input; the loss (per object: binary cross-entropy + 1 - soft IoU, void pixels
ignored) is on the last step. Everything is at stride 2 during training (240x180 for
CamVid); the features of the shipped model (stride-4 embeddings and the 11 classes'
probabilities) are cached under ``runs/`` by ``--cache``.

Frames whose name starts with a ``--holdout`` prefix (a drive: 0001TP) are left out of
training, for choosing settings (``--eval ... --only 0001TP``).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .click_head import ClickHead, HeadConfig, HeadFeatures, click_discs, head_from_clicks, similarity_maps
from .click_object import clicks_to_iou, next_click, objects_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "camvid"


# ------------------------------------------------------------------ feature cache

def cache_features(data: Path, split: str, model: str, out: Path, threads: int) -> Path:
    """Embeddings (float16) and class probabilities (float16) of every image of the split."""
    from .adapt import embed_image, word_adapter
    from .inference import Predictor

    torch.set_num_threads(threads)
    meta = json.loads((data / "classes.json").read_text())
    names = [c["name"] for c in meta["classes"]]
    pred = Predictor.load(model, device="cpu")
    adapter = word_adapter(pred, names)
    files = sorted((data / "images" / split).glob("*"))
    embs, probs = [], []
    t0 = time.time()
    for i, f in enumerate(files):
        image = np.asarray(Image.open(f).convert("RGB"))
        emb = embed_image(pred, image, names, with_base_map=False)
        with torch.inference_mode():
            low = torch.einsum("ehw,ke->khw", emb.pixels.float(), adapter.class_vectors.float())
            low = low * adapter.logit_scale + adapter.logit_bias + adapter.biases.view(-1, 1, 1)
        embs.append(emb.pixels.numpy().astype(np.float16))
        probs.append(low.softmax(0).numpy().astype(np.float16))
        if i % 50 == 0:
            print(f"{split} {i}/{len(files)} {time.time() - t0:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{split}.npz"
    np.savez(path, names=np.array([f.name for f in files]), emb=np.stack(embs), probs=np.stack(probs))
    return path


def load_cached(data: Path, cache: Path, split: str):
    """[(name, image uint8, label uint8, emb float16, probs float16)], ignore index."""
    meta = json.loads((data / "classes.json").read_text())
    z = np.load(cache / f"{split}.npz")
    embs, probs = z["emb"], z["probs"]     # each z[...] reads the whole array: once
    items = []
    for i, name in enumerate(z["names"]):
        name = str(name)
        image = np.asarray(Image.open(data / "images" / split / name).convert("RGB"))
        label = np.asarray(Image.open(data / "labels" / split / (Path(name).stem + ".png")))
        items.append((name, image, label, embs[i], probs[i]))
    return items, int(meta["ignore_index"])


# ------------------------------------------------------------------ training

class TrainSet:
    """Stride-2 tensors of every image and its objects (for fast batches)."""

    def __init__(self, items, ignore: int):
        self.rgb, self.emb, self.probs, self.objs = [], [], [], []
        for i, (_, image, label, emb, probs) in enumerate(items):
            t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
            self.rgb.append(F.interpolate(t, scale_factor=0.5, mode="area")[0])
            e = emb.astype(np.float32)
            self.emb.append(e / np.maximum(np.linalg.norm(e, axis=0, keepdims=True), 1e-6))
            self.probs.append(probs.astype(np.float32))
            valid = label != ignore
            for c, m in objects_of(label, ignore):
                # stride-2 target (share of the cell inside the object) and valid share
                g = torch.from_numpy(m.astype(np.float32))[None, None]
                v = torch.from_numpy(valid.astype(np.float32))[None, None]
                self.objs.append((i, c, F.avg_pool2d(g, 2)[0, 0].numpy(), F.avg_pool2d(v, 2)[0, 0].numpy()))
        print(f"{len(items)} images, {len(self.objs)} objects", flush=True)


def _view(ts: TrainSet, key):
    """One batch element ``(object index, flip, y0, x0, ch, cw)``: its stride-2 RGB,
    stride-4 embeddings and probabilities, target and valid share, cropped to the
    (ch, cw) stride-2 window at (y0, x0) (even, so the stride-4 grid stays aligned)."""
    oi, flip, y0, x0, ch, cw = key
    i = ts.objs[oi][0]
    r, e, p = ts.rgb[i], ts.emb[i], ts.probs[i]
    g, v = ts.objs[oi][2], ts.objs[oi][3]
    if flip:
        r, e, p, g, v = r.flip(-1), e[..., ::-1], p[..., ::-1], g[:, ::-1], v[:, ::-1]
    r = r[:, y0:y0 + ch, x0:x0 + cw]
    e = np.ascontiguousarray(e[:, y0 // 2:(y0 + ch) // 2, x0 // 2:(x0 + cw) // 2])
    p = np.ascontiguousarray(p[:, y0 // 2:(y0 + ch) // 2, x0 // 2:(x0 + cw) // 2])
    g = np.ascontiguousarray(g[y0:y0 + ch, x0:x0 + cw])
    v = np.ascontiguousarray(v[y0:y0 + ch, x0:x0 + cw])
    return r, e, p, g, v


def _step_inputs(views, clicks, prev):
    """Tensors for a batch of views; clicks in stride-2 pixels of the crop."""
    rgb, emb, maps2, sims = [], [], [], []
    for b, (r, e, p, _, _) in enumerate(views):
        h2, w2 = r.shape[-2:]
        cl = [(2 * x + 0.5, 2 * y + 0.5, q) for x, y, q in clicks[b]]   # as image pixels
        rgb.append(r)
        emb.append(torch.from_numpy(e))
        maps2.append(torch.from_numpy(np.concatenate([click_discs(cl, (h2, w2), 2.0), prev[b][None]])))
        sims.append(torch.from_numpy(similarity_maps(e, p, cl, (2 * h2, 2 * w2))))
    return torch.stack(rgb), torch.stack(emb), torch.stack(maps2), torch.stack(sims)


def _batch(ts: TrainSet, rng, n: int, crop: tuple[int, int]):
    """n random objects, each a crop of the stride-2 image around its first click."""
    keys = []
    for _ in range(n):
        oi = int(rng.integers(len(ts.objs)))
        flip = bool(rng.integers(2))
        g = ts.objs[oi][2]
        H2, W2 = g.shape
        ch, cw = min(crop[0], H2 - H2 % 2), min(crop[1], W2 - W2 % 2)
        c = next_click((g[:, ::-1] if flip else g) >= 0.5, np.zeros(g.shape, bool))
        cx, cy = (c[0], c[1]) if c else (W2 // 2, H2 // 2)
        y0 = int(np.clip(cy - rng.integers(ch // 8, ch - ch // 8), 0, H2 - ch)) // 2 * 2
        x0 = int(np.clip(cx - rng.integers(cw // 8, cw - cw // 8), 0, W2 - cw)) // 2 * 2
        keys.append((oi, flip, y0, x0, ch, cw))
    return [_view(ts, k) for k in keys]


def train(a) -> None:
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    rng = np.random.default_rng(a.seed)
    items, ignore = load_cached(a.data, a.cache, "train")
    held = tuple(a.holdout)
    items = [it for it in items if not it[0].startswith(held)] if held else items
    ts = TrainSet(items, ignore)
    cfg = HeadConfig(proj=a.proj, fine=a.fine, width=a.width, dilations=tuple(a.dilations))
    head = ClickHead(cfg)
    print(f"head: {sum(p.numel() for p in head.parameters())} parameters", flush=True)
    opt = torch.optim.AdamW(head.parameters(), lr=a.lr, weight_decay=1e-4)
    t0 = time.time()
    step, log = 0, []
    while True:
        elapsed = (time.time() - t0) / 60
        if elapsed > a.minutes or (a.steps and step >= a.steps):
            break
        frac = min(elapsed / a.minutes, 1.0)
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))) * min(1.0, (step + 1) / 50)
        views = _batch(ts, rng, a.batch, (a.crop[0], a.crop[1]))
        batch = views
        gts, vals = [vw[3] for vw in views], [vw[4] for vw in views]
        h2, w2 = gts[0].shape
        prev = [np.zeros((h2, w2), np.float32) for _ in batch]
        clicks: list[list] = []
        for b in range(len(batch)):
            c = next_click(gts[b] >= 0.5, np.zeros((h2, w2), bool), vals[b] >= 0.5)
            clicks.append([c] if c else [])
        n_iter = int(rng.integers(0, a.max_iter + 1))
        head.eval()
        for _ in range(n_iter):
            with torch.no_grad():
                lg = head(*_step_inputs(views, clicks, prev))[:, 0]
            for b in range(len(batch)):
                prev[b] = (lg[b] > 0).float().numpy()
                c = next_click(gts[b] >= 0.5, prev[b] > 0.5, vals[b] >= 0.5)
                if c is not None:
                    clicks[b].append(c)
        head.train()
        lg = head(*_step_inputs(views, clicks, prev))[:, 0]
        gt = torch.from_numpy(np.stack(gts))
        v = torch.from_numpy((np.stack(vals) >= 0.5).astype(np.float32))
        bce = (F.binary_cross_entropy_with_logits(lg, gt, reduction="none") * v).sum((1, 2)) / v.sum((1, 2)).clamp(min=1)
        p = torch.sigmoid(lg) * v
        inter = (p * gt).sum((1, 2))
        union = (p + gt * v - p * gt).sum((1, 2)).clamp(min=1e-6)
        loss = (bce + (1 - inter / union)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            row = {"step": step, "min": round((time.time() - t0) / 60, 2), "loss": round(float(loss.detach()), 4),
                   "iou": round(float((inter / union).detach().mean()), 4), "iters": n_iter}
            log.append(row)
            print(json.dumps(row), flush=True)
        if step % 50 == 0:
            head.eval()
            head.save(a.out, {"train": vars_json(a), "steps": step})
    head.eval()
    head.save(a.out, {"train": vars_json(a), "steps": step, "minutes": round((time.time() - t0) / 60, 1)})
    (Path(a.out) / "log.json").write_text(json.dumps(log))
    print(f"saved {a.out} after {step} steps", flush=True)


def vars_json(a) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}


# ------------------------------------------------------------------ evaluation

def evaluate(a) -> dict:
    """NoC@85/90 of the head on the cached split (the bench_clicks protocol)."""
    from .click_object import ObjectFeatures, ObjectSettings, object_from_clicks

    # the grow of 2026-12-04 the head was measured against (no image here: no edge snap)
    GROW_2026_12_04 = ObjectSettings(threshold=0.6, edge_radius=0, gate_radius=0)

    torch.set_num_threads(a.threads)
    head = None if str(a.eval) == "grow" else ClickHead.load(a.eval)
    items, ignore = load_cached(a.data, a.cache, a.split)
    if a.only:
        items = [it for it in items if it[0].startswith(tuple(a.only))]
    items = items[::a.every]
    rng = np.random.default_rng(0)
    rows = []
    t0 = time.time()
    for name, image, label, emb, probs in items:
        objs = objects_of(label, ignore)
        if a.per_image and len(objs) > a.per_image:
            objs = [objs[i] for i in sorted(rng.choice(len(objs), a.per_image, replace=False))]
        if not objs:
            continue
        grow = ObjectFeatures(emb.astype(np.float32), label.shape, None, probs.astype(np.float32))
        if head is None:      # the grow (models.click_object) as the head was compared with (BENCHMARKS.md)
            feat = grow
        else:
            feat = HeadFeatures(head, image, emb.astype(np.float32), probs.astype(np.float32))
        for c, gt in objs:
            states: dict = {}
            if head is None:
                def tool(cl, feat=feat, states=states):
                    return object_from_clicks(feat, cl, GROW_2026_12_04, states)
            else:
                def tool(cl, feat=feat, states=states):
                    first = (lambda c1: object_from_clicks(grow, c1, GROW_2026_12_04)) if a.grow_first else None
                    return head_from_clicks(feat, cl, states, a.connected, first)
            r = clicks_to_iou(gt, tool, label != ignore, 20)
            rows.append({"image": name, "class": c, "noc85": r["noc"][0.85], "noc90": r["noc"][0.90],
                         "iou1": r["ious"][0] if r["ious"] else 0.0})
    out = {"objects": len(rows), "noc85": round(float(np.mean([r["noc85"] for r in rows])), 2),
           "noc90": round(float(np.mean([r["noc90"] for r in rows])), 2),
           "iou1": round(float(np.mean([r["iou1"] for r in rows])), 3), "seconds": round(time.time() - t0, 1)}
    per = {}
    for c in sorted({r["class"] for r in rows}):
        rs = [r for r in rows if r["class"] == c]
        per[c] = (len(rs), round(float(np.mean([r["noc85"] for r in rs])), 2))
    print(json.dumps(out), json.dumps(per), flush=True)
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(json.dumps({"eval": str(a.eval), "split": a.split, "only": a.only, "every": a.every,
                                        "per_image": a.per_image, "summary": out, "per_class": per, "rows": rows}))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", default=str(ROOT / "weights" / "camvid"))
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "click_cache", help="feature cache folder")
    ap.add_argument("--make-cache", "--cache-only", dest="make_cache", action="store_true",
                    help="compute the feature cache of --split and stop")
    ap.add_argument("--split", default="train", choices=("train", "val"))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "click_head")
    ap.add_argument("--holdout", nargs="*", default=["0001TP"], help="frame-name prefixes left out of training")
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: --minutes only)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, nargs=2, default=[96, 128], help="stride-2 crop (height width) per object")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-iter", type=int, default=4, help="at most this many simulated clicks before the trained one")
    ap.add_argument("--proj", type=int, default=8)
    ap.add_argument("--fine", type=int, default=16)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval", type=Path, help="evaluate this head folder instead of training ('grow': the grow)")
    ap.add_argument("--only", nargs="*", default=[], help="with --eval: frame-name prefixes to keep")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--grow-first", action="store_true", help="with --eval: the grow answers the first click")
    ap.add_argument("--connected", action="store_true", help="with --eval: keep the parts connected to a positive click")
    ap.add_argument("--report", type=Path, help="with --eval: write every object's clicks here (JSON)")
    ap.add_argument("--per-image", type=int, default=4)
    a = ap.parse_args(argv)
    if a.make_cache:
        print(cache_features(a.data, a.split, a.model, a.cache, a.threads))
    elif a.eval:
        evaluate(a)
    else:
        train(a)


if __name__ == "__main__":
    main()
