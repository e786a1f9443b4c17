"""The review stage in Chromium, as a team uses it: an annotator's submission with a
wrong class waits for review; the reviewer logs in, opens "to review", sees where the
model disagrees (red), rejects it with a comment; the annotator logs in and finds it
back with the comment. Screenshots go to test-artifacts/."""
from __future__ import annotations

import re

import numpy as np
import pytest
from argon2 import PasswordHasher

from segui.handlers import DEMO_PROJECT
from segui.ui import LAUNCH_OPTIONS, build_app

from .canvas_page import in_view, launch, open_page, submit_login
from .conftest import launch_local, make_studio, require_chromium

pytestmark = pytest.mark.slow   # a browser run (Chromium)

ROAD, SKY = 3, 0


@pytest.fixture(scope="module")
def team_app(tmp_path_factory):
    require_chromium()
    st = make_studio(tmp_path_factory.mktemp("review"), demo=True)
    st.store.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    for name, role in [("ada", "admin"), ("rex", "reviewer"), ("ann", "annotator")]:
        st.store.add_user(name, f"{name} password long", role)
        if role != "admin":
            st.store.add_member(DEMO_PROJECT, name)
    # ann's submission: the model's mask with the road labelled sky
    ann = st.principal("ann")
    iid = st.next_image(DEMO_PROJECT, "unlabelled", who=ann)
    ready = st.open_in_project(DEMO_PROJECT, iid, who=ann)
    cm = ready.prediction.copy()
    cm[cm == ROAD] = SKY
    st.save_edits(ready.loaded, cm, "ann", "submitted")
    st.wait_idle(60)
    st.warm_up()
    app = build_app(st, auth_enabled=True)
    port = launch_local(app, auth=st.login, **LAUNCH_OPTIONS)
    yield st, f"http://127.0.0.1:{port}/", iid, ready.prediction
    st.wait_idle(30)
    app.close()
    st.store.close()


def tab_shown(page, name) -> bool:
    return any(t.is_visible() for t in page.locator(f"button[role=tab]:has-text('{name}')").all())


def log_in(browser, url, name):
    c = open_page(browser, url)
    submit_login(c.page, name, f"{name} password long")
    c.page.wait_for_selector("#segui-signed-in", timeout=30_000)   # the role's screens are set
    return c


