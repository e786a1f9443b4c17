"""How much of the labeller's work is the output's stride (issue 20, item 2: a finer output).

    # the floor a perfect map at stride s leaves (the truth only, no model)
    python -m benchmarks.output_stride oracle --split train --every 6
    # models side by side on a split: mIoU, pole IoU (plain argmax); wrong pixels, wrong
    # regions and the scripted labeller's operations (maps refined as the app shows them)
    python -m benchmarks.output_stride compare --split val --models weights/camvid,runs/fine/s2 --threads 2
    # one model seen several ways (test-time views: 1f = also mirrored, 1+1.5 = two input scales)
    python -m benchmarks.output_stride compare --models runs/loop/strong_A --prefix 0001TP --views 1,1f,1.5f,1+1.5f

``oracle``: each frame's truth as one-hot scores, averaged over s x s cells (what a network
that is right about every cell can say at stride s), upsampled bilinearly as the model's
logits are, argmaxed; wrong regions are counted as the loop counts them (``common.effort``,
>= 20 px, 8-connected). ``compare``: the same measures for real models; a model's own
stride is in its config (``decoder.fine_channels`` > 0: stride 2). ``--views``: each model
also seen at other input scales and / or mirrored, the views' logits averaged at the image's
size (``1f`` is what ``Predictor(flip=True)``, the app's ``--predict-flip``, shows).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.scripted_labeller import scripted_ops  # noqa: E402
from common.effort import correction_effort, wrong_regions  # noqa: E402
from models.data import load_split, read_classes  # noqa: E402
from models.metrics import confusion_matrix, scores  # noqa: E402

DATA = str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid")


def oracle_map(truth: np.ndarray, num_classes: int, stride: int) -> np.ndarray:
    """(H, W) truth -> the class map of a perfect prediction at ``stride`` (void cells count
    for no class; a cell of void only takes the class around it after the upsampling)."""
    t = torch.from_numpy(truth.astype(np.int64)).clamp(max=num_classes)
    onehot = F.one_hot(t, num_classes + 1).permute(2, 0, 1)[None].float()[:, :num_classes]
    low = F.avg_pool2d(onehot, stride, ceil_mode=True)
    H, W = truth.shape
    up = F.interpolate(low, scale_factor=stride, mode="bilinear", align_corners=False)[0, :, :H, :W]
    return up.argmax(0).numpy().astype(np.uint8)


def measures(preds: list[np.ndarray], truths: list[np.ndarray], ignore: int, ops: bool) -> dict:
    out = {"wrong_pixels": float(np.mean([correction_effort(p, t, ignore) for p, t in zip(preds, truths)])),
           "wrong_regions": float(np.mean([wrong_regions(p, t, ignore) for p, t in zip(preds, truths)]))}
    if ops:
        out["operations"] = int(sum(scripted_ops(p, t, ignore) for p, t in zip(preds, truths)))
    return out


def iou_row(preds, truths, K: int, ignore: int, names: list[str]) -> dict:
    conf = sum(confusion_matrix(p, t, K, ignore) for p, t in zip(preds, truths))
    s = scores(conf, names)
    return {"miou": s["miou"], "per_class": s["per_class_iou"]}


def run_oracle(a) -> dict:
    ls = read_classes(a.data)
    _, _, truths = load_split(a.data, a.split)
    truths = truths[::a.every]
    K = len(ls.names)
    rows = {}
    for s in a.strides:
        preds = [oracle_map(t, K, s) for t in truths]
        rows[f"stride {s}"] = {**measures(preds, truths, ls.ignore_index, a.ops),
                               **iou_row(preds, truths, K, ls.ignore_index, ls.names)}
    return {"mode": "oracle", "split": a.split, "frames": len(truths), "rows": rows}


def parse_views(text: str) -> list[tuple[str, list[tuple[float, bool]]]]:
    """'1,1f,1+1.5f' -> [(name, [(input scale, also mirrored), ...])]: a view is one or more
    input scales joined by '+', an 'f' at its end meaning each is also seen mirrored."""
    views = []
    for name in (v.strip() for v in text.split(",")):
        mirrored = name.endswith("f")
        try:
            scales = [float(x) for x in name.rstrip("f").split("+")]
        except ValueError:
            raise ValueError(f"bad view {name!r}: input scales joined by '+', an 'f' at the end to add the mirror "
                             "(e.g. 1, 1f, 1.5, 1+1.5f)") from None
        views.append((name, [(sc, mirrored) for sc in scales]))
    return views


def view_logits(predictor, image: np.ndarray, names: list[str], parts: list[tuple[float, bool]]) -> torch.Tensor:
    """(K, H, W) logits of ``image``: the mean over the view's (scale, mirrored) parts."""
    total = None
    for scale, mirrored in parts:
        x, size = predictor.network_input(image, scale)
        with torch.inference_mode():
            lg = predictor.model(x, class_names=names, output_size=size, flip_average=mirrored).logits[0].float()
        total = lg if total is None else total + lg
    return total / len(parts)


