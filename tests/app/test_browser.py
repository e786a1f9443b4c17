"""Real browser: Debian's Chromium driven by Playwright against the launched app.

Opens the app, uploads a 480x360 street image, checks in screenshots that the
predicted overlay is on the editor canvas (and times upload -> visible mask),
paints a stroke with the mouse in the "pedestrian" colour, saves, and checks the
stored annotation: the class under the stroke, the prediction everywhere else.
Screenshots and the timing go to test-artifacts/.
"""
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segui.handlers import DEMO_DIR

from .conftest import in_ci, make_studio, served

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PEDESTRIAN = (64, 64, 0)


@pytest.fixture(scope="module")
def browser_app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if in_ci():
            pytest.fail(f"Chromium not found at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium); CI fails instead")
    st = make_studio(tmp_path_factory.mktemp("browser"))
    spec = json.loads((DEMO_DIR / "classes.json").read_text())
    st.store.create_project("browser test", spec["classes"], ignore_index=spec["ignore_index"])
    st.warm_up()   # as app.py does at start: model loaded, label set encoded
    with served(st) as url:
        yield st, url


def shot(locator) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(np.int32)


def overlay_fraction(rgb: np.ndarray) -> float:
    """Share of pixels tinted like the road overlay (purple: R and B well above G)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float(((r - g > 25) & (b - g > 25) & (np.abs(r - b) < 40)).mean())


def longest_run(idx: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest run of consecutive integers."""
    best, start = (idx[0], idx[0]), idx[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if b != a + 1:
            start = b
        if b - start > best[1] - best[0]:
            best = (start, b)
    return int(best[0]), int(best[1])


# Test instrumentation: keep the WebGL drawing buffer so the page itself can read the
# editor canvas every animation frame (Playwright screenshots take 0.3-4 s each on this
# busy 2-core machine, far too coarse to time a 1.5 s target).
KEEP_BUFFER = """(() => { const orig = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (type, attrs) {
    if (type === 'webgl' || type === 'webgl2' || type === 'experimental-webgl')
      attrs = Object.assign({}, attrs || {}, {preserveDrawingBuffer: true});
    return orig.call(this, type, attrs); }; })()"""

# Starts a per-frame watcher; window.__seg.visible = ms from the start until the editor
# canvas differs from its first frame and shows the road overlay tint on > 4 % of it.
WATCH = """() => {
  const s = window.__seg = {t0: performance.now(), frames: 0, visible: null, status: null, frac: 0, first: null};
  const off = document.createElement('canvas');
  const tick = () => {
    s.frames++;
    const st = document.querySelector('#segui-status');
    if (s.status === null && st && st.innerText.includes(window.__segName)) s.status = performance.now() - s.t0;
    const c = document.querySelector('#segui-editor canvas');
    if (c && c.width > 0) {
      off.width = c.width; off.height = c.height;
      const ctx = off.getContext('2d', {willReadFrequently: true});
      ctx.clearRect(0, 0, off.width, off.height);
      ctx.drawImage(c, 0, 0);
      const d = ctx.getImageData(0, 0, off.width, off.height).data;
      if (s.first === null) s.first = d.slice();
      let n = 0, diff = 0;
      for (let i = 0; i < d.length; i += 16) {
        const r = d[i], g = d[i + 1], b = d[i + 2];
        if (r - g > 25 && b - g > 25 && Math.abs(r - b) < 40) n++;
        if (Math.abs(r - s.first[i]) + Math.abs(g - s.first[i + 1]) + Math.abs(b - s.first[i + 2]) > 60) diff++;
      }
      s.frac = n / (d.length / 16);
      if (s.frac > 0.04 && diff / (d.length / 16) > 0.05) { s.visible = performance.now() - s.t0; s.first = null; return; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""

# True when the editor canvas is greyish (R, G, B within 20: sky's grey over the photo,
# not the road's purple) around canvas pixel [x, y].
GREY_AT = """([x, y]) => {
  const c = document.querySelector('#segui-editor canvas');
  const off = document.createElement('canvas');
  off.width = c.width; off.height = c.height;
  const ctx = off.getContext('2d');
  ctx.drawImage(c, 0, 0);
  const d = ctx.getImageData(Math.round(x) - 1, Math.round(y) - 1, 3, 3).data;
  let r = 0, g = 0, b = 0;
  for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
  return Math.abs(r - g) < 180 && Math.abs(b - g) < 180;
}"""


def test_upload_see_mask_paint_save(browser_app, artifacts):
    from playwright.sync_api import sync_playwright

    st, url = browser_app
    photo = sorted(DEMO_DIR.glob("*.jpg"))[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.add_init_script(KEEP_BUFFER)
        page.goto(url)
        page.wait_for_selector("#segui-legend .segui-legend", timeout=60_000)
        assert "CPU" in page.inner_text("#segui-device") or "GPU" in page.inner_text("#segui-device")
        canvas = page.locator("#segui-editor canvas").first
        blank = shot(canvas)
        assert overlay_fraction(blank) < 0.01

        # ---- upload -> predicted overlay visible on the canvas (timed in the page)
        page.evaluate(f"window.__segName = {json.dumps(photo.name)}")
        page.evaluate(WATCH)
        page.set_input_files("#segui-upload input[type=file]", str(photo))
        page.wait_for_function("window.__seg.visible !== null", timeout=60_000)
        elapsed = page.evaluate("window.__seg.visible") / 1000
        status_s = page.evaluate("window.__seg.status")
        page.screenshot(path=str(artifacts / "browser_1_mask_visible.png"))
        frac = overlay_fraction(shot(canvas))          # independent check on a real screenshot
        assert frac > 0.04, f"no overlay in the canvas screenshot (tinted share {frac:.3f})"
        (artifacts / "upload_to_mask.json").write_text(json.dumps(
            {"seconds": round(elapsed, 3), "image": photo.name, "size": "480x360",
             "server_response_seconds": None if status_s is None else round(status_s / 1000, 3),
             "measured": "set_input_files -> first animation frame whose editor canvas shows the mask"},
            indent=1))
        print(f"upload -> visible mask: {elapsed:.3f} s")
        page.wait_for_function("document.querySelector('#segui-status').innerText.includes('0016E5')")
        iid = st.store.list_images("browser test")[0].id
        pred = st.store.get_prediction(iid).class_map

        # where the 480x360 image lies on the canvas: the pixels unlike the canvas background
        page.wait_for_timeout(500)
        now = shot(canvas)
        # (the tool bar and the layer button float over the canvas: take rows/columns
        # that are mostly image)
        differs = np.abs(now - now[2, now.shape[1] // 2]).sum(-1) > 40
        left, right = longest_run(np.nonzero(differs.mean(0) > 0.5)[0])
        top, bottom = longest_run(np.nonzero(differs.mean(1) > 0.35)[0])
        scale = (right - left + 1) / 480
        assert abs((bottom - top + 1) / scale - 360) < 6, "the canvas does not show the image's aspect"
        box = canvas.bounding_box()

        def to_screen(x, y):
            return box["x"] + left + (x + 0.5) * scale, box["y"] + top + (y + 0.5) * scale

        # ---- pick the pedestrian colour and paint a horizontal stroke across the road
        page.click("#segui-editor button[aria-label=Color]")
        page.click("#segui-editor button.color[style*='rgb(64, 64, 0)']")
        page.click("#segui-editor button[aria-label=Brush]")
        y, x0, x1 = 300, 120, 360
        page.mouse.move(*to_screen(x0, y))
        page.mouse.down()
        for x in range(x0, x1 + 1, 8):
            page.mouse.move(*to_screen(x, y))
        page.mouse.up()
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "browser_2_stroke.png"))

        # ---- save and check what was stored
        page.click("#segui-save")
        page.wait_for_function("document.querySelector('#segui-status').innerText.includes('Saved revision 1')",
                               timeout=60_000)
        page.screenshot(path=str(artifacts / "browser_3_saved.png"))
        rev1 = st.store.get_annotation(iid).class_map

        # ---- superpixel fill: click the overlay image; the segment takes the tool class (sky)
        fx, fy = 240, 340
        img = page.locator("#segui-preview img").first
        b = img.bounding_box()
        s_ = min(b["width"] / 480, b["height"] / 360)
        ox, oy = (b["width"] - 480 * s_) / 2, (b["height"] - 360 * s_) / 2
        page.mouse.click(b["x"] + ox + (fx + 0.5) * s_, b["y"] + oy + (fy + 0.5) * s_)
        page.wait_for_function("document.querySelector('#segui-status').innerText.includes('Filled the superpixel')",
                               timeout=60_000)
        clicked = [int(v) for v in page.inner_text("#segui-status").split("superpixel at (")[1].split(")")[0]
                   .split(",")]
        # the editor re-loads its layer after a tool (about 2 s here); the labeller saves what
        # the canvas shows, so wait until the canvas shows the filled pixel in sky grey
        cx, cy = left + (clicked[0] + 0.5) * scale, top + (clicked[1] + 0.5) * scale
        page.wait_for_function(GREY_AT, arg=[cx, cy], timeout=60_000)
        page.click("#segui-save")
        page.wait_for_function("document.querySelector('#segui-status').innerText.includes('Saved revision 2')",
                               timeout=60_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(artifacts / "browser_4_superpixel_fill.png"))
        assert overlay_fraction(shot(canvas)) > 0.04, "the editor lost the mask after saving"

        # ---- two more uploads on the warm page, for the timing report
        more = []
        for other in sorted(DEMO_DIR.glob("*.jpg"))[1:3]:
            page.evaluate(f"window.__segName = {json.dumps(other.name)}")
            page.evaluate(WATCH)
            page.set_input_files("#segui-upload input[type=file]", str(other))
            page.wait_for_function("window.__seg.visible !== null && window.__seg.status !== null",
                                   timeout=60_000)
            more.append(round(page.evaluate("window.__seg.visible") / 1000, 3))
        report = json.loads((artifacts / "upload_to_mask.json").read_text())
        report["later_uploads_seconds"] = more
        (artifacts / "upload_to_mask.json").write_text(json.dumps(report, indent=1))
        page.screenshot(path=str(artifacts / "browser_5_third_upload.png"))
        browser.close()

    a = st.store.get_annotation(iid, 1)
    assert a.author == "labeller"
    cm = a.class_map
    np.testing.assert_array_equal(cm, rev1)
    assert (cm[y, x0 + 5:x1 - 5] == 9).all(), "the stroke's class is not stored under the stroke"
    changed = np.argwhere(cm != pred)
    assert len(changed) > (x1 - x0) * 3
    band = 25   # brush radius + antialiasing, in image pixels
    assert (np.abs(changed[:, 0] - y) <= band).all() and (changed[:, 1] >= x0 - band).all() \
        and (changed[:, 1] <= x1 + band).all(), "pixels away from the stroke differ from the prediction"
    assert (cm[changed[:, 0], changed[:, 1]] == 9).all()

    # revision 2 = revision 1 with the clicked superpixel set to sky (0)
    assert abs(clicked[0] - fx) <= 3 and abs(clicked[1] - fy) <= 3
    seg = st.segments(iid, st.store.load_image(iid))
    region = seg == seg[clicked[1], clicked[0]]
    rev2 = st.store.get_annotation(iid, 2).class_map
    assert (rev2[region] == 0).all() and region.sum() > 50
    np.testing.assert_array_equal(rev2[~region], rev1[~region])
