#!/usr/bin/env bash
# CPU fallback for benchmarks/gpu_strong_bases.sh (the lent GPU's time ran out before a
# training started there: see BENCHMARKS.md, issue 10). Same two bases, shorter budget,
# smaller crops, the encoder's stem and first 3 blocks frozen, both at once on the 2 cores.
#   strong_A: train images of 0006R0 and 0016E5; the loop is REPORTED on 0001TP.
#   strong_B: train images of 0001TP and 0006R0; the recipe is CHOSEN on 0016E5.
# No val split (the last epoch is kept): CamVid's val images are all 0016E5.
set -euo pipefail
DATA=${DATA:-../shared/datasets/camvid}
OUT=${OUT:-runs/loop}
MIN_A=${MIN_A:-33}
MIN_B=${MIN_B:-20}
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
common=(--data "$DATA" --epochs 400 --batch-size 8 --crop 256x320 --scale 0.5,1.75 --val-split none
        --freeze-blocks 3 --save-dtype float16)
python -m models.train "${common[@]}" --train-prefixes 0006R0,0016E5 --max-minutes "$MIN_A" --threads 1 \
  --out "$OUT/strong_A" > "$OUT/train_strong_A.log" 2>&1 &
a=$!
python -m models.train "${common[@]}" --train-prefixes 0001TP,0006R0 --max-minutes "$MIN_B" --threads 1 \
  --out "$OUT/strong_B" > "$OUT/train_strong_B.log" 2>&1 &
b=$!
status=0
wait $b || status=1
wait $a || status=1
exit $status
