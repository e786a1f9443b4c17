"""The fine-tuning recipe: how a job turns corrected images into a new model.

A model-library module (no database): the job's parameters (`default_params`), the
training configuration they make, starting from a base model on a project's label
set, training, evaluating, the DDP weight check and the promotion rule. Running jobs
(queue, workers, storage, torchrun) lives in the `jobs` package:

    python -m jobs.worker --db URL --data-dir DIR          # runs queued jobs (the app starts one)

`python -m models.finetune ...` still works for old scripts: it says on stderr that
jobs moved and replaces itself with `python -m jobs.runner` and the same arguments
(os.execve; this library imports no job code). Where a job trains (``device``) is the
worker's and runner's setting, not part of the recipe: `train_config` and `fine_tune`
take it as an argument.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from .segmenter import Segmenter
# evaluate_model is models.train's (one owner); choose_blend and jobs.runner use it from here
from .train import SplitData, TrainConfig, evaluate_model, train_model

MIN_VAL_TO_PROMOTE = 5  # fewer val images say too little about a model to replace the active one


def default_params(**overrides) -> dict:
    """A job's recipe. The image encoder is frozen (steps twice as fast on a CPU, so more
    of them fit the time budget) and the loss is plain cross-entropy: class weights buy
    rare-class recall with extra wrong pixels, and wrong pixels are what a labeller
    corrects (tuned on the loop benchmark, BENCHMARKS.md, issue 5). From a strong base
    (issue 10) a job on a few images lowers val mIoU (thin classes fade) while it already
    cuts wrong pixels, so the job stays near its base: a lower rate (1e-3, was 6e-3), and
    the val split picks the blend base + a * (trained - base), the largest ``a`` of
    ``blend`` that keeps val mIoU (choose_blend). 2.5 minutes of training (was 3.5)
    leave room for those evaluations in a 3.5-minute job on a 2-core CPU. Such a job
    still loses thin and rare classes, which leaves more separate wrong regions than the
    base had (BENCHMARKS.md, "Where a first job's extra wrong regions come from").
    On a CPU a job trains in channels_last (about 25 % faster steps), so jobs on up to
    about 40 images stop at their 100 epochs before the 2.5 minutes; lifting that cap
    (400) cut wrong pixels on CamVid but found thin lines in 75 % more pieces on the
    thin-line domain, so it stays (BENCHMARKS.md, "Jobs train in channels_last").
    ``distill`` (the weight of models.train.distill_loss: learn from the starting model's
    predictions too) keeps them, but is off by default: 1.0, chosen on one job, cut the
    wrong regions of the loops (110% -> 103% and 117% -> 109% of no retraining) and gave
    back a third of the pixel gain from the shipped model (49% -> 64%).

    ``lr_new_words`` (issue 20, item 4; off by default): the rate of a job whose label set
    has words the model was never trained on (a new domain with its own classes), e.g.
    6e-3, the issue-5 rate, still with the blend as the guard. On a two-class thin-structure
    proxy a first job on 10 images learned far more at 6e-3 (val mIoU 0.712 against 0.628),
    but on a second proxy (four merged classes) it gave 9% more wrong regions for a little
    less wrong pixels, failing the check set before it ran (BENCHMARKS.md, "A second
    domain with its own words"), so it stays off."""
    params = {"epochs": 100, "max_minutes": 2.5, "batch_size": 4, "crop": [256, 320], "scale": [0.5, 1.75],
              "lr": 1e-3, "class_weight_power": 0.0, "freeze_blocks": 16,
              # keep the new model near its base: L2-SP weight (0 = off) and the blends
              # base + a * (trained - base) tried on the val split ([1.0] = off; choose_blend)
              "l2sp": 0.0, "blend": [1.0, 0.6, 0.3],
              # learn from the starting model's own predictions too (0 = off; distill_loss)
              "distill": 0.0,
              # the rate instead of "lr" when the label set has words the model never learned
              # (start_from's "added"; 0 = off, "lr" always): see the docstring
              "lr_new_words": 0.0}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params


def train_config(params: dict, device: str = "auto") -> TrainConfig:
    """The training configuration of a job's recipe ``params``, training on ``device``
    (the runner's setting: auto, cpu or cuda[:N])."""
    return TrainConfig(
        epochs=int(params["epochs"]), batch_size=int(params["batch_size"]), crop=tuple(params["crop"]),
        scale=tuple(params["scale"]), lr=float(params["lr"]), encoder_lr_mult=0.3, warmup_steps=20,
        class_weight_power=float(params["class_weight_power"]), device=device,
        max_minutes=params.get("max_minutes"), seed=int(params.get("seed", 0)),
        max_steps=int(params["max_steps"]) if params.get("max_steps") else None,
        freeze_blocks=int(params.get("freeze_blocks", 0)), l2sp=float(params.get("l2sp", 0.0)),
        distill=float(params.get("distill", 0.0)),
    )


def start_from(weights_dir: str, class_names: Sequence[str], colors, ignore_index: int
               ) -> tuple[Segmenter, list[str]]:
    """The base model set to a project's label set: (model, the project's class names its
    weights never learned: not among the words the model was first trained on, which a
    fine-tune keeps in ``config.trained_class_names``; a job trains them by name)."""
    model = Segmenter.from_pretrained(weights_dir)
    names = list(class_names)
    known = list(model.config.trained_class_names or model.config.class_names)
    added = [n for n in names if n not in known]
    model.config.trained_class_names = known
    model.config.class_names = names
    model.config.class_colors = [list(map(int, c)) for c in colors]
    model.config.ignore_index = ignore_index
    return model, added


def fine_tune(model: Segmenter, train: SplitData, params: dict, *, device: str = "auto",
              on_step: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
              show_progress: bool = False) -> None:
    """Train ``model`` in place with the job's recipe on ``device`` (DDP when a process
    group is up)."""
    train_model(model, train, None, train_config(params, device), out_dir=None, on_step=on_step,
                should_stop=should_stop, show_progress=show_progress)


def interpolate_state(base: dict[str, torch.Tensor], new: dict[str, torch.Tensor], alpha: float
                      ) -> dict[str, torch.Tensor]:
    """Weights ``alpha`` of the way from ``base`` to ``new`` (0: the base, 1: the new model;
    weight-space ensembling as in WiSE-FT). Integer buffers (BatchNorm's step count) and
    tensors the base lacks come from ``new``."""
    out = {}
    for k, v in new.items():
        b = base.get(k)
        if b is None or not v.is_floating_point():
            out[k] = v
        else:
            b = b.to(v.device, torch.float32)
            out[k] = (b + alpha * (v.float() - b)).to(v.dtype)
    return out


def choose_blend(model: Segmenter, base_state: dict[str, torch.Tensor], val: SplitData, names, ignore_index,
                 device, alphas: Sequence[float], base_miou: float | None = None
                 ) -> tuple[float, dict, list[tuple[float, float]]]:
    """Let the val split decide how far the job moves from its base: blends
    base + a * (trained - base) are tried from the largest ``a`` down, and ``model`` is set
    to the first whose val mIoU is not below ``base_miou`` (the furthest move that keeps
    the promotion rule); with no ``base_miou``, or when none passes, to the best tried.
    Returns (a, that blend's val metrics, [(a, val mIoU) tried])."""
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best, tried = None, []
    for a in sorted((float(x) for x in alphas), reverse=True):
        model.load_state_dict(interpolate_state(base_state, trained, a))
        m = evaluate_model(model, val, names, ignore_index, device)
        tried.append((a, m["miou"]))
        if base_miou is not None and m["miou"] >= base_miou:
            best = (a, m)
            break
        if best is None or m["miou"] > best[1]["miou"]:
            best = (a, m)
    model.load_state_dict(interpolate_state(base_state, trained, best[0]))
    return best[0], best[1], tried


def promotion(val_images: int, base_miou: float | None, new_miou: float | None) -> tuple[bool, str]:
    """(promote?, why): the new model replaces the active one when there are at least
    MIN_VAL_TO_PROMOTE val images and its val mIoU is not lower."""
    if new_miou is None:
        return False, "not promoted: no val images to compare on"
    if val_images < MIN_VAL_TO_PROMOTE:
        return False, f"not promoted: {val_images} val image(s), at least {MIN_VAL_TO_PROMOTE} needed"
    if base_miou is None or new_miou < base_miou:
        return False, "not promoted: val mIoU dropped"
    return True, "promoted"


def ranks_agree(model: Segmenter) -> bool:
    """Every DDP rank ends with the same weights and buffers (checked by an exact checksum)."""
    with torch.no_grad():
        total = torch.zeros(2, dtype=torch.float64)
        for i, t in enumerate(model.state_dict().values()):
            if t.is_floating_point():
                total[0] += t.double().sum().cpu()
                total[1] += (t.double().flatten()[: 1000] * (i + 1)).sum().cpu()
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)


RUNNER = "jobs.runner"   # the job entry point `python -m models.finetune` hands over to


def main(argv: list[str] | None = None) -> int:
    """Compatibility entry point: the job runner moved to `jobs.runner` (same flags).
    Says so on stderr (rank 0), then replaces this process with
    ``python -m jobs.runner ARGS`` (same pid, environment and torchrun rank variables);
    the package folder goes first on PYTHONPATH so `jobs` is found from any directory."""
    args = sys.argv[1:] if argv is None else list(argv)
    if int(os.environ.get("RANK", "0")) == 0:
        print("models.finetune: running jobs moved to the jobs package; this runs "
              "`python -m jobs.runner` with the same arguments (queued jobs: `python -m jobs.worker`)",
              file=sys.stderr, flush=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    os.execve(sys.executable, [sys.executable, "-m", RUNNER, *args], env)
    return 1   # not reached: execve returns only by raising


if __name__ == "__main__":
    sys.exit(main())
