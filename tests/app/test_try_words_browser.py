"""The Try words view in a real browser (Chromium, Playwright) on an app with no
project: drop a demo street image, type words, press Show; each word's heatmap
covers where the segmentation gives that word. Screenshots go to
test-artifacts/try_words*.png."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from segui.handlers import DEMO_DIR
from segui.imageops import VIRIDIS

from .canvas_page import launch, open_page
from .conftest import make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

WORDS = ["sky", "road", "building", "tree", "car"]

PIXELS = """(sel) => { const img = document.querySelector(sel);
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const x = c.getContext('2d'); x.drawImage(img, 0, 0);
  const d = x.getImageData(0, 0, c.width, c.height).data; let s = '';
  for (let i = 0; i < d.length; i += 32768) s += String.fromCharCode.apply(null, d.subarray(i, i + 32768));
  return [c.width, c.height, btoa(s)]; }"""


def pixels(page, sel) -> np.ndarray:
    w, h, b64 = page.evaluate(PIXELS, sel)
    return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 4)


def rg(p: float) -> int:
    """Red + green of the heat colour of probability ``p`` (viridis: it rises with p)."""
    c = VIRIDIS[round(p * 255)]
    return int(c[0]) + int(c[1])


def swatch(page, word) -> tuple[int, int, int]:
    rgb = page.evaluate("(w) => getComputedStyle(document.querySelector(`.tw-legend li[data-word=\"${w}\"] "
                        ".tw-swatch`)).backgroundColor", word)
    return tuple(int(v) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(","))


def test_try_words_with_no_project(tmp_path, artifacts):
    require_chromium()
    from playwright.sync_api import sync_playwright
    st = make_studio(tmp_path)                        # an empty database: no project
    with served(st) as url, sync_playwright() as pw:
        assert st.store.list_projects() == []
        browser = launch(pw)
        c = open_page(browser, url)   # (its JavaScript errors collect in c.errors)
        page = c.page
        page.get_by_role("tab", name="Try words").click()
        page.set_input_files("#segui-try-image input[type=file]", str(DEMO_DIR / "0016E5_08009.jpg"))
        page.wait_for_selector("#segui-try-image img", timeout=30_000)
        page.locator("#segui-try-words textarea, #segui-try-words input").first.fill(", ".join(WORDS))
        page.click("#segui-try-show")
        page.wait_for_function("() => document.querySelectorAll('.tw-tile').length === 5", timeout=120_000)
        page.wait_for_function("() => document.querySelector('#segui-try-view').dataset.busy === ''")   # undimmed
        assert page.inner_text(".tw-legend").split()[::2] == WORDS          # "sky 9%" ...: the words in order
        mask = pixels(page, ".tw-mask")
        assert mask.shape[:2] == (360, 480) and (mask[..., 3] == 255).all()
        for word in ("sky", "road", "car"):
            heat = pixels(page, f'.tw-tile[data-word="{word}"] .tw-heat').astype(int)
            assert heat.shape == mask.shape
            region = (mask[..., :3] == swatch(page, word)).all(-1)
            assert 0.01 < region.mean() < 0.6, (word, region.mean())
            value = heat[..., 0] + heat[..., 1]                  # viridis: red + green rise with the probability
            inside, outside = np.median(value[region]), np.median(value[~region])
            # where the segmentation says the word its map is hot (> 0.75 on the bar), elsewhere cold (< 0.25)
            assert inside > rg(0.75) and outside < rg(0.25), (word, inside, outside)
            # and above one half almost everywhere there (a region's edge pixels are shared among
            # the words: car 89% since the decoder fix of 2026-12-06 grew the car regions to their edges)
            assert (value[region] > rg(0.5)).mean() > 0.85, word
        page.screenshot(path=str(artifacts / "try_words.png"))
        page.locator("#segui-try-view").screenshot(path=str(artifacts / "try_words_view.png"))
        # on a projector-sized screen the legend and the captions stay large
        size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.tw-legend li')).fontSize)")
        assert size >= 24
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"
