"""The word heatmap on the Label screen in a real browser (Chromium, Playwright) against
the launched demo app: type "sky", show its map, W and Esc, the image changing.
The screenshot goes to test-artifacts/heatmap.png."""
from __future__ import annotations

import numpy as np
import pytest

from .canvas_page import S, launch, open_page
from .conftest import make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_chromium()
    st = make_studio(tmp_path_factory.mktemp("heatmap"), demo=True)
    st.warm_up()
    with served(st) as url:
        yield st, url


def assert_same_map(shown: np.ndarray, server: np.ndarray) -> None:
    """The page shows the server's map. Computed again in the test's thread, it may differ by
    one quantisation step on a few pixels: a torch thread's own OpenMP thread count changes
    the float sums' order, hence their last bits (seen once in CI, 2026-12-07)."""
    assert shown.shape == server.shape
    diff = np.abs(shown.astype(np.int16) - server.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (int(diff.max()), float((diff > 0).mean()))


def overlay(c) -> np.ndarray:
    """The heat layer's RGBA pixels (the offscreen canvas the view draws)."""
    w, h, data = c.js("""() => { const cv = document.querySelector('.seg-root').__seg.heatCanvas;
        return [cv.width, cv.height, Array.from(cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data)]; }""")
    return np.array(data, np.uint8).reshape(h, w, 4)


def test_sky_heatmap_over_the_photo(app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url = app
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        image = c.wait_image()
        page = c.page
        page.fill(".seg-heat-phrase", "sky")
        page.click(".seg-heat-show")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === 'sky'", timeout=60_000)
        assert page.is_visible(".seg-heatbar") and page.inner_text(".seg-heat-name") == "sky"
        rgba = overlay(c)
        info = st.store.get_image(image)
        assert rgba.shape[:2] == (info.height, info.width)
        assert (rgba[..., 3] > 0).mean() > 0.99                     # drawn everywhere, nothing transparent
        h = rgba.shape[0]
        heat = rgba[..., :2].astype(float).sum(-1)                   # viridis: R+G rises with the value
        top, bottom = heat[: h // 5].mean(), heat[-h // 5:].mean()
        assert top > bottom + 60, (top, bottom)
        # the page's values are the server's map
        vals = np.array(c.js(f"() => Array.from({S}.heat.values)"), np.uint8).reshape(info.height, info.width)
        assert_same_map(vals, st.word_heatmap(image, "sky"))
        page.screenshot(path=str(artifacts / "heatmap.png"))

        # W hides it, W again shows the typed word, Esc hides it
        page.click(".seg-view")
        page.keyboard.press("w")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === ''")
        assert not page.is_visible(".seg-heatbar")
        page.keyboard.press("w")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === 'sky'")
        page.keyboard.press("Escape")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === ''")

        # a phrase outside the label set, then another image: the map goes
        page.fill(".seg-heat-phrase", "white van")
        page.press(".seg-heat-phrase", "Enter")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === 'white van'", timeout=60_000)
        assert "label set" in page.inner_text(".seg-heat-note")
        page.click(".seg-view")
        page.keyboard.press("n")
        page.wait_for_function(f"() => {S}.img && {S}.img.id !== {int(image)}", timeout=60_000)
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heat === ''")
        assert not page.is_visible(".seg-heatbar")
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"


def boundary_and_interior(cm: np.ndarray, near: int = 2, far: int = 10):
    """Masks of the pixels within ``near`` of a class boundary of ``cm`` and of those
    more than ``far`` from any (inside large regions)."""
    def grow(m):                                  # one step of a 3x3 dilation
        out = m.copy()
        out[1:] |= m[:-1]
        out[:-1] |= m[1:]
        out[:, 1:] |= out[:, :-1]
        out[:, :-1] |= out[:, 1:].copy()
        return out

    edge = np.zeros(cm.shape, bool)
    edge[:, 1:] |= cm[:, 1:] != cm[:, :-1]
    edge[1:, :] |= cm[1:, :] != cm[:-1, :]
    zone = edge
    for step in range(far):
        zone = grow(zone)
        if step + 1 == near:
            near_mask = zone
    return near_mask, ~zone


def test_uncertainty_overlay_with_u(app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url = app
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        image = c.wait_image()
        page = c.page
        page.click(".seg-view")
        page.keyboard.press("u")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'",
                               timeout=60_000)
        assert page.is_visible(".seg-heatbar") and page.inner_text(".seg-heat-name") == "uncertainty"
        assert "mean" in page.inner_text(".seg-heat-note")
        info = st.store.get_image(image)
        rgba = overlay(c)
        assert rgba.shape[:2] == (info.height, info.width) and (rgba[..., 3] > 0).mean() > 0.99
        vals = np.array(c.js(f"() => Array.from({S}.heat.values)"), np.uint8).reshape(info.height, info.width)
        assert_same_map(vals, st.uncertainty_map(image)["map"])     # the page shows the server's map
        # the model is unsure on the borders of its own classes, sure inside large regions
        pred = np.array(c.js(f"() => Array.from({S}.pred)"), np.uint8).reshape(info.height, info.width)
        edge, inside = boundary_and_interior(pred)
        assert edge.mean() > 0.01 and inside.mean() > 0.2, (edge.mean(), inside.mean())
        on_edge, on_inside = vals[edge].mean() / 255, vals[inside].mean() / 255
        assert on_edge > 1.5 * on_inside, (on_edge, on_inside)
        page.screenshot(path=str(artifacts / "uncertainty.png"))

        # U again hides it; U, then Esc; W switches to a word map; then another image
        page.keyboard.press("u")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === ''")
        assert not page.is_visible(".seg-heatbar")
        page.keyboard.press("u")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'")
        page.keyboard.press("Escape")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === ''")
        page.keyboard.press("u")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'")
        page.keyboard.press("n")
        page.wait_for_function(f"() => {S}.img && {S}.img.id !== {int(image)}", timeout=60_000)
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === ''")
        assert not page.is_visible(".seg-heatbar")
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"


def test_c_names_the_instant_layers_corrections(app, monkeypatch):
    """With one model version, an image the instant layer predicted: C says how many
    corrections its map came from (the instant layer itself is tested in test_adapting;
    here the count is given, the model's own map is the one shown, so 0 px changed)."""
    from playwright.sync_api import sync_playwright
    st, url = app
    monkeypatch.setattr(st, "adapted_from", lambda image_id, version_id=None: 3)
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        c.wait_image()
        page = c.page
        page.keyboard.press("c")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'changed'",
                               timeout=60_000)
        note = page.inner_text(".seg-heat-note")
        assert note.startswith("v1 + 3 corrections: 0 px"), note
        assert "instant layer" in page.get_attribute(".seg-heat-name", "title")
        assert "learnt from 3 corrections" in page.inner_text(".seg-root"), page.inner_text(".seg-root")[:500]
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"


def test_what_changed_with_c(app, artifacts):
    """A second model version (the shipped weights again) made active, its stored
    prediction of the open image differing on a block: C shows those pixels and the
    class pairs. Last in the module: it changes the demo project's active model."""
    from playwright.sync_api import sync_playwright
    st, url = app
    from segui.handlers import DEMO_PROJECT
    p = st.store.get_project(DEMO_PROJECT)
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        image = c.wait_image()
        page = c.page
        v1 = st.model_version(p.id)
        v2 = st.store.add_model_version(p.id, v1.weights_dir, name="tuned (test)")
        st.activate_model(p.name, v2.id)
        a = st.store.get_prediction(image, v1.id).class_map      # the open image was predicted with v1
        b = a.copy()
        road = next(cl.index for cl in p.classes if cl.name == "road")
        b[:120, :200] = road
        st.store.save_prediction(image, v2.id, b, 0.3)
        changed = a != b
        page.click(".seg-view")
        page.keyboard.press("c")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'changed'",
                               timeout=60_000)
        assert page.inner_text(".seg-heat-name") == "changed"
        note = page.inner_text(".seg-heat-note")
        assert f"v{v1.id}→v{v2.id}" in note and f"{int(changed.sum())} px" in note and "→road" in note, note
        info = st.store.get_image(image)
        vals = np.array(c.js(f"() => Array.from({S}.heat.values)"), np.uint8).reshape(info.height, info.width)
        assert np.array_equal(vals > 127, changed)
        assert not page.is_visible(".seg-heat-scale")
        page.screenshot(path=str(artifacts / "what_changed.png"))
        page.keyboard.press("c")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === ''")
        page.keyboard.press("u")                      # the scale comes back for a map with one
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'",
                               timeout=60_000)
        assert page.is_visible(".seg-heat-scale")
        page.keyboard.press("Escape")
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"
