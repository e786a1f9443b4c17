"""The Label screen's side panel at 1440x900 (issue 18): a project with 14 classes shows
every class row and the Save and Submit buttons without scrolling, whatever the smart
tools and a long status message take; a status that stops being true goes away
("Superpixels are still loading..." once they arrived). Chromium via Playwright, as
test_browser.py; screenshots in test-artifacts/.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from segui.handlers import DEMO_DIR

from .canvas_page import canvas_session, in_view
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
    with canvas_session(app[1]) as c:
        yield c


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


def test_at_1280x800_the_toolbar_wraps_and_everything_stays_in_view(cv, app, artifacts):
    page = cv.page
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        page.wait_for_function("() => document.querySelector('.seg-toolbar').offsetHeight > 40")   # a second row
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "label_1280x800.png"))
        assert in_view(cv, ".seg-toolbar > *") == []          # no tool out of sight (it used to scroll)
        assert in_view(cv, ".seg-nav > *, .seg-save, .seg-submit") == []
    finally:
        page.set_viewport_size({"width": 1440, "height": 900})
        page.wait_for_function("() => document.querySelector('.seg-toolbar').offsetHeight < 40")


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


# ---------------------------------------------------------------------------- the image strip

STRIP_COLOURS = {"unlabelled": "rgb(156, 163, 175)", "draft": "rgb(217, 119, 6)", "submitted": "rgb(22, 163, 74)"}


def strip_items(c) -> list[dict]:
    return c.js("""() => [...document.querySelectorAll('.seg-strip .seg-thumb')].map(el => ({
        id: +el.dataset.open, status: el.dataset.status, current: el.classList.contains('is-current'),
        name: el.querySelector('.seg-thumb-name').textContent, colour: getComputedStyle(el).borderLeftColor,
        img: (el.querySelector('img') || {}).src || null }))""")


def wait_strip(c, pred: str, timeout: float = 30_000):
    """Wait until ``pred`` (JS over the strip's items, as ``strip_items`` gives them) holds."""
    c.page.wait_for_function("""(pred) => { const items = [...document.querySelectorAll('.seg-strip .seg-thumb')].map(el => ({
        id: +el.dataset.open, status: el.dataset.status, current: el.classList.contains('is-current'),
        img: (el.querySelector('img') || {}).src || null })); return eval(pred); }""", arg=pred, timeout=timeout)


def test_the_strip_shows_names_status_colours_and_thumbnails_and_opens_an_image(cv, app, artifacts):
    st, _, gate = app
    gate.set()
    page = cv.page
    infos = st.store.list_images(PROJECT, order="id")
    cv.wait_idle()
    cur = cv.state()["image"]
    # every image of the (small) project, by file name, the open one highlighted
    wait_strip(cv, "items.length === 4 && items.every(it => it.img && it.img.startsWith('data:image/jpeg'))")
    items = strip_items(cv)
    assert [it["name"] for it in items] == [im.filename for im in infos]
    assert [it["id"] for it in items if it["current"]] == [cur]
    assert all(it["colour"] == STRIP_COLOURS[it["status"]] for it in items), items
    assert page.inner_text(".seg-page-info") == "1–4 of 4"
    # a stroke, then a click on another image's thumbnail: the edit is kept as a draft
    other = next(im.id for im in infos if im.id != cur)
    cv.key("b")
    cv.stroke([(40, 40), (140, 40)], steps=5)
    page.click(f".seg-strip [data-open='{other}']")
    cv.wait_image(other)
    cv.wait_idle()
    assert st.store.get_image(cur).status == "draft"
    wait_strip(cv, f"items.find(it => it.id === {cur}).status === 'draft' && items.find(it => it.id === {other}).current")
    drafted = next(it for it in strip_items(cv) if it["id"] == cur)
    assert drafted["colour"] == STRIP_COLOURS["draft"] and not drafted["current"]
    page.screenshot(path=str(artifacts / "label_strip.png"))
    # submit: the next image opens and the submitted one turns green, its thumbnail redrawn
    before = next(it for it in strip_items(cv) if it["id"] == other)["img"]
    cv.key("Control+Enter")
    cv.wait_moved_on(other)
    assert st.store.get_image(other).status == "submitted"
    wait_strip(cv, f"(it => it.status === 'submitted' && !it.current && it.img && it.img !== {before!r})"
                   f"(items.find(it => it.id === {other}))")
    assert next(it for it in strip_items(cv) if it["id"] == other)["colour"] == STRIP_COLOURS["submitted"]
    assert page.inner_text(".seg-progress").startswith("1 / 4 labelled")
    page.screenshot(path=str(artifacts / "label_strip_after_submit.png"))


def covered(c, selector: str) -> list[str]:
    """The elements of ``selector`` whose centre shows something else (a drawer over them)."""
    return c.js("""(sel) => [...document.querySelectorAll(sel)].filter(el => {
        const r = el.getBoundingClientRect();
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !(top && (top === el || el.contains(top)));
    }).map(el => (el.textContent || el.className).trim().slice(0, 40))""", selector)


def test_upload_results_and_revisions_leave_the_class_list_and_save_in_view(cv, app, artifacts, tmp_path):
    st, _, _ = app
    page = cv.page
    cv.wait_idle()
    iid = cv.state()["image"]
    cv.key("Control+s")
    cv.wait_status("Saved revision")
    cv.key("Control+s")   # nothing changed: a second revision all the same (the list has two)
    cv.wait_idle()
    page.click(".seg-drawer-btn")
    assert page.locator("#segui-drawer").is_visible()
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    page.set_input_files("#segui-upload input[type=file]", [str(DEMO_DIR / st.store.get_image(iid).filename), str(junk)])
    page.wait_for_function("() => document.querySelectorAll('.segui-uploads li').length === 2", timeout=60_000)
    cv.wait_idle()
    page.wait_for_function("() => document.querySelector('#segui-revisions').innerText.includes(': 2')", timeout=30_000)
    page.screenshot(path=str(artifacts / "label_drawer_upload_revisions.png"))
    log = page.inner_text("#segui-upload-log")
    assert "already in the project" in log and "notes.txt" in log
    assert in_view(cv, ".seg-classes .seg-class") == [] and covered(cv, ".seg-classes .seg-class") == []
    assert in_view(cv, ".seg-save, .seg-submit") == [] and covered(cv, ".seg-save, .seg-submit") == []
    assert in_view(cv, "#segui-drawer") == []
    # the status line holds one short line about the upload, not every file
    assert "Upload:" in cv.state()["status"] and "notes.txt" not in cv.state()["status"]
    cv.key("Escape")
    assert not page.locator("#segui-drawer").is_visible()


def test_messages_go_when_they_stop_being_true(cv, app):
    page = cv.page
    cv.wait_idle()
    # the word map's "W hides it" goes with the map
    page.locator(".seg-root").focus()
    cv.page.mouse.move(5, 5)
    cv.key("w")
    cv.wait_status("W hides it")
    cv.key("w")
    page.wait_for_function("() => !document.querySelector('.seg-status').textContent.includes('W hides it')")
    # "No more images with status 'rejected'" goes when another queue is picked
    page.select_option(".seg-queue", "rejected")
    cv.key("n")
    cv.wait_status("No more images with status 'rejected'")
    page.select_option(".seg-queue", "unlabelled")
    assert "No more images" not in cv.state()["status"]
    # a text prompt's "Accept it ... or discard" goes when it is discarded
    page.fill(".seg-phrase", "sky")
    page.click(".seg-prompt")
    cv.wait_status("covers")
    page.click(".seg-discard")
    assert cv.state()["status"] == ""


def test_the_activity_log_names_images_by_file_name(cv, app, artifacts):
    st, _, _ = app
    page = cv.page
    names = [im.filename for im in st.store.list_images(PROJECT, order="id")]
    page.locator("button[role=tab]:has-text('Activity')").first.click()
    page.wait_for_function("() => document.querySelector('#segui-activity').innerText.includes('revision saved')",
                           timeout=30_000)
    text = page.inner_text("#segui-activity")
    assert any(f"{n}, revision" in text for n in names), text
    assert "image " not in text.replace("images", ""), text
    page.screenshot(path=str(artifacts / "activity_file_names.png"))
    page.locator("button[role=tab]:has-text('Label')").first.click()


def test_hiding_the_image_column_gives_the_image_its_room(cv, app):
    page = cv.page
    cv.wait_idle()
    stage = lambda: page.locator(".seg-stage").bounding_box()["width"]
    wide = stage()
    page.click(".seg-films-btn")
    assert not page.locator(".seg-films").is_visible()
    page.wait_for_function(f"() => document.querySelector('.seg-stage').getBoundingClientRect().width > {wide + 100}")
    page.click(".seg-films-btn")
    assert page.locator(".seg-films").is_visible() and abs(stage() - wide) < 1


def test_a_class_added_by_name_is_in_the_open_images_prediction(cv, app, artifacts):
    """The projects screen adds a word: the open image (nothing annotated, nothing edited)
    shows the model's prediction over the new label set, not the one stored before.
    (Last in this module: the project has 15 classes after it.)"""
    st, _, _ = app
    page = cv.page
    cv.wait_idle()
    iid = next(im.id for im in st.store.list_images(PROJECT, status="unlabelled", order="id"))
    if cv.state()["image"] != iid:
        page.click(f".seg-strip [data-open='{iid}']")
        cv.wait_image(iid)
    cv.wait_idle()
    S = "document.querySelector('.seg-root').__seg.S"
    before = cv.js(f"() => Array.from({S}.pred)")
    page.locator("button[role=tab]:has-text('Projects')").first.click()
    page.get_by_label("Add a class by name").fill("lamp post")
    page.get_by_role("button", name="Add class").click()
    page.wait_for_function(f"() => {S}.classes.some(c => c.name === 'lamp post')", timeout=30_000)
    # the admin is told that a new word is read from the word alone until a job learns it
    page.wait_for_function("() => [...document.querySelectorAll('.toast-body')].some(t => "
                           "t.innerText.includes(\"'lamp post'\") && t.innerText.includes('fine-tuning job'))",
                           timeout=30_000)
    page.locator("button[role=tab]:has-text('Label')").first.click()
    cv.wait_idle()
    expect = st.predict(PROJECT, iid, store=False)
    assert not np.array_equal(expect.ravel(), np.asarray(before, np.uint8))   # the new word moves pixels
    page.wait_for_function(f"() => {S}.pending.size === 0 && {S}.img.id === {iid}", timeout=30_000)
    np.testing.assert_array_equal(np.asarray(cv.js(f"() => Array.from({S}.pred)"), np.uint8), expect.ravel())
    np.testing.assert_array_equal(cv.client_map(), expect)          # the map shown is that prediction
    page.screenshot(path=str(artifacts / "label_class_added_by_name.png"))
