"""Inference latency: our model vs SegFormer-B0 and CLIPSeg (transformers, random init).

    python -m models.benchmark --model weights/camvid --threads 2 --compare

Times one 480x360 image end to end through `Predictor.predict` (class map +
confidence, BERT embeddings cached), and in the same run SegFormer-B0 (default
config) at 480x360 and CLIPSeg (default config) for 11 class prompts at 352x352.
Prints one JSON line of medians in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from .inference import Predictor, add_view_arguments


def median_ms(fn, repeats: int, warmup: int = 3, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


@torch.inference_mode()
def bench_baselines(device: torch.device, repeats: int, amp: bool, sync) -> dict:
    from transformers import (CLIPSegConfig, CLIPSegForImageSegmentation, SegformerConfig,
                              SegformerForSemanticSegmentation)

    out = {}
    seg = SegformerForSemanticSegmentation(SegformerConfig(num_labels=11)).eval().to(device)
    x = torch.rand(1, 3, 360, 480, device=device)

    def run_seg():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = seg(pixel_values=x).logits
            torch.nn.functional.interpolate(logits, size=(360, 480), mode="bilinear").argmax(1)

    out["segformer_b0_ms"] = median_ms(run_seg, repeats, sync=sync)
    clip = CLIPSegForImageSegmentation(CLIPSegConfig()).eval().to(device)
    px = torch.rand(11, 3, 352, 352, device=device)
    ids = torch.randint(1, 1000, (11, 8), device=device)

    def run_clip():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            clip(input_ids=ids, pixel_values=px).logits.argmax(0)

    out["clipseg_11_prompts_ms"] = median_ms(run_clip, max(5, repeats // 4), sync=sync)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--compare", action="store_true", help="also time SegFormer-B0 and CLIPSeg")
    add_view_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = Predictor.load(args.model, args.device, input_scale=args.input_scale, flip=args.flip)
    dev = predictor.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
    result = {
        "device": predictor.device_name,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "ours_ms": median_ms(lambda: predictor.predict(image), args.repeats, sync=sync),
    }
    if args.compare:
        result.update(bench_baselines(dev, args.repeats, dev.type == "cuda", sync))
        result["segformer_over_ours"] = result["segformer_b0_ms"] / result["ours_ms"]
        result["clipseg_over_ours"] = result["clipseg_11_prompts_ms"] / result["ours_ms"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
