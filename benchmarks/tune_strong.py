"""Proxy used to choose the job recipe from a strong base on a drive it never saw (issue 10).

    python benchmarks/tune_strong.py --base runs/loop/strong_B --lr 1e-3 [--l2sp 0 --minutes 2.5]

The recipe is CHOSEN here on 0016E5 with base B (trained on 0001TP and 0006R0) and
REPORTED elsewhere (benchmarks.bench_loop over 0001TP from base A). As in the loop with
--val auto: the 0016E5 train images the app's rule puts in val (one in five by hash) are
the project's val images (the first --val-n of them), the others the labeller's pool,
shuffled with seed 0. One job's worth of training in this process (the recipe of
models.finetune on the first --k pool images for --minutes), then for each blend
base + a * (trained - base) in --blend: val mIoU (what promotion and the job's own choice
of a see) and the effort (wrong-pixel share and wrong regions >= 20 px) on the next
--next pool images, against the base's. Appends one JSON line to --out.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models import finetune  # noqa: E402
from common.splits import auto_split_file  # noqa: E402
from benchmarks.bench_loop import correction_effort, labeller_order, read_pairs, wrong_regions  # noqa: E402
from models.data import list_pairs, read_classes  # noqa: E402
from models.inference import Predictor, evaluate_arrays  # noqa: E402
from models.train import SplitData  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", default="../shared/datasets/camvid")
ap.add_argument("--base", default="runs/loop/strong_B")
ap.add_argument("--sequence", default="0016E5")
ap.add_argument("--k", type=int, default=11, help="train on the first K pool images (a round)")
ap.add_argument("--next", type=int, default=22, help="effort on the following N pool images")
ap.add_argument("--val-n", type=int, default=20)
ap.add_argument("--minutes", type=float, default=2.5)
ap.add_argument("--lr", type=float, default=6e-3)
ap.add_argument("--l2sp", type=float, default=0.0)
ap.add_argument("--bs", type=int, default=4)
ap.add_argument("--cwp", type=float, default=0.0, help="class weight power (0 = plain cross-entropy)")
ap.add_argument("--blend", default="1,0.5")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tag", default="")
ap.add_argument("--out", default="runs/proxy/strong.jsonl")
a = ap.parse_args()
torch.set_num_threads(a.threads)
labels = read_classes(a.data)
names, ignore = labels.names, labels.ignore_index
pool = labeller_order(a.data, a.sequence, seed=0, split="train")
val = read_pairs([p for p in list_pairs(a.data, "train", [a.sequence]) if auto_split_file(p[1]) == "val"])[: a.val_n]
train, nxt = pool[: a.k], pool[a.k: a.k + a.next]
vimgs, vlbls = [v[2] for v in val], [v[3] for v in val]


def measure(pred):
    maps = [pred.predict(p[2], names).class_map for p in nxt]
    v = evaluate_arrays(pred, vimgs, vlbls, names, ignore)
    return {"val_miou": round(v["miou"], 4), "val_pa": round(v["pixel_accuracy"], 4),
            "val_iou": {k: None if x is None else round(x, 3) for k, x in v["per_class_iou"].items()},
            "effort": float(np.mean([correction_effort(m, p[3], ignore) for m, p in zip(maps, nxt)])),
            "regions": float(np.mean([wrong_regions(m, p[3], ignore) for m, p in zip(maps, nxt)]))}


model, _ = finetune.start_from(a.base, names, labels.colors, ignore)
base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
base = measure(Predictor(model, "cpu"))
params = finetune.default_params(max_minutes=a.minutes, epochs=10_000, lr=a.lr, l2sp=a.l2sp, batch_size=a.bs,
                                 class_weight_power=a.cwp)
steps = []
t0 = time.time()
finetune.fine_tune(model, SplitData([p[2] for p in train], [p[3] for p in train]), params, device="cpu",
                   on_step=lambda info: steps.append(info["step"]))
seconds = time.time() - t0
trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
blends = {}
for alpha in [float(x) for x in a.blend.split(",")]:
    model.load_state_dict(finetune.interpolate_state(base_state, trained, alpha))
    blends[str(alpha)] = measure(Predictor(model, "cpu"))
chosen = max(blends, key=lambda k: blends[k]["val_miou"])
res = {"tag": a.tag, "base": a.base, "k": a.k, "lr": a.lr, "l2sp": a.l2sp, "cwp": a.cwp, "bs": a.bs, "minutes": a.minutes,
       "threads": a.threads, "steps": steps[-1] if steps else 0, "train_s": round(seconds), "base_measure": base,
       "blends": blends, "val_chooses": chosen,
       "effort_over_base_chosen": blends[chosen]["effort"] / base["effort"],
       "regions_over_base_chosen": blends[chosen]["regions"] / base["regions"] if base["regions"] else None}
print(json.dumps(res))
Path(a.out).parent.mkdir(parents=True, exist_ok=True)
with open(a.out, "a") as f:
    f.write(json.dumps(res) + "\n")
