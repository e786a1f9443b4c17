#!/usr/bin/env bash
# The GPU run that produced the shipped model (weights/camvid) and the GPU figures in
# BENCHMARKS.md. Run from the repo root with CamVid in $DATA, the efficientnet-lite0 pip
# package importable and a BERT sentence cache (TEXT_CACHE) so BERT itself is not needed.
set -euo pipefail
DATA=${DATA:-../shared/datasets/camvid}
OUT=${OUT:-runs/gpu}
TEXT_CACHE=${TEXT_CACHE:-}
MINUTES=${MINUTES:-4.5}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi -L || true
cache=(); [ -n "$TEXT_CACHE" ] && cache=(--text-cache "$TEXT_CACHE") && export TEXT_CACHE
start=$(date +%s)
python -m models.train --data "$DATA" --out "$OUT/ship" --epochs 400 --max-minutes "$MINUTES" \
  --batch-size 16 --crop 352x480 --scale 0.5,2.0 --eval-every 2 --save-dtype float16 "${cache[@]}" \
  2>&1 | tee "$OUT/train_ship.log" | grep -E "^epoch [0-9]+:|^training" | awk 'NR%5==1'
echo "train wall seconds: $(( $(date +%s) - start ))"
python -m models.evaluate --model "$OUT/ship" --data "$DATA" --split val | tee "$OUT/eval_val.json"
python -m models.evaluate --model "$OUT/ship" --data "$DATA" --split val --classes \
  "heavens,facade,streetlight pole,driving lane,footway,greenery,signboard,barricade,sedan,person walking,rider on a bike" \
  | tee "$OUT/eval_val_heldout_words.json"
python -m models.benchmark --model "$OUT/ship" --device cuda --compare --repeats 50 | tee "$OUT/bench_gpu.json"
