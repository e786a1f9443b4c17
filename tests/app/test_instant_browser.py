"""Instant adaptation in a real browser (Chromium, Playwright): Submit & next shows the image
prepared ahead at once, and the server's prediction made with the submit replaces its mask;
a stroke made before it arrives is kept under it, and Ctrl+Z takes the update back."""
from __future__ import annotations

import contextlib
import re
import time

import numpy as np
import pytest

from segui.handlers import DEMO_DIR, Studio
from storage import Store

from .canvas_page import S, launch, open_page
from .conftest import _PREDICTORS, make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

PAVEMENT, CAR = 4, 8                 # demo classes.json indices (keys 5 and 9)


@contextlib.contextmanager
def page_on(st: Studio):
    """Studio ``st``'s app served and a Chromium page on it, its first image shown:
    (CanvasPage, that image's id)."""
    from playwright.sync_api import sync_playwright
    with served(st) as url, sync_playwright() as pw:
        browser = launch(pw)
        try:
            c = open_page(browser, url)
            first = c.wait_image()
            c.wait_idle()
            yield c, first
        finally:
            browser.close()


def test_a_stroke_made_before_the_adapted_mask_arrives_is_kept_under_it(tmp_path, artifacts):
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
    with page_on(st) as (c, first):
        page = c.page
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
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"


def test_a_model_made_active_reaches_the_image_open_on_screen(tmp_path, artifacts):
    """A job queued, running, and ended unpromoted shows in the header and the status; a job
    promoted (here: a version activated in the store, as the worker does) while an image is
    open: the page hears it with its heartbeat. Unedited, the image is opened again
    with the new version's prediction and the status says so; while the labeller edits, only
    the status says so and their strokes stay."""
    require_chromium()
    st = make_studio(tmp_path, demo=True, labelled=False)
    st.warm_up()
    pid = st.store.get_project("CamVid demo").id
    v1 = st.model_version(pid)
    with page_on(st) as (c, first):
        page = c.page
        assert c.js(f"() => {S}.img.version") == v1.id and c.js(f"() => {S}.img.revision") == 0
        page.wait_for_function(f"() => {S}.modelSeen && {S}.modelSeen.id === {v1.id}", timeout=30_000)
        # a job under way shows in the header; one that ends without promotion is told
        job = st.store.create_job(pid, {})
        page.wait_for_function(f"() => document.querySelector('.seg-info').textContent.includes('fine-tuning job {job.id} queued')",
                               timeout=30_000)
        st.store.claim_job()
        st.store.update_job(job.id, progress=0.42)
        page.wait_for_function(f"() => document.querySelector('.seg-info').textContent.includes('fine-tuning job {job.id}: 42 %')",
                               timeout=30_000)
        page.screenshot(path=str(artifacts / "model_job_under_way.png"))
        st.store.finish_job(job.id, "succeeded", metrics={"val_miou": 0.5, "base_val_miou": 0.6, "promoted": False})
        c.wait_status(f"job {job.id} finished, but its model was not made active (val mIoU dropped)", timeout=30_000)
        assert "fine-tuning" not in page.inner_text(".seg-info")
        assert c.js(f"() => {S}.img.version") == v1.id
        # while the server prepares the new version (the instant layer's rebuild) the header says so
        hold, real = [True], st.active_version
        st.active_version = lambda project: {**real(project), "ready": False} if hold[0] else real(project)
        v2 = st.store.add_model_version(pid, v1.weights_dir, parent_id=v1.id, activate=True, name="job 1")
        page.wait_for_function(f"() => document.querySelector('.seg-info').textContent.includes('v{v2.id} made active: adapting')",
                               timeout=30_000)
        assert c.js(f"() => {S}.img.version") == v1.id
        hold[0] = False
        c.wait_status(f"v{v2.id} is now the active model", timeout=30_000)
        assert "made active" not in page.inner_text(".seg-info")
        page.wait_for_function(f"() => {S}.img.version === {v2.id}", timeout=30_000)
        c.wait_status("this image shows its prediction", timeout=30_000)
        assert c.state()["image"] == first and not c.state()["dirty"]
        assert f"model version {v2.id}" in c.js(f"() => {S}.img.source")
        page.screenshot(path=str(artifacts / "model_made_active_reopened.png"))
        # editing now: the strokes stay, the status tells
        c.key("1")
        c.key("b")
        c.stroke([(40, 60), (200, 60)], steps=6)
        drawn = c.client_map()
        v3 = st.store.add_model_version(pid, v1.weights_dir, parent_id=v2.id, activate=True, name="job 2")
        c.wait_status(f"v{v3.id} is now the active model", timeout=30_000)
        c.wait_status("this one keeps your edits", timeout=5_000)
        assert np.array_equal(c.client_map(), drawn) and c.state()["dirty"]
        assert c.js(f"() => {S}.img.version") == v2.id
        assert not c.errors, c.errors


def test_an_open_image_takes_a_submit_learnt_after_it_was_predicted(tmp_path, artifacts):
    """Another labeller's submit (or one learnt after Submit & next stopped waiting, or a
    restart's rebuild) is learnt while an image is open unedited: the heartbeat names the
    newer adapter and the page opens the image again, predicted with it, and says so."""
    require_chromium()
    st = Studio(Store(data_dir=tmp_path / "data"), predictors=_PREDICTORS, instant=True)
    st.ensure_demo(DEMO_DIR)                          # the 10 labelled frames are learnt at start
    assert st.wait_idle(180)
    pid = st.store.get_project("CamVid demo").id
    mv = st.model_version(pid)
    with page_on(st) as (c, first):
        page = c.page
        assert "adapted to 10 corrections" in page.inner_text(".seg-info")
        before = c.client_map()
        # someone else submits another image: its road called pavement
        other = next(im.id for im in st.store.list_images(pid, order="id")
                     if im.status == "unlabelled" and im.id != first)
        loaded = st.prepare(other).loaded
        cm = loaded.class_map.copy()
        cm[cm == 3] = PAVEMENT                        # (3: road)
        st.save_edits(loaded, cm, "someone", "submitted")
        c.wait_status("predicted again with the corrections learnt since it was made: ", timeout=60_000)
        c.wait_idle()
        assert c.state()["image"] == first and not c.state()["dirty"]
        assert "adapted to 11 corrections" in page.inner_text(".seg-info")
        after = c.client_map()
        assert st.adapted_from(first, mv.id) == 11
        assert np.array_equal(after, st.store.get_prediction(first, mv.id).class_map)
        changed = int((after != before).sum())
        assert changed > 0
        assert re.search(r"since it was made: [\d.]+[kM]? px changed", c.state()["status"]), c.state()["status"]
        page.screenshot(path=str(artifacts / "instant_reopened.png"))
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"
