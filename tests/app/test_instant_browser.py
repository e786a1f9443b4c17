"""Instant adaptation in a real browser (Chromium, Playwright): Submit & next shows the image
prepared ahead at once, and the server's prediction made with the submit replaces its mask;
a stroke made before it arrives is kept under it, and Ctrl+Z takes the update back."""
from __future__ import annotations

import time

import numpy as np
import pytest

from segui.handlers import DEMO_DIR, Studio
from storage import Store

from .canvas_page import S, launch, open_page
from .conftest import _PREDICTORS, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

PAVEMENT, CAR = 4, 8                 # demo classes.json indices (keys 5 and 9)


def test_a_stroke_made_before_the_adapted_mask_arrives_is_kept_under_it(tmp_path, artifacts):
    from playwright.sync_api import sync_playwright
    require_chromium()
    st = Studio(Store(data_dir=tmp_path / "data"), predictors=_PREDICTORS, instant=True)
    st.ensure_demo(DEMO_DIR)                          # the 10 labelled frames are learnt at start
    assert st.wait_idle(180)
    real_wait = st.instant_wait

    def slow_wait(image_id, timeout=1.5):             # the answer comes late: the stroke is first
        done = real_wait(image_id, timeout)
        time.sleep(2.0)
        return done

    st.instant_wait = slow_wait
    mv = st.model_version(st.store.get_project("CamVid demo").id)
    with served(st) as url, sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        first = c.wait_image()
        page = c.page
        c.wait_idle()
        nxt = c.wait_ahead()
        assert "adapted to 10 corrections" in page.inner_text(".seg-info")
        # a big correction: the road region filled as pavement
        c.key("5")
        c.key("k")
        c.click(240, 340)
        assert (c.client_map() == PAVEMENT).mean() > 0.2
        c.key("Control+Enter")
        page.wait_for_function(f"() => {S}.img && {S}.img.id === {nxt}", timeout=30_000)
        before = c.client_map()                       # the mask prepared ahead, before the submit
        c.key("9")
        c.key("b")
        c.click(100, 200)                             # a dot of car while the server works
        stroked = c.client_map() != before
        assert 0 < stroked.sum() < 2000
        c.key("u")                                    # the uncertainty map of the mask prepared ahead
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'",
                               timeout=30_000)
        asked = sum(st.heat_stats.values())
        c.wait_status("This mask was just updated with your submit", timeout=60_000)
        c.wait_idle()
        assert "adapted to 11 corrections" in page.inner_text(".seg-info")
        after = c.client_map()
        pred = st.store.get_prediction(nxt, mv.id).class_map     # made with the submit learnt
        assert st.adapted_from(nxt, mv.id) == 11
        changed = pred != before
        assert changed.sum() > 200                    # the update changed the mask...
        assert (after[stroked] == CAR).all()          # ...not under the stroke
        assert np.array_equal(after[~stroked], pred[~stroked])
        page.screenshot(path=str(artifacts / "instant_merge.png"))
        c.key("u")                                    # hidden, shown again: asked again, the mask having changed
        c.key("u")
        page.wait_for_function("() => document.querySelector('.seg-root').dataset.heatKind === 'uncertainty'",
                               timeout=30_000)
        c.wait_status("Uncertainty", timeout=30_000)
        assert sum(st.heat_stats.values()) == asked + 1
        assert "11 corrections" in page.inner_text(".seg-heat-note")
        c.key("Escape")
        c.key("Control+z")                            # the update, taken back: the stroke stays
        c.frame()
        undone = c.client_map()
        assert (undone[stroked] == CAR).all() and np.array_equal(undone[~stroked], before[~stroked])
        assert first != nxt
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"
