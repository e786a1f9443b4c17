"""Where a job's extra wrong regions come from (issue 10): the demo's first round with a
given job recipe, then the base and the job's model on CamVid val images outside the
demo, wrong regions (>= 20 px) counted by the class the labeller would paint there (the
region's majority true class).

    python benchmarks/regions_by_class.py [--params '{"class_weight_power": 0.5}'] [--limit 40]

Used to choose a job recipe that does not add wrong regions; the choice is then reported
on the loop over another drive (benchmarks.bench_loop, BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_demo_round import demo_truth, label_queue, spaced  # noqa: E402
from jobs import queue, worker  # noqa: E402
from benchmarks.bench_loop import MIN_REGION_PIXELS, correction_effort  # noqa: E402
from models.data import load_image, load_label  # noqa: E402
from models.finetune import interpolate_state  # noqa: E402
from models.inference import Predictor  # noqa: E402
from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio  # noqa: E402
from storage import Store  # noqa: E402


def regions(pred: np.ndarray, truth: np.ndarray, ignore: int, n: int) -> np.ndarray:
    """Wrong regions of at least MIN_REGION_PIXELS, counted per majority true class."""
    wrong = (truth != ignore) & (pred != truth)
    lab, k = ndimage.label(wrong, structure=np.ones((3, 3), bool))
    out = np.zeros(n, int)
    if k == 0:
        return out
    sizes = np.bincount(lab.ravel())
    for r in np.flatnonzero(sizes[1:] >= MIN_REGION_PIXELS) + 1:
        out[np.bincount(truth[lab == r], minlength=n).argmax()] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--params", default="{}")
    ap.add_argument("--blends", default="", help="also blends base + a * (job - base), e.g. 0.6,0.3")
    ap.add_argument("--limit", type=int, default=40, help="CamVid val images outside the demo, evenly spaced")
    a = ap.parse_args()
    data = Path(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        st = Studio(Store(data_dir=Path(tmp) / "data"))
        p = st.ensure_demo()
        names, ignore = p.class_names, p.ignore_index
        base = st.store.active_model_version(p.id)
        label_queue(st, demo_truth(data, DEMO_DIR), 1)
        queue.enqueue(st.store, DEMO_PROJECT, json.loads(a.params))
        job = worker.run_one(st.store, project=DEMO_PROJECT)
        new = st.store.get_model_version(job.result_version_id)
        shipped = {f.name for f in DEMO_DIR.rglob("*.jpg")}
        val = sorted(f for f in (data / "images" / "val").glob("*.jpg") if f.name not in shipped)
        val = spaced(val, a.limit, 0)
        out = {"params": json.loads(a.params), "run": {"val": [job.metrics["base_val_miou"], job.metrics["val_miou"]],
                                                      "blend": job.metrics["blend"]["alpha"],
                                                      "promoted": job.metrics["promoted"]}, "images": len(val)}
        models = {"base": Predictor.load(base.weights_dir, "cpu"), "job": Predictor.load(new.weights_dir, "cpu")}
        for alpha in [float(x) for x in a.blends.split(",") if x]:
            blended = copy.deepcopy(models["job"].trainable)
            blended.load_state_dict(interpolate_state(models["base"].trainable.state_dict(),
                                                      models["job"].trainable.state_dict(), alpha))
            models[f"blend {alpha}"] = Predictor(blended, "cpu")
        for tag, pred in models.items():
            per_class, pixels = np.zeros(len(names) + 1, int), []
            for f in val:
                gt = load_label(data / "labels" / "val" / f"{f.stem}.png")
                cm = pred.predict(load_image(f), names).class_map
                per_class += regions(cm, gt, ignore, len(names) + 1)
                pixels.append(correction_effort(cm, gt, ignore))
            out[tag] = {"wrong_pixels": float(np.mean(pixels)), "regions_per_image": per_class.sum() / len(val),
                        "regions_by_true_class": dict(zip(names, per_class[:len(names)].tolist()))}
        st.store.close()
    print(json.dumps(out, indent=1))
    for tag in models:
        print(f"{tag}: wrong pixels {out[tag]['wrong_pixels']:.4f}, wrong regions / image {out[tag]['regions_per_image']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
