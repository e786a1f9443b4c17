"""Predict class maps for images; writes NAME_classes.png (class indices) and NAME_overlay.png.

    python -m models.predict --model weights/camvid photo1.jpg photo2.png --out preds/
    python -m models.predict ... --classes "sky,road,car"   # any label set, by name
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import DatasetError, label_colors, load_image
from .inference import Predictor, add_view_arguments
from .refine import RefineSettings
from .segmenter import CheckpointError


def overlay(image: np.ndarray, class_map: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours over the image; (H, W, 3) uint8."""
    colours = palette[np.clip(class_map, 0, len(palette) - 1)]
    return (image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha).round().astype(np.uint8)


def palette_for(names: list[str], model_names: list[str], model_colors: list[list[int]]) -> np.ndarray:
    by_name = dict(zip(model_names, model_colors))
    return np.asarray(label_colors(names, [by_name.get(n) for n in names]), dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--classes", help="comma-separated class names (default: the model's label set)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--no-refine", action="store_true",
                    help="write the network's plain argmax (default: maps refined along image edges, models.refine)")
    add_view_arguments(ap)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        predictor = Predictor.load(args.model, args.device,
                                   refine=RefineSettings(radius=0) if args.no_refine else None,
                                   input_scale=args.input_scale, flip=args.flip)
        names = [n.strip() for n in args.classes.split(",")] if args.classes else predictor.class_names
        # Read every image first: an unreadable one stops the run before anything is written.
        images = [(Path(p), load_image(p)) for p in args.images]
        cfg = predictor.model.config
        palette = palette_for(names, cfg.class_names, cfg.class_colors)
        results = [(p, img, predictor.predict(img, names)) for p, img in images]
    except (DatasetError, CheckpointError, ValueError, TypeError, ImportError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, img, pred in results:
        Image.fromarray(pred.class_map).save(out / f"{path.stem}_classes.png")
        Image.fromarray(overlay(img, pred.class_map, palette)).save(out / f"{path.stem}_overlay.png")
        print(f"{path} -> {out / (path.stem + '_classes.png')} (uncertainty {pred.uncertainty:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
