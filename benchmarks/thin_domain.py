"""A thin-structure domain with its own words, made from CamVid frames, and a probe of a
full-resolution head on a job's maps (issue 20; BENCHMARKS.md, "A thin-structure domain").

Issue 20's hidden second domain has two classes and thin structures: after 20 images a job
leaves 22% of the wrong pixels but 2.9x the wrong regions. The CamVid proxies (a label set of
merged CamVid classes) did not reproduce that. ``make`` draws 2-5 power lines over each frame
of a CamVid split (anti-aliased sagging curves 1.0-2.5 px wide, dark grey, seeded per frame)
and writes a dataset in CamVid's layout whose label set is "power line" / "background"
(void 2): the loop benchmark runs on it as on CamVid (``--data``).

    python -m benchmarks.thin_domain make --out /tmp/thin_wires                       # CamVid val frames
    python -m benchmarks.bench_loop --base weights/camvid --data /tmp/thin_wires --sequence 0016E5 \\
        --pool-split val --val auto --rounds 3 --per-round 10 --minutes 2.5 --seed 0|1 --out ...
    python -m benchmarks.thin_domain probe --data /tmp/thin_wires --job /tmp/thin_job20 --k 20
    python -m benchmarks.thin_domain probe --data ../shared/datasets/camvid --base runs/loop/strong_A \\
        --drive 0001TP --job /tmp/regions_by_shape_job --k 40 --source train --measure-class 2

    python -m benchmarks.thin_domain recall --model runs/loop/strong_A --drive 0001TP --measure-class 2

``recall``: is a thin class missed or misplaced? A model's plain argmax on a drive's CamVid train
frames: the class's IoU, recall and precision, and both again with 2 px of slack (a true pixel
counts as found when the model marks the class within 2 px of it, and the reverse).

``probe`` (a measurement, not a feature): one default job on the first ``--k`` frames of the
pool in the loop's seed-0 order (trained once, kept in ``--job``), then a small convolutional
head at full resolution (the job's class probabilities and the RGB image in, a correction of
each class's logit out; 3x3 convolutions of 16 channels, dilations 1, 1, 2, 4, 8) trained on
the job's own logits of those ``--k`` frames, and the job's maps with and without it on the
other frames of the pool: wrong pixels, wrong regions (>= 20 px, the loops' count) and one
class's IoU; with ``--ops-target`` also the scripted labeller's operations (fills and strokes,
``benchmarks.scripted_labeller``) to that pixel accuracy, and the base's maps as a first row.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.data import IMAGE_SUFFIXES  # noqa: E402

SUPERSAMPLE = 4
LABELS = {"ignore_index": 2, "classes": [
    {"index": 0, "name": "power line", "color": [255, 200, 0]},
    {"index": 1, "name": "background", "color": [40, 40, 40]}]}


def wire_coverage(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much of each pixel 2-5 power lines cover (each a
    quadratic curve from the left edge to the right, sagging 3-40 px, 1.0-2.5 px wide, in the
    upper 55% of the frame), from a 4x supersampled drawing."""
    s = SUPERSAMPLE
    yy, xx = np.mgrid[0:height * s, 0:width * s].astype(np.float32) / s
    t = xx / width
    cov = np.zeros((height * s, width * s), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        y0, y1 = rng.uniform(5, 0.55 * height, 2)
        sag = rng.uniform(3, 40)
        half = rng.uniform(1.0, 2.5) / 2
        centre = y0 + (y1 - y0) * t + 4 * sag * t * (1 - t)
        slope = (y1 - y0) / width + 4 * sag * (1 - 2 * t) / width
        dist = np.abs(yy - centre) / np.sqrt(1 + slope ** 2)
        cov = np.maximum(cov, (dist <= half).astype(np.float32))
    return cov.reshape(height, s, width, s).mean((1, 3))


def draw_wires(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image with power lines, label: 0 where a line covers at least half a pixel, else 1)."""
    h, w = image.shape[:2]
    cov = wire_coverage(h, w, rng)
    colour = rng.uniform(20, 70) + rng.uniform(-8, 8, 3)
    out = image.astype(np.float32) * (1 - cov[..., None]) + colour * cov[..., None]
    label = np.where(cov >= 0.5, 0, 1).astype(np.uint8)
    return out.round().clip(0, 255).astype(np.uint8), label


def make(src: Path, out: Path, split: str = "val") -> int:
    """Write ``out``/{images,labels}/``split`` and classes.json from ``src``/images/``split``;
    frame i is drawn with seed 1000 + i (sorted names), so a run is repeatable. -> frames."""
    files = sorted(p for p in (src / "images" / split).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {src / 'images' / split}")
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"))
        img, lab = draw_wires(rgb, np.random.default_rng(1000 + i))
        Image.fromarray(img).save(out / "images" / split / (f.stem + ".png"))   # lossless: the lines stay as drawn
        Image.fromarray(lab).save(out / "labels" / split / (f.stem + ".png"))
    (out / "classes.json").write_text(json.dumps(LABELS, indent=1))
    return len(files)


def probe(a) -> dict:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from benchmarks.bench_loop import labeller_order, wrong_regions
    from benchmarks.scripted_labeller import scripted_ops
    from models.data import read_classes
    from models.finetune import default_params, start_from, train_config
    from models.inference import Predictor, prediction_from_probs
    from models.refine import RefineSettings
    from models.segmenter import Segmenter
    from models.train import SplitData, train_model

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ls = read_classes(a.data)
    names, ignore = ls.names, ls.ignore_index
    pool = (labeller_order(a.data, a.drive, 0, split="train", source="val") if a.source == "val"
            else labeller_order(a.data, a.drive, 0))
    job_dir = Path(a.job)
    if not (job_dir / "config.json").exists():
        t = time.time()
        model, _ = start_from(a.base, names, ls.colors, ignore)
        train_model(model, SplitData([p[2] for p in pool[:a.k]], [p[3] for p in pool[:a.k]]), None,
                    train_config(default_params(), "cpu"), out_dir=None, show_progress=False)
        model.save_pretrained(job_dir)
        print(f"job trained in {time.time() - t:.0f} s -> {job_dir}", flush=True)
    job = Predictor(Segmenter.from_pretrained(job_dir), "cpu")

    def inputs(img):
        with torch.no_grad():
            lg = job.logits(img, names)
        return lg, torch.from_numpy(img).permute(2, 0, 1).float() / 255 - 0.5

    class Head(nn.Module):
        def __init__(self, k: int, c: int = 16):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(k + 3, c, 3, padding=1)] + [
                nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in (1, 2, 4, 8)])
            self.out = nn.Conv2d(c, k, 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, lg, rgb):            # (B, K, H, W), (B, 3, H, W) -> (B, K, H, W)
            h = torch.cat([lg.softmax(1), rgb], 1)
            for conv in self.convs:
                h = F.relu(conv(h))
            return lg + self.out(h)

    train = [(inputs(p[2]), torch.from_numpy(p[3].astype(np.int64))) for p in pool[:a.k]]
    held = [(inputs(p[2]), p[3], p[2]) for p in pool[a.k:]]
    head = Head(len(names), a.channels)
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    t = time.time()
    c = a.crop
    for _ in range(a.steps):
        lgs, rgbs, ys = [], [], []
        for _ in range(a.batch):
            (lg, rgb), y = train[rng.integers(len(train))]
            y0, x0 = rng.integers(y.shape[0] - c), rng.integers(y.shape[1] - c)
            lgs.append(lg[:, y0:y0 + c, x0:x0 + c])
            rgbs.append(rgb[:, y0:y0 + c, x0:x0 + c])
            ys.append(y[y0:y0 + c, x0:x0 + c])
        loss = F.cross_entropy(head(torch.stack(lgs), torch.stack(rgbs)), torch.stack(ys), ignore_index=ignore)
        opt.zero_grad()
        loss.backward()
        opt.step()
    report = {"data": str(a.data), "job": str(job_dir), "k": a.k, "held_out": len(held), "steps": a.steps,
              "crop": a.crop, "batch": a.batch, "channels": a.channels,
              "head_seconds": round(time.time() - t, 1), "measure_class": names[a.measure_class], "rows": []}

    def row(tag, mapper):
        wrong = labelled = regions = tp = fp = fn = ops = 0
        ms = 0.0
        for (lg, rgb), truth, img in held:
            t0 = time.time()
            m = mapper(lg, rgb, img)
            ms += time.time() - t0
            valid = truth != ignore
            labelled += int(valid.sum())
            wrong += int((valid & (m != truth)).sum())
            regions += wrong_regions(m, truth, ignore)
            g, q = truth == a.measure_class, m == a.measure_class
            tp += int((g & q).sum())
            fp += int((q & ~g & valid).sum())
            fn += int((g & ~q).sum())
            if a.ops_target:
                ops += scripted_ops(m, truth, ignore, target=a.ops_target)
        r = {"maps": tag, "wrong_%": round(100 * wrong / labelled, 2), "regions": round(regions / len(held), 1),
             "class_iou": round(tp / max(1, tp + fp + fn), 3), "ms": round(1000 * ms / len(held)),
             **({"ops": round(ops / len(held), 1)} if a.ops_target else {})}
        report["rows"].append(r)
        print(json.dumps(r), flush=True)

    with torch.no_grad():
        refine = RefineSettings()
        if a.ops_target:
            base = Predictor.load(a.base, "cpu")
            row("base, refined (no job)", lambda lg, rgb, img: base.predict(img, names).class_map)
        row("job, plain argmax", lambda lg, rgb, img: lg.argmax(0).numpy())
        row("job, refined (the app)", lambda lg, rgb, img: prediction_from_probs(lg.softmax(0), img, refine).class_map)
        row("job + head", lambda lg, rgb, img: head(lg[None], rgb[None])[0].argmax(0).numpy())
        row("job + head, refined",
            lambda lg, rgb, img: prediction_from_probs(head(lg[None], rgb[None])[0].softmax(0), img, refine).class_map)
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    return report


def recall(a) -> dict:
    import torch
    from scipy import ndimage

    from models.data import list_pairs, load_image, load_label, read_classes
    from models.inference import Predictor

    torch.set_num_threads(a.threads)
    ls = read_classes(a.data)
    pred = Predictor.load(a.model, "cpu")
    c = a.measure_class
    n = {"tp": 0, "fp": 0, "fn": 0, "true": 0, "found_2px": 0, "marked": 0, "right_2px": 0}
    for _, ip, lp in list_pairs(a.data, a.split, [a.drive]):
        img = load_image(ip)
        truth = load_label(lp, (img.shape[1], img.shape[0]))
        m = pred.logits(img, ls.names).argmax(0).numpy()
        valid = truth != ls.ignore_index
        g, q = (truth == c) & valid, (m == c) & valid
        n["tp"] += int((g & q).sum())
        n["fp"] += int((q & ~g).sum())
        n["fn"] += int((g & ~q).sum())
        n["true"] += int(g.sum())
        n["marked"] += int(q.sum())
        n["found_2px"] += int((g & ndimage.binary_dilation(q, iterations=2)).sum())
        n["right_2px"] += int((q & ndimage.binary_dilation(g, iterations=2)).sum())
    out = {"model": str(a.model), "drive": a.drive, "class": ls.names[c], **n,
           "iou": round(n["tp"] / max(1, n["tp"] + n["fp"] + n["fn"]), 3),
           "recall": round(n["tp"] / max(1, n["true"]), 3), "precision": round(n["tp"] / max(1, n["marked"]), 3),
           "recall_2px": round(n["found_2px"] / max(1, n["true"]), 3),
           "precision_2px": round(n["right_2px"] / max(1, n["marked"]), 3)}
    print(json.dumps(out))
    return out


def main(argv: list[str] | None = None):
    root = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="draw power lines over a CamVid split")
    m.add_argument("--src", type=Path, default=root)
    m.add_argument("--split", default="val")
    m.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("probe", help="a full-resolution head on a job's maps")
    p.add_argument("--data", required=True)
    p.add_argument("--base", default="weights/camvid")
    p.add_argument("--drive", default="0016E5")
    p.add_argument("--source", choices=["train", "val"], default="val",
                   help="the CamVid split the pool comes from (val: the images auto_split keeps for training)")
    p.add_argument("--job", required=True, help="the job's model: trained here once if missing")
    p.add_argument("--k", type=int, default=20, help="frames the job and the head train on")
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--batch", type=int, default=8, help="crops a step")
    p.add_argument("--measure-class", type=int, default=0, help="the class whose IoU is reported")
    p.add_argument("--ops-target", type=float, default=0.0,
                   help="also the scripted labeller's operations to this pixel accuracy (e.g. 0.995), and the base's row")
    
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    r = sub.add_parser("recall", help="is a thin class missed or misplaced")
    r.add_argument("--data", default=str(root))
    r.add_argument("--model", default="weights/camvid")
    r.add_argument("--split", default="train")
    r.add_argument("--drive", default="0001TP")
    r.add_argument("--measure-class", type=int, default=2)
    r.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.cmd == "recall":
        return recall(a)
    if a.cmd == "make":
        print(f"{make(a.src, a.out, a.split)} frames -> {a.out}")
        return None
    return probe(a)


if __name__ == "__main__":
    main()
