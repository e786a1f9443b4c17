"""Nothing lost, issue 17: how soon the page notices a server restarted with nothing in
flight, what its heartbeat costs, and how soon a closed tab's edit is adopted.

    python benchmarks/bench_restart.py [--rounds 3] [--port 7961] [--out benchmarks/results/cpu_bench_restart.json]

Runs ``python app.py`` on a fresh data folder, opens it in Chromium (headless, Debian's
package) at 1440x900, and measures:

- restart -> image reopened: the server is killed (SIGKILL) while the page has no
  request in flight, then started again; from the moment it answers ``GET /`` again to
  the page showing its image reopened (its status says "The server restarted"), with
  the unsaved stroke still on the canvas (checked). The heartbeat runs every 3 s, so
  expect up to about 3 s plus the reopening;
- one heartbeat: the ``alive`` server function's round trip, timed in the page;
- closed tab -> its edit stored: two tabs of one browser on one image, the second
  draws and is closed with its edit unsaved, the first has moved on; from the close to
  the server storing that edit (adoption runs every 5 s).
"""
from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segui.handlers import Studio  # noqa: E402
from storage import Store  # noqa: E402
from tests.app.canvas_page import CanvasPage, launch  # noqa: E402

SEG = "document.querySelector('.seg-root')"


def start(data: Path, port: int, log) -> tuple[subprocess.Popen, float]:
    p = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--data-dir", str(data), "--port", str(port),
                          "--no-worker"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 180:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return p, time.time()
        except httpx.HTTPError:
            pass
        if p.poll() is not None:
            raise SystemExit("the app exited")
        time.sleep(0.05)
    raise SystemExit("the app did not start")


def tab(ctx, url: str) -> CanvasPage:
    page = ctx.new_page()
    c = CanvasPage(page)
    c.queued = set()
    page.on("request", lambda r: c.queued.add(r) if "/gradio_api/queue/" in r.url else None)
    page.on("requestfinished", lambda r: c.queued.discard(r))
    page.on("requestfailed", lambda r: c.queued.discard(r))
    page.goto(url)
    c.wait_image()
    c.wait_idle()
    return c


def stroke(c: CanvasPage, y: float, key: str):
    before = c.client_map()
    for k in (key, "7", "8", "9"):             # a class the stroke changes the map with
        c.key(k)
        c.key("b")
        c.stroke([(30, y), (220, y)], steps=6)
        if not np.array_equal(c.client_map(), before):
            return c.client_map()
    raise SystemExit("the stroke changed nothing")


def quiet(c: CanvasPage, hold: float = 0.3, timeout: float = 60):
    """Wait until no Gradio queue request of the page has been in flight for ``hold`` s."""
    t0, since = time.time(), None
    while time.time() - t0 < timeout:
        c.page.wait_for_timeout(20)
        since = (since or time.time()) if not c.queued else None
        if since and time.time() - since > hold:
            return
    raise SystemExit("the page never went quiet")


def stored(data: Path, iid: int, expected: np.ndarray, timeout: float = 90) -> float:
    st = Studio(Store(data_dir=data))
    try:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if st.store.get_image(iid).revision and np.array_equal(st.store.get_annotation(iid).class_map, expected):
                return time.time()
            time.sleep(0.05)
    finally:
        st.store.close()
    raise SystemExit(f"image {iid}: the edit was never stored")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=7961)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_bench_restart.json"))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    data, url = tmp / "data", f"http://127.0.0.1:{a.port}/"
    log = open(tmp / "app.log", "ab")
    proc, _ = start(data, a.port, log)
    res = {"reopen_s": [], "heartbeat_ms": [], "adopt_s": []}
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            c = tab(ctx, url)
            for r in range(a.rounds):
                drawn = stroke(c, 40 + 30 * r, "7")
                c.wait_ahead()
                c.js(f"() => {SEG}.__seg.setStatus('')")   # (the last round's message)
                quiet(c)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                proc, up = start(data, a.port, log)
                c.page.wait_for_function(f"() => document.querySelector('.seg-status').textContent.includes('The server restarted') "
                                         f"&& {SEG}.__seg.S.pending.size === 0", timeout=60_000, polling=20)
                res["reopen_s"].append(time.time() - up)
                assert np.array_equal(c.client_map(), drawn), "the unsaved stroke was lost"
                c.wait_idle()
            for _ in range(20):
                res["heartbeat_ms"].append(c.js(f"async () => {{ const t = performance.now(); await {SEG}.__seg.server.alive({{}}); return performance.now() - t; }}"))
            for r in range(a.rounds):
                iid = c.state()["image"]
                b = tab(ctx, url)
                if b.state()["image"] != iid:
                    b.js(f"() => {SEG}.__seg.openImage({iid})")
                    b.wait_image(iid)
                    b.wait_idle()
                drawn = stroke(b, 200 + 20 * r, "8")
                b.page.wait_for_function(f"async () => (await {SEG}.__seg.journal.store.all()).some(e => e.image === {iid} "
                                         f"&& e.tab === {SEG}.dataset.tab)")
                c.key("n")                          # the first tab moves on (its outbox may send the image's edits)
                c.wait_idle()
                closed = time.time()
                b.page.close()
                res["adopt_s"].append(stored(data, iid, drawn) - closed)
                print(f"round {r}: image {iid}, adopted and stored in {res['adopt_s'][-1]:.2f} s", flush=True)
                c.wait_idle()
            browser.close()
    finally:
        proc.kill()
        log.close()
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"), "rounds": a.rounds, **res,
        "reopen_median_s": statistics.median(res["reopen_s"]), "reopen_max_s": max(res["reopen_s"]),
        "heartbeat_median_ms": statistics.median(res["heartbeat_ms"]),
        "adopt_median_s": statistics.median(res["adopt_s"]), "adopt_max_s": max(res["adopt_s"]),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, list)}, indent=1))


if __name__ == "__main__":
    main()