def test_reviewer_rejects_with_a_comment_and_the_annotator_sees_it(team_app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url, iid, pred = team_app
    with sync_playwright() as pw:
        browser = launch(pw)
        rex = log_in(browser, url, "rex")
        page = rex.page
        assert "rex" in page.inner_text("#segui-signed-in") and "reviewer" in page.inner_text("#segui-signed-in")
        assert not tab_shown(page, "Model") and not tab_shown(page, "Projects")   # admin screens hidden
        assert tab_shown(page, "Activity") and tab_shown(page, "Label")
        rex.wait_image()
        # a reviewer may take an image out of the project (the drawer's removal box is shown)
        assert page.eval_on_selector("#segui-image-removal", "e => e.style.display") == ""
        page.select_option(".seg-queue", "review")
        rex.key("n")
        rex.wait_image(iid)
        rex.wait_idle()
        page.wait_for_selector(".seg-review:not([hidden])")
        assert page.eval_on_selector(".seg-root", "r => r.dataset.disagreement") == "1"
        info = page.inner_text(".seg-review-info")
        assert "model disagreement" in info and "(red)" in info
        assert re.search(r"disagreement: \d+\.\d % of the image, 1 of \d+ awaiting review", info), info   # a scale and a rank
        # at 1440x900 the review box leaves every class, Save / Submit and its own buttons in view
        assert in_view(rex, ".seg-classes .seg-class, .seg-save, .seg-submit, .seg-review button, .seg-disagree") == []
        # a road pixel (sky in the submission) is drawn with the red overlay; D hides it
        ys, xs = np.nonzero(pred == ROAD)
        k = len(ys) // 2
        y, x = int(ys[k]) + 0.5, int(xs[k]) + 0.5
        rex.frame()
        red_on = rex.canvas_rgb(x, y)
        page.screenshot(path=str(artifacts / "review_reviewer.png"))
        rex.key("d")
        rex.frame()
        red_off = rex.canvas_rgb(x, y)
        assert red_on[0] - red_on[2] > red_off[0] - red_off[2] + 30, (red_on, red_off)
        rex.key("d")
        # rejecting needs a comment: without one nothing is sent
        page.click(".seg-review-reject")
        rex.wait_status("needs a comment")
        assert st.store.get_image(iid).review == "pending"
        page.fill(".seg-review-comment", "The road is labelled sky.")
        page.click(".seg-review-reject")
        rex.wait_status("rejected")
        rex.wait_idle()
        assert st.store.get_image(iid).review == "rejected"
        r = st.store.get_review(iid)
        assert (r.reviewer, r.comment) == ("rex", "The road is labelled sky.")
        assert not rex.errors, rex.errors

        ann = log_in(browser, url, "ann")
        page = ann.page
        assert not tab_shown(page, "Activity") and not tab_shown(page, "Projects") and tab_shown(page, "Label")
        ann.wait_image()
        # an annotator may not remove images: the box is hidden (and the server refuses it)
        assert page.eval_on_selector("#segui-image-removal", "e => e.style.display") == "none"
        assert page.locator(".seg-queue option[value=review]").evaluate("o => o.hidden")
        page.select_option(".seg-queue", "rejected")
        ann.key("n")
        ann.wait_image(iid)
        page.wait_for_selector(".seg-feedback:not([hidden])")
        fb = page.inner_text(".seg-feedback")
        assert "Rejected" in fb and "rex" in fb and "The road is labelled sky." in fb
        assert page.locator(".seg-review").evaluate("e => e.hidden")                 # no review controls
        assert page.eval_on_selector(".seg-root", "r => r.dataset.disagreement") == "0"
        page.screenshot(path=str(artifacts / "review_annotator.png"))
        assert not ann.errors, ann.errors
        browser.close()


def test_the_admin_sees_members_the_setting_and_the_activity(team_app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url, iid, _ = team_app
    with sync_playwright() as pw:
        browser = launch(pw)
        ada = log_in(browser, url, "ada")
        page = ada.page
        assert all(tab_shown(page, t) for t in ("Label", "Projects", "Model", "Activity"))
        page.locator("button[role=tab]:has-text('Projects')").first.click()
        page.wait_for_function("() => document.querySelector('#segui-members').innerText.includes('rex (reviewer)')",
                               timeout=30_000)
        members = page.inner_text("#segui-members")
        assert "ann (annotator)" in members and "rex (reviewer)" in members
        # the project has a reviewer: accepted annotations only, until the admin says otherwise
        assert "accepted" in page.inner_text("#segui-training-source").lower()
        # (the tab's own refresh may still be on its way and set the radio back as it lands
        # after the click: click again until the server's answer says it took)
        for _ in range(6):
            page.get_by_label("all submitted annotations").click()
            try:
                page.wait_for_function("() => document.body.innerText.includes('Now: submitted')", timeout=5_000)
                break
            except Exception:   # noqa: BLE001 - playwright's TimeoutError: try once more
                continue
        assert "Now: submitted" in page.inner_text("body")
        assert st.store.get_project(DEMO_PROJECT).training_source == "submitted"
        # an account made in the page: the password box is emptied, the table shows it
        page.locator("#segui-accounts").get_by_text("Accounts (admins)").click()
        page.fill("#segui-acct-name textarea, #segui-acct-name input", "cat")
        page.fill("#segui-acct-pw input", "cat password long")
        page.get_by_role("button", name="Add account").click()
        page.wait_for_function("() => document.querySelector('#segui-users').innerText.includes('cat')",
                               timeout=30_000)
        assert page.input_value("#segui-acct-pw input") == ""
        assert st.login("cat", "cat password long")
        page.screenshot(path=str(artifacts / "admin_projects.png"), full_page=True)
        page.locator("button[role=tab]:has-text('Activity')").first.click()
        page.wait_for_function("() => document.querySelector('#segui-activity').innerText.includes('review')",
                               timeout=30_000)
        text = page.inner_text("#segui-activity")
        assert "review: rejected" in text and "The road is labelled sky." in text
        assert "revision saved (submitted)" in text and "ann" in text
        page.screenshot(path=str(artifacts / "admin_activity.png"))
        assert not ada.errors, ada.errors
        browser.close()


def test_a_reviewer_sees_fourteen_classes_and_the_review_box_at_once(team_app, artifacts):
    """Issue 18's layout with a reviewer: 14 classes, Save / Submit and the review box all
    in view at 1440x900 (before, the last two classes scrolled away). Last in the module:
    it adds classes to the shared project."""
    from playwright.sync_api import sync_playwright
    st, url, _, _ = team_app
    for word in ("traffic light", "lamp post", "bus"):
        st.add_class(DEMO_PROJECT, word)
    ann = st.principal("ann")
    iid = st.next_image(DEMO_PROJECT, "unlabelled", who=ann)
    ready = st.open_in_project(DEMO_PROJECT, iid, who=ann)
    st.save_edits(ready.loaded, ready.prediction, "ann", "submitted")
    st.wait_idle(60)
    with sync_playwright() as pw:
        browser = launch(pw)
        rex = log_in(browser, url, "rex")
        rex.wait_image()
        rex.page.select_option(".seg-queue", "review")
        rex.key("n")                                                   # a submission awaiting review
        rex.page.wait_for_selector(".seg-review:not([hidden])", timeout=60_000)
        rex.wait_idle()
        named = ".seg-classes .seg-class:not(:last-child)"           # every class but the void row
        assert rex.page.eval_on_selector_all(named, "e => e.length") == 14
        assert in_view(rex, f"{named}, .seg-save, .seg-submit, .seg-review button, .seg-disagree") == []
        rex.page.screenshot(path=str(artifacts / "review_fourteen_classes.png"))
        assert not rex.errors, rex.errors
        browser.close()
