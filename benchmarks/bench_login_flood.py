"""Login flood (issue 17, finding 2): does a flood of wrong passwords stall other requests?

Starts the app (accounts, real argon2id parameters, no demo project) on a free
127.0.0.1 port, logs one test account in, then runs 4 threads posting wrong passwords
to /login for --seconds (each thread at most --max-posts) while another thread times
GET /gradio_api/info with the valid session every 50 ms; prints the p50/p95/max of
those timings and how the flood was answered. Loopback only.

Modes (--mode, default all three, one after the other, each on a fresh app):
  guarded      as app.py serves it: argon2 in a worker thread, throttling on
  unthrottled  argon2 in a worker thread, throttling off (every post is hashed)
  baseline     as before issue 17: a sync auth on the event loop, no throttling

    python benchmarks/bench_login_flood.py [--seconds 10] [--mode guarded]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segui.handlers import Studio  # noqa: E402
from segui.security import Settings, launch_options  # noqa: E402
from segui.ui import LAUNCH_OPTIONS, build_app  # noqa: E402
from storage import LoginPolicy, Store  # noqa: E402

USER, PASSWORD = "bench", "bench password long enough"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(mode: str, data_dir: Path):
    store = Store(data_dir=data_dir)
    if not store.has_users():
        store.add_user(USER, PASSWORD, "admin")
    studio = Studio(store, device="cpu")
    app = build_app(studio, auth_enabled=True)
    port = free_port()
    if mode == "baseline":
        opts = {"auth": lambda u, p: store.verify_user(u, p) is not None}
    else:
        settings = Settings()
        if mode == "unthrottled":
            big = 10 ** 9
            settings = Settings(account=LoginPolicy(free_failures=big, lock_after=0), address_free_failures=big)
        opts = launch_options(studio, studio.login, settings)
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       **opts, **LAUNCH_OPTIONS)
    return app, store, f"http://127.0.0.1:{port}/"


def run(mode: str, seconds: float, max_posts: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        app, store, url = serve(mode, Path(tmp) / "data")
        try:
            session = httpx.Client(base_url=url, timeout=30)
            r = session.post("login", data={"username": USER, "password": PASSWORD})
            r.raise_for_status()
            assert session.get("gradio_api/info").status_code == 200
            for _ in range(5):                        # warm up
                session.get("gradio_api/info")
            stop = threading.Event()
            answers: dict[int, int] = {}
            lock = threading.Lock()

            def flood(i: int):
                with httpx.Client(base_url=url, timeout=60) as c:
                    for n in range(max_posts):
                        if stop.is_set():
                            return
                        code = c.post("login", data={"username": f"nobody{i}-{n}",
                                                     "password": "wrong password"}).status_code
                        with lock:
                            answers[code] = answers.get(code, 0) + 1

            timings: list[float] = []

            def probe():
                while not stop.is_set():
                    t0 = time.perf_counter()
                    assert session.get("gradio_api/info").status_code == 200
                    timings.append((time.perf_counter() - t0) * 1000)
                    time.sleep(0.05)

            threads = [threading.Thread(target=flood, args=(i,)) for i in range(4)]
            threads.append(threading.Thread(target=probe))
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            q = statistics.quantiles(timings, n=20)
            return {"mode": mode, "seconds": round(wall, 1), "probe_requests": len(timings),
                    "p50_ms": round(statistics.median(timings), 1), "p95_ms": round(q[18], 1),
                    "max_ms": round(max(timings), 1), "login_answers": answers}
        finally:
            app.close()
            store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-posts", type=int, default=5000, help="per flooding thread")
    ap.add_argument("--mode", choices=["guarded", "unthrottled", "baseline"], action="append")
    args = ap.parse_args()
    for mode in args.mode or ["guarded", "unthrottled", "baseline"]:
        print(json.dumps(run(mode, args.seconds, args.max_posts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
