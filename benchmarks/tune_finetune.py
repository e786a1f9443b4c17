"""One-shot proxy used to pick the fine-tuning job's recipe (BENCHMARKS.md, "Tuning").

    python benchmarks/tune_finetune.py --freeze 16 --cwp 0 --lr 6e-3 --bs 4 [--minutes 2.5]

Same data and order as `benchmarks.bench_loop` (the 0016E5 train images shuffled with
seed 0): the loop's base model is fine-tuned in this process on the first K images
for a fixed wall-time budget, then the correction effort is measured on images
60-79 (the loop's round 4) and mIoU / pixel accuracy on the val split. One run per
recipe is a few minutes on 2 CPU cores, against ~15 for the whole loop. Appends a
JSON line to --out.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_loop import correction_effort, labeller_order, read_pairs  # noqa: E402
from models.data import list_pairs, read_classes  # noqa: E402
from models.inference import Predictor, evaluate_arrays  # noqa: E402
from models.segmenter import Segmenter  # noqa: E402
from models.train import SplitData, TrainConfig, train_model  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", default="../shared/datasets/camvid")
ap.add_argument("--base", default="runs/loop/base")
ap.add_argument("--k", type=int, default=60, help="train on the first K shuffled 0016E5 images")
ap.add_argument("--minutes", type=float, default=2.5)
ap.add_argument("--crop", default="256x320")
ap.add_argument("--scale", default="0.5,1.75")
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--cwp", type=float, default=0.5, help="class weight power (0 = plain cross-entropy)")
ap.add_argument("--bs", type=int, default=8)
ap.add_argument("--freeze", type=int, default=0, help="encoder blocks frozen (16 = all)")
ap.add_argument("--novar", action="store_true", help="canonical class names only")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--out", default="runs/proxy/results.jsonl")
a = ap.parse_args()
torch.set_num_threads(a.threads)
labels = read_classes(a.data)
pool = labeller_order(a.data, "0016E5", seed=0)
train = pool[: a.k]
model = Segmenter.from_pretrained(a.base)
cfg = TrainConfig(epochs=10_000, batch_size=a.bs, crop=tuple(int(v) for v in a.crop.split("x")),
                  scale=tuple(float(v) for v in a.scale.split(",")), lr=a.lr, encoder_lr_mult=0.3,
                  warmup_steps=20, class_weight_power=a.cwp, wording_variety=not a.novar, device="cpu",
                  max_minutes=a.minutes, freeze_blocks=a.freeze)
steps = []
t0 = time.time()
train_model(model, SplitData([p[2] for p in train], [p[3] for p in train]), None, cfg,
            on_step=lambda info: steps.append(info["step"]), show_progress=False)
seconds = time.time() - t0
pred = Predictor(model, model.device, fuse=False)
effort = np.mean([correction_effort(pred.predict(p[2], labels.names).class_map, p[3], labels.ignore_index)
                  for p in pool[60:80]])
val = read_pairs(list_pairs(a.data, "val"))
m = evaluate_arrays(pred, [v[2] for v in val], [v[3] for v in val], labels.names, labels.ignore_index)
res = {**vars(a), "steps": steps[-1], "train_s": round(seconds), "effort": float(effort),
       "val_miou": round(m["miou"], 4), "val_pa": round(m["pixel_accuracy"], 4)}
print(json.dumps(res))
Path(a.out).parent.mkdir(parents=True, exist_ok=True)
with open(a.out, "a") as f:
    f.write(json.dumps(res) + "\n")
