"""Label screen responsiveness, measured in Chromium (headless, Debian's package).

    python benchmarks/bench_canvas.py [--data ../shared/datasets/camvid] [--out benchmarks/results/cpu_bench_canvas.json]

Launches the app in this process on a fresh data folder (the demo project plus 12
CamVid val images), opens it at 1440x900 and measures, inside the page with
``performance.now()``:

- brush, superpixel fill, polygon, undo: from the input event (dispatched in the
  page) to the end of the animation frame whose canvas shows the result at the
  edited pixel (read back from the canvas);
- Next: from the N key to the frame that shows the next image;
- upload -> visible mask: from the file input's change event to the frame that
  shows the uploaded image with its predicted mask.

The same edits are also timed on a 1920x1440 image (a CamVid image upscaled), to
show how drawing cost grows with image size. Targets (issue 9): each edit <= 50 ms,
Next <= 300 ms, upload -> mask <= 1.5 s.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segui.handlers import DEMO_PROJECT, Studio  # noqa: E402
from segui.ui import LAUNCH_OPTIONS, build_app  # noqa: E402
from storage import Store  # noqa: E402
from tests.app.canvas_page import CanvasPage, launch  # noqa: E402

# In-page timing: run `act` (a function source), then poll every animation frame
# (after the canvas's own render callback) until `done` is true; ms elapsed.
MEASURE = """async ([act, done]) => {
  const S = document.querySelector('.seg-root').__seg.S;
  const c = document.querySelector('.seg-view'), ctx = c.getContext('2d');
  const px = (x, y) => { const d = c.width / c.clientWidth;
    return Array.from(ctx.getImageData(Math.floor((S.view.ox + x * S.view.s) * d), Math.floor((S.view.oy + y * S.view.s) * d), 1, 1).data.slice(0, 3)); };
  const ev = (t, x, y, extra) => { const r = c.getBoundingClientRect();
    c.dispatchEvent(new PointerEvent(t, Object.assign({clientX: r.left + S.view.ox + x * S.view.s, clientY: r.top + S.view.oy + y * S.view.s,
      button: 0, buttons: t === 'pointerup' ? 0 : 1, pointerId: 1, pointerType: 'mouse', isPrimary: true, bubbles: true}, extra || {}))); };
  const key = (k, o) => document.dispatchEvent(new KeyboardEvent('keydown', Object.assign({key: k, bubbles: true}, o || {})));
  const env = {S, px, ev, key};
  const check = new Function('env', 'return (' + done + ')(env)');
  S.cursor = null;   // the brush cursor's outline must not pass for the edit's pixels
  const state = new Function('env', 'return (' + act + ')(env)')(env);
  const t0 = performance.now();
  state.run();
  return await new Promise(res => { const tick = () => { const t = performance.now() - t0;
      if (check(Object.assign(env, {state}))) res(t); else if (t > 20000) { window.__timeouts = (window.__timeouts || []).concat([{x: state.x, y: state.y, before: state.before, now: state.x === undefined ? null : px(state.x, state.y), tool: S.tool, active: S.active, v: S.map.data[Math.floor(state.y) * S.map.width + Math.floor(state.x)], steps: S.history.pos, view: S.view}]); res(-1); } else requestAnimationFrame(tick); };
    requestAnimationFrame(tick); });
}"""

DIFFERS = "(e) => { const a = e.px(e.state.x, e.state.y), b = e.state.before; return Math.abs(a[0]-b[0]) + Math.abs(a[1]-b[1]) + Math.abs(a[2]-b[2]) > 24; }"


# the class to paint: sky, or car where the pixel is sky already (so the pixel changes)
PICK = "e.S.active = e.S.map.data[Math.floor(y) * e.S.map.width + Math.floor(x)] === 0 ? 8 : 0;"


def edit_actions(w: int, h: int, k: int) -> tuple[float, float, dict[str, str]]:
    """The point of repetition k and one action per edit kind there."""
    x = int(w * (0.15 + 0.035 * k)) + 0.5
    y = int(h * (0.25 + 0.02 * k)) + 0.5
    return x, y, {
        "brush": f"""(e) => {{ const x = {x}, y = {y}; {PICK} const before = e.px(x, y); return {{x, y, before,
            run: () => {{ e.ev('pointerdown', x - 2, y); e.ev('pointermove', x + 2, y); e.ev('pointerup', x + 2, y); e.S.cursor = null; }} }}; }}""",
        "superpixel fill": f"""(e) => {{ const x = {x}, y = {y}; {PICK} const before = e.px(x, y); return {{x, y, before,
            run: () => {{ e.ev('pointerdown', x, y); e.ev('pointerup', x, y); }} }}; }}""",
        "polygon": f"""(e) => {{ const x = {x}, y = {y}, r = {max(8, w // 40)}; {PICK} const before = e.px(x, y);
            e.S.polygon = [[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]];
            return {{x, y, before, run: () => {{ e.key('Enter'); e.key('Enter'); }} }}; }}""",
    }


def undo_action(x: float, y: float) -> str:
    return f"""(e) => {{ const x = {x}, y = {y}; const before = e.px(x, y); return {{x, y, before,
        run: () => e.key('z', {{ctrlKey: true}}) }}; }}"""


def summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    failed = sum(v < 0 for v in s)
    s = [v for v in s if v >= 0] or [float("nan")]
    return {"n": len(s), "timed_out": failed, "median_ms": round(statistics.median(s), 1), "p90_ms": round(s[int(0.9 * (len(s) - 1))], 1),
            "max_ms": round(s[-1], 1)}


def time_edits(c: CanvasPage, reps: int) -> dict[str, list[float]]:
    """``reps`` rounds of brush, superpixel fill and polygon at fresh points, each
    followed by Ctrl+Z."""
    w, h = c.js("() => { const S = document.querySelector('.seg-root').__seg.S; return [S.map.width, S.map.height]; }")
    c.wait_superpixels()
    # a large image is fitted below 100 %: zoom to 100 % on the edited area, so that the
    # canvas pixel read back is the edited image pixel (not a downsampled neighbour)
    c.js("""([w, h]) => { const S = document.querySelector('.seg-root').__seg.S;
        if (S.view.s < 1) { S.view = {s: 1, ox: -0.1 * w, oy: -0.2 * h}; S.fitted = false; } }""", [w, h])
    out: dict[str, list[float]] = {"brush": [], "superpixel fill": [], "polygon": [], "undo": []}
    tools = {"brush": "b", "superpixel fill": "s", "polygon": "p"}
    for k in range(reps):
        x, y, actions = edit_actions(w, h, k)
        for name, act in actions.items():
            c.key(tools[name])
            out[name].append(c.js(MEASURE, [act, DIFFERS]))
            c.js("() => new Promise(r => setTimeout(r, 30))")
            out["undo"].append(c.js(MEASURE, [undo_action(x, y), DIFFERS]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_bench_canvas.json"))
    ap.add_argument("--reps", type=int, default=12)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    val = sorted((Path(args.data) / "images" / "val").glob("*.jpg"))
    if len(val) < 20:
        raise SystemExit(f"need CamVid val images under {args.data}/images/val")
    tmp = Path(tempfile.mkdtemp(prefix="bench-canvas-"))
    st = Studio(Store(data_dir=tmp / "data"))
    st.ensure_demo()
    st.upload(DEMO_PROJECT, val[:12])
    big = tmp / "large_1920x1440.png"
    Image.open(val[20]).convert("RGB").resize((1920, 1440), Image.BICUBIC).save(big)
    st.wait_idle()
    st.warm_up()
    app = build_app(st)
    app.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1", server_port=7890, prevent_thread_lock=True,
                                                  quiet=True, **LAUNCH_OPTIONS)
    results: dict = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                                f"{__import__('os').cpu_count()} cores, no GPU, headless Chromium --disable-gpu",
                     "date": time.strftime("%Y-%m-%d"), "viewport": "1440x900"}
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto("http://127.0.0.1:7890/")
            c = CanvasPage(page)
            c.wait_image()
            c.wait_idle()
            results["browser"] = browser.version
            results["edits_480x360"] = {k: summary(v) for k, v in time_edits(c, args.reps).items()}
            # Next: N key -> the next image drawn (prepared ahead by the page), and -> the
            # server's answer (edits saved, the image confirmed; painting waits for it)
            page.select_option(".seg-queue", "any")
            shown, answered, ahead_ready = [], [], 0
            for _ in range(8):
                c.wait_idle()
                page.wait_for_timeout(1500)   # a labeller looks at an image for longer than this
                ahead_ready += c.state()["ahead"] is not None
                shown.append(c.js(MEASURE, ["(e) => { const id = e.S.img.id; return {id, run: () => e.key('n')}; }",
                                            "(e) => e.S.img && e.S.img.id !== e.state.id && document.querySelector('.seg-root').dataset.imageShown == e.S.img.id"]))
                c.wait_idle()
                t = c.js("() => document.querySelector('.seg-root').__seg.S.timing")
                answered.append(t["answered"] - t["t0"])
            results["next_shown_ms"] = summary(shown)
            results["next_answered_ms"] = summary(answered)
            results["next_prepared_ahead"] = f"{ahead_ready} of {len(shown)}"
            # N pressed soon after an image opened: the preparation may still be running
            quick = []
            for _ in range(6):
                c.wait_idle()
                page.wait_for_timeout(500)
                quick.append(c.js(MEASURE, ["(e) => { const id = e.S.img.id; return {id, run: () => e.key('n')}; }",
                                            "(e) => e.S.img && e.S.img.id !== e.state.id && document.querySelector('.seg-root').dataset.imageShown == e.S.img.id"]))
            results["next_after_half_a_second_shown_ms"] = summary(quick)
            # without any preparation by the page: the server path alone
            plain, phases = [], []
            for _ in range(6):
                c.wait_idle()
                page.wait_for_timeout(2500)
                c.js("() => { const S = document.querySelector('.seg-root').__seg.S; clearTimeout(S.peekTimer); S.ahead = null; S.peeking = null; }")
                plain.append(c.js(MEASURE, ["(e) => { const id = e.S.img.id; return {id, run: () => e.key('n')}; }",
                                            "(e) => e.S.img && e.S.img.id !== e.state.id && document.querySelector('.seg-root').dataset.imageShown == e.S.img.id && e.S.navPending === null"]))
                t = c.js("() => document.querySelector('.seg-root').__seg.S.timing")
                phases.append((t["sent"] - t["t0"], t["received"] - t["sent"], t["shown"] - t["received"]))
            results["next_unprepared_ms"] = summary(plain)
            results["next_unprepared_phases_median_ms"] = {
                name: round(statistics.median(p[k] for p in phases), 1)
                for k, name in enumerate(["encode and send the map", "server round trip (Gradio queue, handler, transfer)",
                                          "decode photo, map, prediction and draw"])}
            # upload -> visible mask
            uploads = []
            for path in val[30:36] + [big]:
                c.wait_idle()
                st.wait_idle()
                page.wait_for_timeout(1000)
                page.evaluate("""() => { window.__up = null; document.addEventListener('change', (e) => {
                    if (e.target.type === 'file' && window.__up === null) window.__up = performance.now(); }, {capture: true, once: true}); }""")
                before = c.state()["image"]
                page.set_input_files("#segui-upload input[type=file]", str(path))
                page.wait_for_function(f"() => {{ const S = document.querySelector('.seg-root').__seg.S; return S.img && S.img.id !== {before} && document.querySelector('.seg-root').dataset.imageShown == S.img.id; }}", timeout=120_000)
                t_end = page.evaluate("() => performance.now()")
                uploads.append((path.name, t_end - page.evaluate("() => window.__up")))
            results["upload_to_mask_ms"] = summary([ms for _, ms in uploads[:-1]])
            results["upload_to_mask_1920x1440_ms"] = round(uploads[-1][1], 1)
            # the same edits on the large image that is open now
            results["edits_1920x1440"] = {k: summary(v) for k, v in time_edits(c, max(4, args.reps // 3)).items()}
            results["timeouts"] = c.js("() => window.__timeouts || []")
            browser.close()
    finally:
        app.close()
        st.store.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
