"""Cost of the edge-aware refinement (models.refine) in Predictor.predict on a 480x360
CamVid frame: predict() with the default RefineSettings and with radius 0, interleaved
so that both see the same load; median and p90 of --repeats calls each. refine_alone is
the guided filter and argmax; refined_classes what predict applies (filter, keep, small
unsure pieces merged).

    python -m benchmarks.bench_refine_time --repeats 30 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from models.data import list_pairs, load_image, read_classes
from models.inference import Predictor
from models.refine import RefineSettings, guided_refine, refined_classes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--model", default="weights/camvid")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = read_classes(a.data).names
    img = load_image(list_pairs(a.data, "val")[0][1])
    on = Predictor.load(a.model, "cpu")
    off = Predictor(on.trainable, "cpu", refine=RefineSettings(radius=0))
    probs = on.logits(img, names).softmax(0)
    for p in (on, off):
        p.predict(img, names)
    t = {"predict_refined": [], "predict_plain": [], "refine_alone": [], "refined_classes": []}
    for _ in range(a.repeats):
        for key, f in (("predict_refined", lambda: on.predict(img, names)),
                       ("predict_plain", lambda: off.predict(img, names)),
                       ("refine_alone", lambda: guided_refine(probs, img, on.refine).argmax(0)),
                       # what predict applies: the filter, keep, small unsure pieces merged
                       ("refined_classes", lambda: refined_classes(probs, img, on.refine))):
            t0 = time.perf_counter()
            f()
            t[key].append(1000 * (time.perf_counter() - t0))
    res = {k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))} for k, v in t.items()}
    res["load_average"] = os.getloadavg()
    res["threads"] = torch.get_num_threads()
    res["settings"] = on.refine.to_dict()
    print(json.dumps(res, indent=1))
    if a.out:
        open(a.out, "w").write(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
