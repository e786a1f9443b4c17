"""Train the segmenter on a dataset folder (CamVid layout).

    python -m models.train --data ../shared/datasets/camvid --out runs/camvid --epochs 60

Augmentation (scale, crop, flip, colour), varied class wordings, per-epoch val mIoU,
the best checkpoint kept (config.json + model.safetensors, metrics inside), and
history.json beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .data import DatasetError, LabelSet, augment, balanced_class_weights, load_split, read_classes
from .inference import Predictor, evaluate_arrays, pick_device
from .segmenter import Segmenter, SegmenterConfig
from .wordings import synonyms_for


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 8
    crop: tuple[int, int] = (288, 384)  # (height, width)
    scale: tuple[float, float] = (0.5, 1.5)
    lr: float = 2e-3
    encoder_lr_mult: float = 0.3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    class_weight_power: float = 0.5  # 0 = no class weights
    wording_variety: bool = True
    eval_every: int = 1
    seed: int = 0
    device: str = "auto"
    save_dtype: str = "float32"
    max_minutes: float | None = None  # stop (after the running epoch) past this wall time
    max_steps: int | None = None  # stop after this many steps, the schedule annealing over them (a budget
                                  # that does not depend on the machine's load: benchmarks on a shared CPU)
    freeze_blocks: int = 0  # freeze the image encoder's stem and its first N blocks (faster steps)
    l2sp: float = 0.0  # L2-SP: weight of sum((w - w_start)^2) over the trained weights (keeps a fine-tune near its base)
    distill: float = 0.0  # weight of distill_loss toward the starting model's predictions (0 = off)
    lovasz: float = 0.0  # weight of lovasz_softmax_loss (a per-class IoU surrogate) added to the cross-entropy
    # model and batches in channels_last memory while training: the same arithmetic, steps ~25 % faster on a
    # 2-core CPU (BENCHMARKS.md, "Jobs train in channels_last"); None = on a CPU only (not measured on a GPU)
    channels_last: bool | None = None


@dataclass
class SplitData:
    images: list[np.ndarray]  # (H, W, 3) uint8
    labels: list[np.ndarray]  # (H, W) uint8
    names: list[str] = field(default_factory=list)


def remove_classes(label_set: LabelSet, labels: list[np.ndarray], remove: list[str]) -> tuple[LabelSet, list[np.ndarray]]:
    """Drop classes from the label set: their pixels become void, later indices shift down."""
    unknown = [n for n in remove if n not in label_set.names]
    if unknown:
        raise ValueError(f"cannot remove unknown classes {unknown}; the label set is {label_set.names}")
    keep = [i for i, n in enumerate(label_set.names) if n not in remove]
    lut = np.full(256, label_set.ignore_index, dtype=np.uint8)
    lut[keep] = np.arange(len(keep), dtype=np.uint8)
    new = LabelSet([label_set.names[i] for i in keep], [label_set.colors[i] for i in keep], label_set.ignore_index)
    return new, [lut[lbl] for lbl in labels]


def _distributed() -> tuple[bool, int, int]:
    on = dist.is_available() and dist.is_initialized()
    return on, (dist.get_rank() if on else 0), (dist.get_world_size() if on else 1)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on one (so all ranks stop at the same step)."""
    on, _, _ = _distributed()
    if not on:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warm-up, then cosine decay over `progress` in [0, 1]."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def evaluate_model(model: Segmenter, data: SplitData, class_names: list[str], ignore_index: int,
                   device: str | torch.device | None = None) -> dict:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on ``data``. Without ``device``:
    the model being trained, as it is (on its device, unfused, its train/eval mode kept;
    the per-epoch val). With one: a finished model, moved there in eval mode and
    evaluated with BatchNorm fused, as the app predicts (a job's base and new model,
    `models.finetune`)."""
    if device is not None:
        return evaluate_arrays(Predictor(model.eval(), device), data.images, data.labels, class_names, ignore_index)
    was_training = model.training
    result = evaluate_arrays(Predictor(model, model.device, fuse=False), data.images, data.labels,
                             class_names, ignore_index)
    model.train(was_training)
    return result


def l2sp_penalty(params: list[torch.nn.Parameter], anchors: list[torch.Tensor]) -> torch.Tensor:
    """L2-SP (Li et al. 2018): squared distance of the trained weights from where they
    started, summed over all of them; added to the loss times TrainConfig.l2sp."""
    return sum(((p - a) ** 2).sum() for p, a in zip(params, anchors))


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel KL(teacher || model) of the class distributions, (B, K, H, W) each:
    zero where the model predicts as its teacher does. A job's teacher is the model it
    started from, so what the base knew about classes that the few new labels show
    little of (thin and rare ones) is not forgotten (learning without forgetting)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    log_q = torch.log_softmax(teacher_logits.float(), dim=1)
    return (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()


def lovasz_softmax_loss(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Lovasz-softmax (Berman, Triki and Blaschko, CVPR 2018): the convex surrogate of 1 - IoU,
    averaged over the classes present in `labels`. probs: (B, K, H, W) softmax output;
    labels: (B, H, W), ignore_index = void. For one-hot probs it equals the mean of 1 - IoU
    over the present classes, so small classes weigh as much as large ones."""
    K = probs.shape[1]
    keep = labels.reshape(-1) != ignore_index
    p = probs.permute(0, 2, 3, 1).reshape(-1, K)[keep].float()  # (N, K)
    y = labels.reshape(-1)[keep]
    losses = []
    for c in range(K):
        fg = (y == c).float()
        if fg.sum() == 0:
            continue
        errors = (fg - p[:, c]).abs()
        errors, order = torch.sort(errors, descending=True)
        fg = fg[order]
        total = fg.sum()
        jaccard = 1.0 - (total - fg.cumsum(0)) / (total + (1.0 - fg).cumsum(0))
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])  # the Lovasz extension's gradient
        losses.append(torch.dot(errors, grad))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


