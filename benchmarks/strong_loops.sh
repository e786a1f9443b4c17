#!/usr/bin/env bash
# The loop from a strong base on an unseen drive (issue 10), as reported in BENCHMARKS.md:
# base A (runs/loop/strong_A: trained on 0006R0 + 0016E5 only) over the 0001TP train
# images, the project's val split made by the app's rule (one in five by hash: 18 images),
# the other 44 labelled 11 per round. The job recipe is models.finetune.default_params
# (chosen on 0016E5 with base B: benchmarks/tune_strong.py); the last run is the recipe of
# issue 5 (lr 6e-3, no blend, 3.5 minutes) for comparison.
set -euo pipefail
RES=${RES:-benchmarks/results}
common=(--base runs/loop/strong_A --sequence 0001TP --val auto --rounds 4 --per-round 11 --threads 2)
python -m benchmarks.bench_loop "${common[@]}" --order random --out "$RES/cpu_strong_loop_random.json"
python -m benchmarks.bench_loop "${common[@]}" --order uncertainty --out "$RES/cpu_strong_loop_queue.json"
python -m benchmarks.bench_loop "${common[@]}" --order random --params '{"lr": 6e-3, "blend": [1.0], "max_minutes": 3.5}' \
  --out "$RES/cpu_strong_loop_random_recipe5.json"
