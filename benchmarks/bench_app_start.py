"""How long ``python app.py`` takes to be usable: from the command to the server
answering ``GET /``, and to the Label screen showing its first image in Chromium
(headless, Debian's package, 1440x900). The first start makes the demo (its images
predicted); each later one is a restart on the same data (stored masks).

    python benchmarks/bench_app_start.py [--rounds 3] [--port 7962] [--out benchmarks/results/cpu_bench_app_start.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.canvas_page import CanvasPage, launch  # noqa: E402


def one_start(browser, data: Path, port: int) -> dict:
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--data-dir", str(data), "--port", str(port),
                             "--no-worker"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}")
            time.sleep(0.1)
        served = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        CanvasPage(page).wait_image()
        shown = time.perf_counter() - t0
        page.close()
        return {"server_s": round(served, 2), "first_image_s": round(shown, 2)}
    finally:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="restarts after the first start")
    ap.add_argument("--port", type=int, default=7962)
    ap.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = launch(pw)
        first = one_start(browser, Path(tmp) / "data", a.port)
        print(f"first start (makes the demo): server {first['server_s']} s, first image {first['first_image_s']} s",
              flush=True)
        restarts = []
        for r in range(a.rounds):
            restarts.append(one_start(browser, Path(tmp) / "data", a.port))
            print(f"restart {r + 1}: server {restarts[-1]['server_s']} s, first image {restarts[-1]['first_image_s']} s",
                  flush=True)
        browser.close()
    out = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "first_start": first,
           "restarts": restarts,
           "restart_median": {k: statistics.median(r[k] for r in restarts) for k in ("server_s", "first_image_s")}}
    print(json.dumps(out["restart_median"]))
    if a.out:
        a.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
