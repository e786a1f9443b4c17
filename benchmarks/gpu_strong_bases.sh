#!/usr/bin/env bash
# Two strong base models for the loop from a strong base on an unseen drive (issue 10),
# trained at the same time on one lent GPU with the settings of gpu_train.sh (which made
# the shipped model): batch 16, 352x480 crops at scale 0.5-2.0, fp16 safetensors.
#   strong_A: train images of 0006R0 and 0016E5; the loop is REPORTED on 0001TP.
#   strong_B: train images of 0001TP and 0006R0; the recipe is CHOSEN on 0016E5.
# No val split (--val-split none, the last epoch is kept): CamVid's val images are all
# 0016E5, and picking B's epoch on them would peek at the drive the recipe is chosen on.
# Needs CamVid's train images in $DATA, the efficientnet-lite0 pip package importable and
# TEXT_CACHE (benchmarks/make_text_cache.py) so BERT itself is not needed.
set -euo pipefail
DATA=${DATA:-../shared/datasets/camvid}
OUT=${OUT:-runs/loop}
MINUTES=${MINUTES:-3.5}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
[ -n "${TEXT_CACHE:-}" ] && export TEXT_CACHE   # read by every SentenceEmbedder; not rewritten
nvidia-smi -L || true
common=(--data "$DATA" --epochs 400 --max-minutes "$MINUTES" --batch-size 16 --crop 352x480
        --scale 0.5,2.0 --val-split none --save-dtype float16)
start=$(date +%s)
python -m models.train "${common[@]}" --train-prefixes 0006R0,0016E5 --out "$OUT/strong_A" \
  > "$OUT/train_strong_A.log" 2>&1 &
a=$!
python -m models.train "${common[@]}" --train-prefixes 0001TP,0006R0 --out "$OUT/strong_B" \
  > "$OUT/train_strong_B.log" 2>&1 &
b=$!
status=0
wait $a || status=1
wait $b || status=1
echo "train wall seconds: $(( $(date +%s) - start ))"
for m in A B; do
  grep -E "^training|^epoch [0-9]+:" "$OUT/train_strong_$m.log" | awk 'NR==1 || NR%20==0' || true
  tail -n 3 "$OUT/train_strong_$m.log" | cut -c1-300
done
exit $status
