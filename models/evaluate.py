"""Evaluate a checkpoint on a dataset split; prints one JSON line.

    python -m models.evaluate --model weights/camvid --data ../shared/datasets/camvid --split val
    python -m models.evaluate ... --classes "heavens,facade,..."   # other wordings, same order
    python -m models.evaluate ... --refined    # the maps the app shows (refined along image edges)
    python -m models.evaluate ... --input-scale 1.5   # the network sees each image enlarged 1.5x
    python -m models.evaluate ... --flip              # and mirrored, the two views averaged
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .data import DatasetError, load_split, read_classes
from .inference import Predictor, add_view_arguments, evaluate_arrays
from .segmenter import CheckpointError


def parse_classes(text: str | None, expected: int) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if len(names) != expected:
        raise ValueError(f"--classes gave {len(names)} names, the dataset has {expected} classes (same order)")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder (config.json + model.safetensors)")
    ap.add_argument("--data", required=True, help="dataset folder (images/, labels/, classes.json)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--classes", help="comma-separated class names replacing the dataset's, same order")
    ap.add_argument("--limit", type=int, help="evaluate only the first N images")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    ap.add_argument("--threads", type=int, help="CPU threads for torch")
    ap.add_argument("--refined", action="store_true",
                    help="score the class maps the app shows (refined along image edges, models.refine) "
                         "instead of the network's plain argmax")
    add_view_arguments(ap)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        label_set = read_classes(args.data)
        names = parse_classes(args.classes, len(label_set.names)) or label_set.names
        predictor = Predictor.load(args.model, args.device, input_scale=args.input_scale, flip=args.flip)
        _, images, labels = load_split(args.data, args.split, limit=args.limit)
        result = evaluate_arrays(predictor, images, labels, names, label_set.ignore_index, label_set.names,
                                 refined=args.refined)
    except (DatasetError, CheckpointError, ValueError, ImportError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result.update(split=args.split, class_names=names, device=predictor.device_name, refined=args.refined,
                  input_scale=predictor.input_scale, flip=predictor.flip)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
