"""Seconds from someone else's submit to an image open unedited in Chromium showing the
instant layer's prediction made with it (the heartbeat names the current adapter every
3 s, ``Nav.newerFit`` opens the image again).

    python -m benchmarks.bench_newer_fit [--submits 3] [--out benchmarks/results/cpu_newer_fit.json]

A Studio(instant=True) on a fresh data folder with the demo (its 10 labelled frames learnt
at start) served in this process, one headless Chromium page (Debian's package, 1440x900)
on its first image to label. Then, ``--submits`` times, another image of the queue is
submitted through ``Studio.save_edits`` as another labeller's Label screen does (its road
called pavement, so the adapter changes), and the page is watched until its open image's
``fit`` is the new adapter's and no request is pending.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segui.handlers import DEMO_DIR, Studio  # noqa: E402
from storage import Store  # noqa: E402
from tests.app.canvas_page import S, launch, open_page  # noqa: E402
from tests.app.conftest import served  # noqa: E402

ROAD, PAVEMENT = 3, 4   # the demo's classes.json indices


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submits", type=int, default=3)
    ap.add_argument("--out", help="JSON of the figures")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        st = Studio(Store(data_dir=Path(tmp) / "data"), instant=True)
        st.ensure_demo(DEMO_DIR)
        assert st.wait_idle(300), "the demo's background work did not end"
        pid = st.store.get_project("CamVid demo").id
        with served(st) as url, sync_playwright() as pw:
            browser = launch(pw)
            c = open_page(browser, url)
            first = c.wait_image()
            c.wait_idle()
            others = [im.id for im in st.store.list_images(pid, order="id")
                      if im.status == "unlabelled" and im.id != first][:args.submits]
            for other in others:
                shown = c.js(f"() => {S}.img.fit")
                loaded = st.prepare(other).loaded
                cm = loaded.class_map.copy()
                cm[cm == ROAD] = PAVEMENT
                t0 = time.perf_counter()
                st.save_edits(loaded, cm, "someone", "submitted")
                st.instant_wait(other, 60)
                learnt = time.perf_counter() - t0
                c.page.wait_for_function(f"() => {S}.img.fit !== {shown} && {S}.pending.size === 0 && "
                                         f"{S}.navPending === null", timeout=60_000)
                on_screen = time.perf_counter() - t0
                rows.append({"submitted": other, "open": first, "learnt_s": round(learnt, 2),
                             "on_screen_s": round(on_screen, 2), "header": c.page.inner_text(".seg-info")})
                print(json.dumps(rows[-1]), flush=True)
            browser.close()
        st.store.close()
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
