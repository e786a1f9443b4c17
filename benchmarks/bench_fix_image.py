"""End-to-end effort to fix one image (issue 18): the scripted labeller
(``benchmarks/scripted_labeller.py``: fills and brush strokes to 98% pixel accuracy)
with and without click-to-object, on the same CamVid images, from the shipped model's
prediction as the app shows it (refined).

    python -m benchmarks.bench_fix_image --split val --every 2 [--out runs/fix_image.json]

Per image: operations without the O tool (fill + brush), with it (+ object clicks,
at most ``--object-clicks`` per object), and each set's simulated machine time: the
operations times their measured latencies in the page (``--fill-ms``, ``--brush-ms``,
``--object-ms``; BENCHMARKS.md). The labeller's own time per operation (aiming,
deciding) is not modelled: the operation counts are the measure of that.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.scripted_labeller import scripted_detail  # noqa: E402
from models.click_head import HeadFeatures, head_from_clicks, load_head  # noqa: E402
from models.click_object import ObjectFeatures, ObjectSettings, object_from_clicks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    import torch

    from models.adapt import embed_image, word_adapter
    from models.inference import Predictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "camvid")
    ap.add_argument("--model", default=str(ROOT / "weights" / "camvid"))
    ap.add_argument("--head", type=Path, default=ROOT / "weights" / "click_head")
    ap.add_argument("--tool", default="head", choices=("head", "grow"), help="the O tool's method")
    ap.add_argument("--split", default="val", choices=("train", "val"))
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--object-clicks", type=int, default=5)
    ap.add_argument("--fill-ms", type=float, default=6.2, help="a fill's latency in the page (median)")
    ap.add_argument("--brush-ms", type=float, default=7.7, help="a brush stroke's latency in the page (median)")
    ap.add_argument("--object-ms", type=float, required=True, help="an O click's latency in the page (median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    meta = json.loads((a.data / "classes.json").read_text())
    names = [c["name"] for c in meta["classes"]]
    ignore = int(meta["ignore_index"])
    pred = Predictor.load(a.model, device="cpu")
    adapter = word_adapter(pred, names)
    head = load_head(a.head) if a.tool == "head" else None
    if a.tool == "head" and head is None:
        raise SystemExit(f"no click head in {a.head}")
    rows = []
    t0 = time.perf_counter()
    for f in sorted((a.data / "images" / a.split).glob("*"))[::a.every]:
        image = np.asarray(Image.open(f).convert("RGB"))
        truth = np.asarray(Image.open(a.data / "labels" / a.split / (f.stem + ".png")))
        start = pred.predict(image, names).class_map
        feat = ObjectFeatures.from_embeddings(embed_image(pred, image, names, with_base_map=False), adapter,
                                              image=image)
        states: dict = {}
        if head is not None:
            hf = HeadFeatures(head, image, feat.grid.reshape(feat.e, feat.h, feat.w),
                              feat.probs.reshape(-1, feat.h, feat.w))

            def tool(clicks, hf=hf, states=states):
                return head_from_clicks(hf, clicks, states)
        else:
            def tool(clicks, feat=feat, states=states):
                return object_from_clicks(feat, clicks, ObjectSettings(), states)
        plain = scripted_detail(start, truth, ignore)
        with_o = scripted_detail(start, truth, ignore, object_tool=tool, object_clicks=a.object_clicks)
        rows.append({"image": f.name, "plain": plain, "with_object": with_o})
        print(f.name, plain["ops"], with_o["ops"], flush=True)

    def ms(d):
        return d["fill"] * a.fill_ms + d["brush"] * a.brush_ms + d["object"] * a.object_ms

    def tot(key):
        ds = [r[key] for r in rows]
        return {"ops": sum(d["ops"] for d in ds), "fill": sum(d["fill"] for d in ds),
                "brush": sum(d["brush"] for d in ds), "object_clicks": sum(d["object"] for d in ds),
                "objects": sum(d["objects"] for d in ds), "ops_per_image": round(np.mean([d["ops"] for d in ds]), 2),
                "machine_ms_per_image": round(float(np.mean([ms(d) for d in ds])), 1),
                "reached": sum(d["reached"] for d in ds)}
    report = {"split": a.split, "every": a.every, "images": len(rows), "tool": a.tool,
              "object_clicks": a.object_clicks, "latency_ms": {"fill": a.fill_ms, "brush": a.brush_ms,
                                                                 "object": a.object_ms},
              "plain": tot("plain"), "with_object": tot("with_object"),
              "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
