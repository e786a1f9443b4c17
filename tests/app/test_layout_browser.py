"""The Label screen's side panel at 1440x900 (issue 18): a project with 14 classes shows
every class row and the Save and Submit buttons without scrolling, whatever the smart
tools and a long status message take; a status that stops being true goes away
("Superpixels are still loading..." once they arrived). Chromium via Playwright, as
test_browser.py; screenshots in test-artifacts/.
"""
from __future__ import annotations

import threading

import pytest

from segui.handlers import DEMO_DIR

from .canvas_page import launch, open_page
from .conftest import make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

PROJECT = "fourteen classes"
CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The only project (so the page opens it): 14 classes, the demo's 4 street photos;
    the superpixels of an image are held back until the test lets them go."""
    require_chromium()
    st = make_studio(tmp_path_factory.mktemp("layout"))
    st.create_project(PROJECT, "\n".join(CLASSES))
    st.upload(PROJECT, sorted(DEMO_DIR.glob("*.jpg")))
    st.wait_idle(60)
    gate = threading.Event()
    segments = st.segments

    def held_segments(image_id, image):
        gate.wait(60)
        return segments(image_id, image)

    st.segments = held_segments
    with served(st) as url:
        yield st, url, gate
    gate.set()


@pytest.fixture(scope="module")
def cv(app):
    from playwright.sync_api import sync_playwright
    _, url, _ = app
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


def test_fourteen_classes_save_and_submit_are_in_view_at_1440x900(cv, app, artifacts):
    page = cv.page
    assert page.viewport_size == {"width": 1440, "height": 900}
    names = page.locator(".seg-classes .seg-name").all_inner_texts()
    assert [n for n in names if n in CLASSES] == CLASSES, names
    page.screenshot(path=str(artifacts / "label_14_classes.png"))
    assert in_view(cv, ".seg-classes .seg-class") == []
    assert in_view(cv, ".seg-save, .seg-submit") == []
    for sel in (".seg-save", ".seg-submit"):   # Playwright's own box, as the brief measures it
        box = page.locator(sel).bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= 900, (sel, box)
    # the image is still drawn large (the canvas test's bar)
    s = cv.state()
    assert s["view"]["s"] * 480 >= 900
    # a long status message (three lines) and the open smart tools push nothing out
    cv.js("""() => document.querySelector('.seg-root').__seg.setStatus(
        'A long message: ' + 'the server said something that takes several lines to say. '.repeat(3), 'warning')""")
    assert page.locator(".seg-tools").get_attribute("open") is not None
    page.screenshot(path=str(artifacts / "label_14_classes_long_status.png"))
    assert in_view(cv, ".seg-classes .seg-class") == []
    assert in_view(cv, ".seg-save, .seg-submit") == []
    # the smart tools still work: they scroll into view inside their own box
    page.locator(".seg-cleanup").scroll_into_view_if_needed()
    assert in_view(cv, ".seg-cleanup") == []
    assert in_view(cv, ".seg-save, .seg-submit") == []
    cv.js("() => document.querySelector('.seg-root').__seg.setStatus('')")


def test_the_superpixels_loading_message_goes_when_they_arrive(cv, app, artifacts):
    _, _, gate = app
    page = cv.page
    assert cv.state()["seg"] is False   # held back by the fixture
    cv.key("s")
    cv.key("3")                          # building, on the road
    cv.click(200, 300)
    cv.wait_status("Superpixels are still loading")
    page.screenshot(path=str(artifacts / "label_superpixels_loading.png"))
    assert cv.state()["steps"] == 0
    gate.set()
    cv.wait_superpixels()
    page.wait_for_function("() => document.querySelector('.seg-root').__seg.S.history.pos === 1")
    status = cv.state()["status"]
    assert "still loading" not in status and "applied" in status, status
    page.screenshot(path=str(artifacts / "label_superpixels_arrived.png"))
