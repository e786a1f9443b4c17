"""Benchmarks and tuning scripts (BENCHMARKS.md): not part of the app. Scripts run as
`python benchmarks/NAME.py` or, for the loop benchmark, `python -m benchmarks.bench_loop`
from the repository root; they import each other as `benchmarks.NAME`."""
