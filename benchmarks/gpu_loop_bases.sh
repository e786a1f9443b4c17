#!/usr/bin/env bash
# Base models for the measured loop (benchmarks.bench_loop), trained on a lent GPU:
# only the 0001TP and 0006R0 train sequences; the second also without "bicyclist"
# (its pixels are void), so the loop can add that class back by name.
set -euo pipefail
DATA=${DATA:-../shared/datasets/camvid}
OUT=${OUT:-runs/loop}
MINUTES=${MINUTES:-1.75}
cache=(); [ -n "${TEXT_CACHE:-}" ] && cache=(--text-cache "$TEXT_CACHE") && export TEXT_CACHE
common=(--data "$DATA" --train-prefixes 0001TP,0006R0 --epochs 400 --max-minutes "$MINUTES" --batch-size 16
        --crop 352x480 --scale 0.5,2.0 --eval-every 4 --save-dtype float16 "${cache[@]}")
python -m models.train "${common[@]}" --out "$OUT/base" 2>&1 | grep -E "^\{\"best" | cut -c1-200
python -m models.train "${common[@]}" --out "$OUT/base_no_bicyclist" --remove-classes bicyclist 2>&1 | grep -E "^\{\"best" | cut -c1-200