def run_compare(a) -> dict:
    from models.inference import Predictor, prediction_from_probs

    torch.set_num_threads(a.threads)
    ls = read_classes(a.data)
    _, images, truths = load_split(a.data, a.split, prefixes=a.prefix.split(",") if a.prefix else None,
                                   limit=a.limit)
    K = len(ls.names)
    views = parse_views(a.views)
    rows = {}
    for m, (view, parts) in ((m, v) for m in a.models.split(",") for v in views):
        predictor = Predictor.load(m, a.device)
        predictor.logits(images[0], ls.names)   # warm-up (first-call allocations, BERT vectors)
        plain, shown, seconds = [], [], 0.0
        for img in images:   # one image's probabilities at a time (a split's would be ~8 MB an image)
            t0 = time.perf_counter()
            probs = view_logits(predictor, img, ls.names, parts).softmax(0)
            seconds += time.perf_counter() - t0
            plain.append(probs.argmax(0).numpy().astype(np.uint8))
            shown.append(prediction_from_probs(probs, img, predictor.refine).class_map)
        if len(views) > 1 or view != "1":
            m = f"{m} @ {view}"
        rows[m] = {"output_stride": predictor.model.output_stride,
                   "plain": iou_row(plain, truths, K, ls.ignore_index, ls.names),
                   "refined": {**iou_row(shown, truths, K, ls.ignore_index, ls.names),
                               **measures(shown, truths, ls.ignore_index, a.ops)},
                   "network_seconds_per_image": seconds / max(1, len(images))}
        print(json.dumps({m: {"plain_miou": rows[m]["plain"]["miou"], "pole": rows[m]["plain"]["per_class"].get("pole"),
                              **{k: v for k, v in rows[m]["refined"].items() if k != "per_class"}}}), flush=True)
    return {"mode": "compare", "split": a.split, "frames": len(truths), "threads": a.threads, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    o = sub.add_parser("oracle", help="the floor a perfect map at each stride leaves")
    o.add_argument("--strides", type=int, nargs="+", default=[8, 4, 2])
    o.add_argument("--every", type=int, default=1, help="every n-th frame of the split")
    c = sub.add_parser("compare", help="models side by side")
    c.add_argument("--models", required=True, help="comma-separated checkpoint folders")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    c.add_argument("--limit", type=int)
    c.add_argument("--prefix", help="only the split's frames of these drives (comma-separated, e.g. 0001TP)")
    c.add_argument("--views", default="1",
                   help="comma-separated test-time views of each model: input scales joined by '+', 'f' at the end "
                        "to add the mirrored image (default 1: the image as it is)")
    for p in (o, c):
        p.add_argument("--data", default=DATA)
        p.add_argument("--split", default="train")
        p.add_argument("--ops", action="store_true", help="also count the scripted labeller's operations")
        p.add_argument("--out", type=Path, help="write the report here (JSON)")
    a = ap.parse_args(argv)
    report = run_oracle(a) if a.mode == "oracle" else run_compare(a)
    text = json.dumps(report, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    if a.mode == "oracle":
        for k, v in report["rows"].items():
            print(k, {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items() if kk != "per_class"},
                  "pole", round(v["per_class"].get("pole", float("nan")), 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
