"""Why a job leaves more wrong regions while it removes most wrong pixels (BENCHMARKS.md,
"Why a job leaves more wrong regions"; a diagnostic, nothing is chosen on it).

    python benchmarks/regions_by_shape.py [--base runs/loop/strong_A] [--drive 0001TP] [--k 40] \
        [--refine '[{}, {"keep": 0}]'] [--out FILE]

Base A (never trained on drive 0001TP) and one job with the default recipe
(``models.finetune.default_params``, blend 1.0) on the first ``--k`` frames of the drive in
the loop's seed-0 order (``bench_loop.labeller_order``); both models then predict the other
frames (maps refined as the app shows them, or with each ``--refine`` setting). Each wrong
region (>= 20 px, 8-connected, as the loops count them) is sorted by thickness (the largest
distance from its inside to its edge: sliver <= 1.5 px, thin <= 3 px, else blob), and each
of the job's regions is matched to the base region holding half its pixels or more: fixed
entirely, fixed in part and split into pieces, or new. The job is trained once and kept in
``--job-dir``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_loop import MIN_REGION_PIXELS, labeller_order  # noqa: E402
from models.data import read_classes  # noqa: E402
from models.finetune import default_params, train_config  # noqa: E402
from models.inference import Predictor  # noqa: E402
from models.refine import RefineSettings  # noqa: E402
from models.segmenter import Segmenter  # noqa: E402
from models.train import SplitData, train_model  # noqa: E402


def regions(pred: np.ndarray, truth: np.ndarray, ignore: int):
    """(labels, ids of the counted regions, thickness of every label)."""
    wrong = (truth != ignore) & (pred != truth)
    lab, m = ndimage.label(wrong, structure=np.ones((3, 3), bool))
    sizes = np.bincount(lab.ravel(), minlength=m + 1)
    ids = np.nonzero(sizes >= MIN_REGION_PIXELS)[0]
    ids = ids[ids > 0]
    thick = np.asarray(ndimage.maximum(ndimage.distance_transform_edt(wrong), lab, index=np.arange(m + 1)))
    return lab, ids, thick


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"))
    ap.add_argument("--base", default="runs/loop/strong_A")
    ap.add_argument("--drive", default="0001TP")
    ap.add_argument("--k", type=int, default=40, help="frames the job trains on; the rest are measured")
    ap.add_argument("--job-dir", default="/tmp/regions_by_shape_job")
    ap.add_argument("--refine", default="[{}]", help="JSON list of RefineSettings overrides to compare")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the report here (JSON)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    labels = read_classes(a.data)
    pool = labeller_order(a.data, a.drive, seed=0)
    job_dir = Path(a.job_dir)
    if not (job_dir / "config.json").exists():
        t = time.time()
        model = Segmenter.from_pretrained(a.base)
        train_model(model, SplitData([p[2] for p in pool[:a.k]], [p[3] for p in pool[:a.k]]), None,
                    train_config(default_params(), "cpu"), out_dir=None)
        model.save_pretrained(job_dir)
        print(f"job trained in {time.time() - t:.0f} s -> {job_dir}", flush=True)
    held = pool[a.k:]
    report = {"base": a.base, "drive": a.drive, "k": a.k, "frames": len(held), "rows": []}
    for over in json.loads(a.refine):
        rs = RefineSettings(**over)
        base = Predictor(Segmenter.from_pretrained(a.base), "cpu", refine=rs)
        job = Predictor(Segmenter.from_pretrained(job_dir), "cpu", refine=rs)
        tot = {k: 0.0 for k in ("base", "job", "base_sliver", "base_thin", "base_blob", "job_sliver", "job_thin",
                                 "job_blob", "fixed", "kept", "split_pieces", "new")}
        px = {"base": 0, "job": 0, "labelled": 0}
        for _, _, img, truth in held:
            maps = {"base": base.predict(img, labels.names).class_map, "job": job.predict(img, labels.names).class_map}
            found = {}
            for tag, pm in maps.items():
                lab, ids, thick = regions(pm, truth, labels.ignore_index)
                found[tag] = (lab, ids)
                tot[tag] += len(ids)
                th = thick[ids]
                tot[tag + "_sliver"] += int((th <= 1.5).sum())
                tot[tag + "_thin"] += int(((th > 1.5) & (th <= 3)).sum())
                tot[tag + "_blob"] += int((th > 3).sum())
                px[tag] += int(((truth != labels.ignore_index) & (pm != truth)).sum())
            px["labelled"] += int((truth != labels.ignore_index).sum())
            (lb, kb), (lj, kj) = found["base"], found["job"]
            children: dict[int, int] = {}
            for k in kj:
                under = lb[lj == k]
                inside = under[under > 0]
                if inside.size >= 0.5 * under.size:
                    parent = int(np.bincount(inside).argmax())
                    children[parent] = children.get(parent, 0) + 1
                else:
                    tot["new"] += 1
            for b in kb:
                c = children.get(int(b), 0)
                tot["fixed" if c == 0 else "kept"] += 1
                tot["split_pieces"] += max(0, c - 1)
        n = len(held)
        row = {"refine": over, **{k: round(v / n, 2) for k, v in tot.items()},
               "wrong_px_base_%": round(100 * px["base"] / px["labelled"], 2),
               "wrong_px_job_%": round(100 * px["job"] / px["labelled"], 2)}
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
