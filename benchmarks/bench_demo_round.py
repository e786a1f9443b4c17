"""One round of the loop in the first-start demo, as a labeller does it (issue 10).

    python benchmarks/bench_demo_round.py [--demo segui/demo | --camvid-offset K] [--label 1]
        [--data ../shared/datasets/camvid] [--out benchmarks/results/cpu_demo_round.json]

A fresh data folder gets the demo project (``Studio.ensure_demo``: the shipped model,
the images to label, the images already labelled with their automatic split). Then,
through the same functions the screens call:

1. the labeller opens the queue's first image(s) (most uncertain first), corrects the
   predicted mask to the ground truth and submits (the split is set automatically);
2. *Fine-tune now* queues a job with the default recipe, and a worker runs it
   (``jobs.worker.run_one``, the app's local worker path);
3. after the job the queue is re-predicted with the active model
   (``Studio.refresh_predictions``);
4. the images still to label are scored before and after: the share of wrong pixels
   and the number of wrong regions of at least 20 px (``benchmarks.bench_loop``).

The ground truth of the demo images comes from CamVid val (``--data``). With
``--camvid-offset K`` the demo folder is built from other CamVid val images by the same
rule as the shipped one (6 images the automatic split puts in val, 4 in train, already
labelled; 4 train images to label; evenly spaced, shifted by K) to check that the
shipped demo is not a lucky pick.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.splits import auto_split_file  # noqa: E402
from jobs import worker  # noqa: E402
from benchmarks.bench_loop import correction_effort, wrong_regions  # noqa: E402
from models.data import load_label  # noqa: E402
from segui import finetune_panel  # noqa: E402
from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio  # noqa: E402
from storage import Store  # noqa: E402

N_VAL, N_TRAIN, N_LABEL = 6, 4, 4   # the shipped demo's make-up (segui/demo)


def spaced(items: list, n: int, offset: int) -> list:
    """``n`` items evenly spaced over ``items``, shifted by ``offset`` places."""
    step = len(items) / n
    return [items[(int(i * step) + offset) % len(items)] for i in range(n)]


def build_demo(data: Path, out: Path, offset: int, exclude: set[str], n_train: int = N_TRAIN) -> Path:
    """A demo folder like segui/demo from CamVid val images (none of ``exclude``):
    ``n_train`` of the labelled images in train."""
    names = sorted(p for p in (data / "images" / "val").glob("*.jpg") if p.name not in exclude)
    val = [p for p in names if auto_split_file(p) == "val"]
    train = [p for p in names if auto_split_file(p) == "train"]
    picked = spaced(train, n_train + N_LABEL, offset)
    to_label = spaced(picked, N_LABEL, 0)
    (out / "labelled").mkdir(parents=True)
    shutil.copy(DEMO_DIR / "classes.json", out)
    for p in spaced(val, N_VAL, offset) + [p for p in picked if p not in to_label]:
        shutil.copy(p, out / "labelled" / p.name)
        shutil.copy(data / "labels" / "val" / f"{p.stem}.png", out / "labelled" / f"{p.stem}.png")
    for p in to_label:
        shutil.copy(p, out / p.name)
    return out


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def demo_truth(data: Path, demo: Path) -> dict[str, np.ndarray]:
    """Ground truth of every demo image (CamVid val labels), by file name."""
    return {f.name: load_label(data / "labels" / "val" / f"{f.stem}.png") for f in demo.rglob("*.jpg")}


def label_queue(st: Studio, truth: dict[str, np.ndarray], n: int) -> list[dict]:
    """The labeller, ``n`` times: open the queue's first image, correct its mask to the
    ground truth and submit it (as the Submit button does: the split is set then)."""
    done = []
    for _ in range(n):
        ready = st.prepare(st.next_image(DEMO_PROJECT))
        res = st.save_edits(ready.loaded, truth[ready.loaded.filename], "demo user", "submitted")
        done.append({"image": ready.loaded.filename, "revision": res.revision, "split": ready.loaded.split})
    st.wait_idle(600)
    return done


def score(st: Studio, project, truth: dict[str, np.ndarray], ignore: int) -> dict:
    """Wrong pixels and wrong regions of the active model's masks on the images still to label."""
    mv = st.model_version(st.store.get_project(project).id)
    rows = {}
    for im in st.store.list_images(project, status="unlabelled"):
        pred = st.store.get_prediction(im.id, mv.id)
        gt = truth[im.filename]
        rows[im.filename] = {"wrong_pixels": correction_effort(pred.class_map, gt, ignore),
                             "wrong_regions": wrong_regions(pred.class_map, gt, ignore)}
    return {"images": rows,
            "wrong_pixels": float(np.mean([r["wrong_pixels"] for r in rows.values()])),
            "wrong_regions": int(sum(r["wrong_regions"] for r in rows.values()))}


def run(args) -> dict:
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(args.demo)
        if args.camvid_offset is not None:
            shipped = {p.name for p in DEMO_DIR.rglob("*.jpg")}
            demo = build_demo(data, Path(tmp) / "demo", args.camvid_offset, shipped, args.n_train)
        st = Studio(Store(data_dir=Path(tmp) / "data"))
        p = st.ensure_demo(demo)
        ignore = p.ignore_index
        truth = demo_truth(data, demo)
        result = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
                  "demo": _shown(demo) if args.camvid_offset is None else f"CamVid val, offset {args.camvid_offset}",
                  "labelled_by_demo": st.split_counts(p.id)}
        result["before"] = score(st, p.id, truth, ignore)
        result["labelled_by_user"] = label_queue(st, truth, args.label)
        result["splits_at_job_start"] = st.split_counts(p.id)
        result["readiness"] = st.promotion_readiness(p.id)
        finetune_panel.start(st.store, DEMO_PROJECT, None, args.minutes)
        t0 = time.monotonic()
        job = worker.run_one(st.store, project=DEMO_PROJECT)
        result["job"] = {"id": job.id, "status": job.status, "seconds": round(time.monotonic() - t0, 1),
                         "promoted": bool(job.metrics.get("promoted")),
                         "base_val_miou": job.metrics.get("base_val_miou"), "val_miou": job.metrics.get("val_miou"),
                         "blend": job.metrics.get("blend"), "status_line": finetune_panel.status(st.store, DEMO_PROJECT)[0]}
        result["refreshed"] = st.refresh_predictions(p.id)
        st.wait_idle(600)
        # after the round: the same images (those the user did not label) with the active model
        after = score(st, p.id, truth, ignore)
        same = set(after["images"])
        before = {k: v for k, v in result["before"]["images"].items() if k in same}
        result["before_same_images"] = {
            "wrong_pixels": float(np.mean([r["wrong_pixels"] for r in before.values()])),
            "wrong_regions": int(sum(r["wrong_regions"] for r in before.values()))}
        result["after"] = after
        st.store.close()
    b, a = result["before_same_images"], result["after"]
    result["wrong_pixels_after_over_before"] = a["wrong_pixels"] / b["wrong_pixels"]
    result["wrong_regions_after_over_before"] = a["wrong_regions"] / max(b["wrong_regions"], 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--demo", default=str(DEMO_DIR), help="the demo folder (default: the shipped one)")
    ap.add_argument("--camvid-offset", type=int, default=None,
                    help="build the demo folder from other CamVid val images, shifted by this many places")
    ap.add_argument("--n-train", type=int, default=N_TRAIN,
                    help="with --camvid-offset: how many of the labelled images are train images")
    ap.add_argument("--label", type=int, default=1, help="images the labeller corrects and submits")
    ap.add_argument("--minutes", type=float, default=None, help="job time budget (default: the job default)")
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    args = ap.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
