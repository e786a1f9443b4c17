#!/usr/bin/env bash
# Issue 20's second loop: "from a base over another drive (base A over 0001TP)", as the app
# runs it (one image at a time, the instant layer refitted after each, a job every 11
# submissions), random and queue order, two seeds. Reported in BENCHMARKS.md ("Base A over
# 0001TP, one image at a time"). Nothing is chosen on these runs.
#
# Base A sees only CamVid's train images of 0006R0 and 0016E5 (305 images), never 0001TP.
# It is trained here on the 2-core CPU, both threads, the last epoch kept (no val split:
# CamVid's val images are all 0016E5), unless runs/loop/strong_A already exists: 4,066 steps
# (--max-steps, the count a quiet 62-minute run reached; since 2026-12-06 a step budget instead
# of --max-minutes, so the base does not depend on the CPU's load).
# Run from the repository root, with nothing else on the CPU (jobs are time-bounded).
set -euo pipefail
DATA=${DATA:-../shared/datasets/camvid}
RES=${RES:-benchmarks/results}
STEPS_A=${STEPS_A:-4066}
export PYTHONUNBUFFERED=1
mkdir -p runs/loop
if [ ! -f runs/loop/strong_A/config.json ]; then
  python -m models.train --data "$DATA" --epochs 400 --batch-size 8 --crop 256x320 --scale 0.5,1.75 \
    --val-split none --freeze-blocks 3 --save-dtype float16 --train-prefixes 0006R0,0016E5 \
    --max-steps "$STEPS_A" --threads 2 --out runs/loop/strong_A > runs/loop/train_strong_A.log 2>&1
fi
common=(--data "$DATA" --base runs/loop/strong_A --sequence 0001TP --val auto --rounds 4 --per-round 11
        --one-at-a-time --ops --minutes 2.5 --threads 2)
for seed in 0 1; do
  python -m benchmarks.bench_loop "${common[@]}" --seed $seed --order random \
    --out "$RES/cpu_loop_one_at_a_time_strongA_0001TP_seed${seed}_random.json"
  python -m benchmarks.bench_loop "${common[@]}" --seed $seed --order uncertainty \
    --out "$RES/cpu_loop_one_at_a_time_strongA_0001TP_seed${seed}_queue.json"
done