def freeze_encoder(model: Segmenter, blocks: int) -> list[torch.nn.Parameter]:
    """Stop training the encoder's stem and first `blocks` blocks (all of it when
    blocks >= its block count): no backward pass through the high-resolution layers."""
    if blocks <= 0:
        return []
    enc = model.image_encoder
    modules = [enc._conv_stem, enc._bn0, *enc._blocks[:blocks]]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    return params


def train_model(
    model: Segmenter,
    train: SplitData,
    val: SplitData | None,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    show_progress: bool = True,
) -> dict:
    """Plain training loop. Saves the best checkpoint (by val mIoU, or the last one with
    no val set) to out_dir. Returns {"best": metrics, "history": [...], "stopped": bool}.

    Under torch.distributed (torchrun) each rank trains on its shard of `train` with
    DistributedDataParallel; pass val / out_dir on rank 0 only. Ranks end with
    identical weights and BatchNorm statistics."""
    if not train.images:
        raise DatasetError("no training images: nothing to train on")
    ddp, rank, world = _distributed()
    rng = random.Random(cfg.seed)  # same on every rank: batch order, wordings
    aug_rng = random.Random(cfg.seed + 7919 * rank)  # augmentation differs per rank
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device).train()
    channels_last = device.type == "cpu" if cfg.channels_last is None else cfg.channels_last
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory)
    frozen = freeze_encoder(model, cfg.freeze_blocks)  # before DDP, which registers the trained parameters
    teacher = None
    if cfg.distill > 0:  # the starting model, fixed: distill_loss keeps the new one near its predictions
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    mc = model.config
    names, ignore = list(mc.class_names), mc.ignore_index
    K = len(names)
    weights = None
    mc.class_weights = None  # the config records the weights this run trained with (none, or these)
    if cfg.class_weight_power > 0:
        mc.class_weights = balanced_class_weights(train.labels, K, cfg.class_weight_power)
        weights = torch.tensor(mc.class_weights, device=device)
    synonyms = synonyms_for(names) if cfg.wording_variety else [[n] for n in names]
    canonical = model.class_embeddings(names)

    enc_params = [p for p in model.image_encoder.parameters() if p.requires_grad]
    enc_ids = {id(p) for p in enc_params}
    other = [p for p in model.parameters() if id(p) not in enc_ids and p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": cfg.lr * cfg.encoder_lr_mult}, {"params": other, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    trained = enc_params + other
    anchors = [p.detach().clone() for p in trained] if cfg.l2sp > 0 else None
    # images stay uint8 on the device; augmentation runs there too
    imgs = [torch.from_numpy(i).permute(2, 0, 1).contiguous().to(device) for i in train.images]
    lbls = [torch.from_numpy(l.astype(np.int64)).to(device) for l in train.labels]
    n = len(imgs)
    per_rank = max(1, n // world)
    bs = min(cfg.batch_size, per_rank)
    steps_per_epoch = max(1, per_rank // bs)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, int(cfg.max_steps))
    history, best, step, stopped, spent = [], None, 0, False, False
    start = time.time()
    amp = device.type == "cuda"
    for epoch in range(1, cfg.epochs + 1):
        order = list(range(n))
        rng.shuffle(order)
        order = order[rank::world][:per_rank]
        # disable=None: no bar when stderr is not a terminal (a log, a pipe), only the epoch lines
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=None if show_progress else True, leave=False)
        losses = []
        for b in bar:
            idx = order[b * bs : (b + 1) * bs]
            pairs = [augment(imgs[i].float().div(255), lbls[i], cfg.crop, cfg.scale, ignore, aug_rng) for i in idx]
            x = torch.stack([p[0] for p in pairs]).contiguous(memory_format=memory)
            y = torch.stack([p[1] for p in pairs])
            bert = model.text_encoder.random_wording_vectors(synonyms, rng) if cfg.wording_variety else canonical
            # progress by steps, or by wall time when a time budget is set (whichever is further),
            # so the schedule anneals fully within --max-minutes
            progress = step / total
            if cfg.max_minutes:
                progress = max(progress, (time.time() - start) / 60 / cfg.max_minutes)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * lr_factor(step, min(cfg.warmup_steps, total // 5 + 1), progress)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = net(x, labels=y, bert_vectors=bert.to(device), class_weights=weights)
            loss = out.loss
            if teacher is not None:
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    taught = teacher(x, bert_vectors=bert.to(device)).logits
                loss = loss + cfg.distill * distill_loss(out.logits, taught)
            if cfg.lovasz > 0:  # on every second pixel each way: a quarter of the sorting, thin parts still seen
                loss = loss + cfg.lovasz * lovasz_softmax_loss(
                    out.logits[:, :, ::2, ::2].float().softmax(1), y[:, ::2, ::2], ignore)
            if anchors is not None:
                loss = loss + cfg.l2sp * l2sp_penalty(trained, anchors)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            losses.append(out.loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if on_step:
                on_step({"epoch": epoch, "step": step, "total_steps": total, "loss": losses[-1]})
            if _any_rank(bool(should_stop and should_stop()), device):
                stopped = True
                break
            if cfg.max_steps and step >= cfg.max_steps:
                spent = True
                break
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "minutes": (time.time() - start) / 60}
        last_epoch = _any_rank(stopped or spent or epoch == cfg.epochs or (
            cfg.max_minutes is not None and record["minutes"] >= cfg.max_minutes
        ), device)
        if last_epoch and ddp:  # BatchNorm statistics are per rank: take rank 0's everywhere
            for buf in model.buffers():
                dist.broadcast(buf, 0)
        if val is not None and val.images and (epoch % cfg.eval_every == 0 or last_epoch):
            record.update(evaluate_model(model, val, names, ignore))
        history.append(record)
        if show_progress:
            msg = f"epoch {epoch}: loss {record['loss']:.4f}"
            if "miou" in record:
                msg += f", val mIoU {record['miou']:.4f}, pixel acc {record['pixel_accuracy']:.4f}"
            tqdm.write(msg + f" ({record['minutes']:.1f} min)")
        improved = "miou" in record and (best is None or record["miou"] > best["miou"])
        if improved or (val is None and last_epoch):
            best = record
            if out_dir is not None:
                mc.metrics = {"val_" + k: v for k, v in record.items() if k not in ("epoch", "minutes", "loss")}
                mc.metrics.update(epoch=epoch, minutes=record["minutes"])
                model.save_pretrained(out_dir, dtype=getattr(torch, cfg.save_dtype))
        if last_epoch:
            break
    for p in frozen:
        p.requires_grad_(True)
    model.to(memory_format=torch.contiguous_format)  # as it came: callers evaluate, blend and save it
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "history.json").write_text(json.dumps({"config": asdict(cfg), "history": history}, indent=1))
    return {"best": best, "history": history, "stopped": stopped}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", default="288x384", help="HxW training crop")
    ap.add_argument("--scale", default="0.5,1.5", help="random scale range")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--class-weight-power", type=float, default=0.5, help="0 disables class weights")
    ap.add_argument("--no-wording-variety", action="store_true", help="train on the canonical names only")
    ap.add_argument("--train-prefixes", help="comma-separated file-name prefixes to train on (e.g. 0001TP,0006R0)")
    ap.add_argument("--remove-classes", help="comma-separated classes to leave out (their pixels become void)")
    ap.add_argument("--val-split", default="val",
                    help="split to pick the best epoch on; 'none': no val, the last epoch is kept")
    ap.add_argument("--val-limit", type=int)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument("--init", help="start from this checkpoint folder instead of ImageNet + random decoder")
    ap.add_argument("--text-cache", help="safetensors of precomputed BERT sentence vectors (read, then written)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--max-steps", type=int,
                    help="stop after this many steps, the schedule annealing over them (unlike --max-minutes, "
                         "the same run whatever the machine's load)")
    ap.add_argument("--freeze-blocks", type=int, default=0,
                    help="freeze the image encoder's stem and first N blocks (faster steps on a CPU)")
    ap.add_argument("--fine-channels", type=int, default=0,
                    help="give the decoder a stride-2 branch this wide (a model that has none gets one, its "
                         "last conv at zero); 0 = as the model is")
    ap.add_argument("--lovasz", type=float, default=0.0,
                    help="weight of a Lovasz-softmax term (per-class IoU surrogate) added to the cross-entropy; 0 = off")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    scale = tuple(float(v) for v in args.scale.split(","))
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, crop=crop, scale=scale, lr=args.lr,
        class_weight_power=args.class_weight_power, wording_variety=not args.no_wording_variety,
        eval_every=args.eval_every, seed=args.seed, device=args.device, save_dtype=args.save_dtype,
        max_minutes=args.max_minutes, max_steps=args.max_steps, freeze_blocks=args.freeze_blocks, lovasz=args.lovasz,
    )
    try:
        label_set = read_classes(args.data)
        prefixes = args.train_prefixes.split(",") if args.train_prefixes else None
        _, timgs, tlbls = load_split(args.data, "train", prefixes, args.train_limit)
        if args.val_split == "none":
            vimgs, vlbls = [], []
        else:
            _, vimgs, vlbls = load_split(args.data, args.val_split, None, args.val_limit)
        if args.remove_classes:
            removed = [c.strip() for c in args.remove_classes.split(",")]
            new_set, tlbls = remove_classes(label_set, tlbls, removed)
            _, vlbls = remove_classes(label_set, vlbls, removed)
            label_set = new_set
        if args.init:
            model = Segmenter.from_pretrained(args.init)
            model.config.class_names = label_set.names  # any names: the text encoder reads them
            model.config.class_colors = label_set.colors
        else:
            model = Segmenter(SegmenterConfig(
                class_names=label_set.names, class_colors=label_set.colors, ignore_index=label_set.ignore_index))
        if args.fine_channels > 0 and model.decoder.fine is None:
            model.add_fine_branch(args.fine_channels)
        if args.text_cache and Path(args.text_cache).is_file():
            model.text_encoder.embedder.load_cache(args.text_cache)
    except (DatasetError, ValueError, ImportError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"training on {len(timgs)} images, validating on {len(vimgs)}, device {pick_device(args.device)}")
    result = train_model(model, SplitData(timgs, tlbls), SplitData(vimgs, vlbls) if vimgs else None, cfg, args.out)
    if args.text_cache:
        model.text_encoder.embedder.save_cache(args.text_cache)
    print(json.dumps({"best": result["best"], "out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
