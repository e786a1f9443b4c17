"""Playwright helpers for the Label screen's mask canvas (used by the browser tests
and by benchmarks/bench_canvas.py). Reads the page's own state through the handle
the canvas leaves on its root element (``.seg-root.__seg``)."""
from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

S = "document.querySelector('.seg-root').__seg.S"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def open_page(browser, url: str) -> "CanvasPage":
    """A 1440x900 page on ``url``; the page's JavaScript errors collect in ``.errors``."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    c = CanvasPage(page)
    c.errors = []
    page.on("pageerror", lambda e: c.errors.append(str(e)))
    page.goto(url)
    return c


def submit_login(page, name: str, password: str) -> None:
    """Fill Gradio's login form on ``page`` and wait for the app's canvas."""
    page.locator("input[type=text]").first.fill(name)
    page.locator("input[type=password]").first.fill(password)
    page.locator("button:has-text('Login')").first.click()
    page.wait_for_selector(".seg-root", timeout=60_000)


@contextlib.contextmanager
def canvas_session(url: str):
    """Chromium with one 1440x900 page on ``url`` whose image is shown (the module
    fixture of the browser tests); on leaving, the browser closes and the page must
    have had no JavaScript error."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        c.wait_image()
        yield c
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"


def in_view(c, selector: str) -> list[str]:
    """The elements of ``selector`` not wholly visible: outside the 1440x900 viewport or
    cut off by a scrolling box around them (a class list that scrolls, a side panel)."""
    return c.js("""(sel) => {
        const out = [];
        for (const el of document.querySelectorAll(sel)) {
            const r = el.getBoundingClientRect();
            let ok = r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
            for (let p = el.parentElement; ok && p; p = p.parentElement) {
                const s = getComputedStyle(p);
                if (!/(auto|scroll|hidden)/.test(s.overflowY + s.overflowX)) continue;
                const q = p.getBoundingClientRect();
                ok = r.top >= q.top - 0.5 && r.bottom <= q.bottom + 0.5 && r.left >= q.left - 0.5 && r.right <= q.right + 0.5;
            }
            if (!ok) out.push((el.textContent || el.className).trim().slice(0, 40));
        }
        return out;
    }""", selector)


class CanvasPage:
    def __init__(self, page):
        self.page = page

    # ---------------------------------------------------------------- state
    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def state(self) -> dict:
        return self.js(f"""() => {{ const S = {S}; return {{
            image: S.img && S.img.id, tool: S.tool, active: S.active, size: S.size, opacity: S.opacity,
            mask: S.maskVisible, view: S.view, pending: S.pending.size, nav: S.navPending,
            undo: S.history.canUndo, redo: S.history.canRedo, steps: S.history.pos, dirty: S.map ? S.history.isDirty() : false,
            seg: !!S.seg, protect: S.protect, polygon: S.polygon.length, frames: S.frames,
            ahead: S.ahead ? S.ahead.doc.img.id : null, optimistic: !!S.optimistic,
            status: document.querySelector('.seg-status').textContent }} }}""")

    def client_map(self) -> np.ndarray:
        b64, w, h = self.js(f"""() => {{ const S = {S}; const d = S.map.data; let s = '';
            for (let i = 0; i < d.length; i += 32768) s += String.fromCharCode.apply(null, d.subarray(i, i + 32768));
            return [btoa(s), S.map.width, S.map.height]; }}""")
        return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w).copy()

    def counts(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.js(f"() => Object.fromEntries([...{S}.map.counts.entries()].filter(e => e[1] > 0))").items()}

    # ---------------------------------------------------------------- waiting
    def wait_image(self, image_id: int | None = None, timeout: float = 60_000):
        if image_id is None:
            self.page.wait_for_function(f"() => {{ const r = document.querySelector('.seg-root'); return r && r.__seg && {S}.img && r.dataset.imageShown == {S}.img.id; }}", timeout=timeout)
        else:
            self.page.wait_for_function(f"() => {{ const r = document.querySelector('.seg-root'); return r && r.__seg && r.dataset.imageShown == '{int(image_id)}'; }}", timeout=timeout)
        return self.state()["image"]

    def wait_moved_on(self, from_id: int, timeout: float = 60_000):
        """After Submit & next (or Next): wait until the page shows another image than
        ``from_id`` and is idle. (``wait_idle`` alone can return before the request is
        made: the page first waits up to a second for the image it is preparing ahead.)"""
        self.page.wait_for_function(f"() => {{ const r = document.querySelector('.seg-root'); return r && r.dataset.imageShown && r.dataset.imageShown != '{int(from_id)}'; }}", timeout=timeout)
        self.wait_idle(timeout)
        return self.state()["image"]

    def wait_superpixels(self, timeout: float = 60_000):
        self.page.wait_for_function(f"() => {S}.seg !== null && {S}.img && document.querySelector('.seg-root').dataset.superpixels == {S}.img.id", timeout=timeout)

    def wait_idle(self, timeout: float = 60_000):
        self.page.wait_for_function(f"() => {S}.pending.size === 0 && {S}.navPending === null", timeout=timeout)

    def wait_ahead(self, timeout: float = 60_000):
        """Wait until the page has the image Next would open decoded and ready: what Next
        itself checks (``Nav.aheadReady``: for the open image and queue, no move under way)."""
        self.page.wait_for_function(
            f"() => {S}.ahead !== null && document.querySelector('.seg-root').__seg.Nav.aheadReady({S})", timeout=timeout)
        return self.state()["ahead"]

    def wait_status(self, text: str, timeout: float = 60_000):
        # (no status element while the page reloads: wait on)
        self.page.wait_for_function("t => (document.querySelector('.seg-status') || {textContent: ''}).textContent.includes(t)", arg=text,
                                    timeout=timeout)

    def frame(self):
        """Wait for the next drawn frame of the canvas."""
        n = self.state()["frames"]
        self.page.wait_for_function(f"() => {S}.frames > {n} || !{S}.renderQueued", timeout=10_000)

    # ---------------------------------------------------------------- geometry and input
    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        """Image coordinates (pixel centres at +0.5) -> page coordinates."""
        return tuple(self.js(f"""([x, y]) => {{ const S = {S}; const r = document.querySelector('.seg-view').getBoundingClientRect();
            return [r.left + S.view.ox + x * S.view.s, r.top + S.view.oy + y * S.view.s]; }}""", [x, y]))

    def click(self, x: float, y: float, **kw):
        self.page.mouse.click(*self.to_screen(x, y), **kw)

    def stroke(self, points: list[tuple[float, float]], steps: int = 1):
        m = self.page.mouse
        m.move(*self.to_screen(*points[0]))
        m.down()
        for p in points[1:]:
            m.move(*self.to_screen(*p), steps=steps)
        m.up()

    def key(self, combo: str):
        self.page.keyboard.press(combo)

    def canvas_rgb(self, x: float, y: float) -> tuple[int, int, int]:
        """The colour the view canvas shows at image point (x, y)."""
        return tuple(self.js(f"""([x, y]) => {{ const S = {S}; const c = document.querySelector('.seg-view');
            const dpr = c.width / c.clientWidth;
            const px = Math.floor((S.view.ox + x * S.view.s) * dpr), py = Math.floor((S.view.oy + y * S.view.s) * dpr);
            return Array.from(c.getContext('2d').getImageData(px, py, 1, 1).data.slice(0, 3)); }}""", [x, y]))
