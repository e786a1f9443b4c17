"""Segmentation metrics from one confusion matrix accumulated over a whole split."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """(K, K) int64 counts, rows = ground truth, columns = prediction; void pixels excluded."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    idx = target[keep] * num_classes + np.clip(pred[keep], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(conf: np.ndarray, class_names: list[str] | None = None) -> dict:
    """mIoU (mean over classes present in ground truth or prediction), pixel accuracy,
    per-class IoU by name (None for a class absent from both)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = conf.sum()
    names = class_names or [str(i) for i in range(len(iou))]
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
    }


RECORDED = ("miou", "pixel_accuracy", "per_class_iou")   # what a checkpoint's config keeps


def checkpoint_metrics(metrics: dict | None) -> dict:
    """Val metrics as a checkpoint's ``config.metrics`` stores them (``val_miou``, ...)."""
    return {"val_" + k: v for k, v in (metrics or {}).items() if k in RECORDED}


def recorded_metrics(metrics: dict | None) -> dict:
    """A version's recorded metrics under one set of names (``miou``, ...): the checkpoint's
    config says val_miou / val_per_class_iou, a fine-tuning job's result miou / per_class_iou."""
    m = metrics or {}
    return {k: m.get("val_" + k, m.get(k)) for k in RECORDED}
