"""A whole round of the loop in the first-start demo, in Chromium, as a new user does it
(issue 10): correct the first image's mask and submit it (its split is set
automatically), fine-tune from the Model screen (the app's local worker trains in its
own process), watch the job end and the version list follow without re-picking the
project, then go back to labelling: the next image shows the promoted model's mask.
How much that mask improves is measured by benchmarks/bench_demo_round.py.
Screenshots go to test-artifacts/."""
from __future__ import annotations

import re

import numpy as np
import pytest

from jobs.worker import LocalWorker
from segui.handlers import DEMO_PROJECT

from .canvas_page import launch, open_page
from .conftest import make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

ROAD = 3


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    require_chromium()
    st = make_studio(tmp_path_factory.mktemp("demo_round"), demo=True)
    st.warm_up()
    with served(st) as url, LocalWorker(st.store.url, st.store.data_dir, poll_seconds=0.5):
        yield st, url


def test_a_whole_round_in_the_demo(demo_app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url = demo_app
    base = st.store.active_model_version(DEMO_PROJECT)
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        page = c.page
        first = c.wait_image()
        c.wait_idle()
        assert first == st.next_image(DEMO_PROJECT)            # the most uncertain image first
        # the labeller corrects the mask: a road stroke along the bottom, then submits
        c.key("b")
        c.key(str(ROAD + 1))
        c.stroke([(120, 340), (240, 345), (360, 340)], steps=6)
        c.wait_idle()
        page.click(".seg-submit")
        page.wait_for_function(f"() => document.querySelector('.seg-root').dataset.imageShown != '{first}'",
                               timeout=60_000)
        second = c.wait_image()
        c.wait_idle()
        assert second != first
        info = st.store.get_image(first)
        assert info.status == "submitted" and info.split == "train"   # split set by the automatic rule
        a = st.store.get_annotation(first)
        assert a.author == "labeller" and (a.class_map[340, 120:360] == ROAD).all()

        # the Model screen: 5 train and 6 val images, so a job can be promoted by itself
        page.locator("button[role=tab]:has-text('Model')").first.click()
        page.wait_for_function("() => document.body.innerText.includes('Submitted annotations: 5 train, 6 val')",
                               timeout=60_000)
        assert "promoted when its mIoU on the 6 val images" in page.inner_text("body")
        panel = page.locator("#segui-finetune-panel")
        cancel = panel.locator("#segui-finetune-cancel")
        assert cancel.is_disabled()                           # nothing to cancel yet
        panel.locator("#segui-finetune-start").click()        # the default job (100 epochs of one step here, ~20 s)
        page.wait_for_function("() => !document.querySelector('#segui-finetune-cancel').disabled", timeout=30_000)
        page.wait_for_function(
            "() => /Job \\d+: (succeeded|failed|cancelled)/.test(document.querySelector('#segui-finetune-status').innerText)",
            timeout=300_000)
        page.wait_for_function("() => document.querySelector('#segui-finetune-cancel').disabled", timeout=30_000)
        status = page.inner_text("#segui-finetune-status")
        job = st.store.list_jobs(DEMO_PROJECT)[0]
        assert job.status == "succeeded", (status, job.error)
        assert job.metrics["train_images"] == 5
        m = re.search(r"val mIoU (\d\.\d{3}) -> (\d\.\d{3}) \(promoted\)", status)
        assert m, status                                        # the demo's first job is promoted
        assert float(m.group(2)) >= float(m.group(1))
        active = st.store.active_model_version(DEMO_PROJECT)
        assert active.id == job.result_version_id != base.id
        # the version list followed the job without re-picking the project: the new version, active
        page.wait_for_function("v => document.querySelector('#segui-versions input').value.startsWith(v)",
                               arg=f"v{active.id}: ", timeout=30_000)
        assert page.input_value("#segui-versions input").endswith("(active)")
        page.screenshot(path=str(artifacts / "demo_round_model.png"), full_page=True)

        # back to labelling: the queue was predicted again with the promoted model
        assert st.wait_idle(120)
        page.locator("button[role=tab]:has-text('Label')").first.click()
        page.wait_for_selector(".seg-view", state="visible")
        c.wait_idle()
        moved = f"() => document.querySelector('.seg-root').dataset.imageShown != '{second}'"
        c.key("n")
        try:
            page.wait_for_function(moved, timeout=20_000)
        except Exception:        # a key pressed while the tab was still coming in (a loaded CI machine)
            c.wait_idle()
            c.key("n")
            page.wait_for_function(moved, timeout=60_000)
        c.wait_image()
        c.wait_idle()
        # Next shows the image the page prepared before the job at once, with the old model's
        # mask; the server's answer then replaces that mask (or opens another image, if the
        # queue's pick moved with the new predictions): wait for the page to settle on it
        page.wait_for_function("t => { const s = (document.querySelector('.seg-info') || {}).title || ''; "
                               "return s === t || s.startsWith(t + ','); }",   # (+ the instant layer's fit)
                               arg=f"prediction of model version {active.id}", timeout=60_000)
        c.wait_idle()
        shown = c.state()["image"]
        assert shown not in (first, second)
        pred = st.store.get_prediction(shown, active.id)
        assert pred is not None                                 # predicted by the new model
        np.testing.assert_array_equal(c.client_map(), pred.class_map)
        page.screenshot(path=str(artifacts / "demo_round_next.png"))
        browser.close()
    assert not c.errors, f"JavaScript errors in the page: {c.errors}"
