"""Fine-tuning jobs: queued in the database, run by workers.

- `jobs.queue`: enqueue (checks, then `Store.create_job`), cancel, reap stale jobs,
  wait for a job.
- `jobs.worker`: `python -m jobs.worker` claims queued jobs (`Store.claim_job`) and
  runs each in a child process (`python -m jobs.runner`, or under torchrun with
  `--nproc N`), heartbeating and supervising it. The app starts one local worker.
- `jobs.runner`: runs one job by id: data from the store, the recipe of
  `models.finetune`, evaluation on the val split, the new version, promotion.

The recipe itself (parameters, training, evaluation, promotion rule) stays in the
model library, `models.finetune`, which imports neither storage nor jobs (.importlinter).
Where a job trains is the worker's and runner's --device, not a recipe parameter.
"""
