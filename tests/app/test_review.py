"""The review stage in the Studio layer: submitted -> accepted or rejected (back to
the annotator with the comment), the model as a second reviewer ordering the review
queue, what each role sees, jobs and exports following the project's setting, and
the activity log. The shipped model runs on the demo's CamVid images."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
from argon2 import PasswordHasher

from segui.access import Forbidden
from segui.handlers import DEMO_PROJECT, UserError

P = DEMO_PROJECT
ROAD, SKY = 3, 0


@pytest.fixture
def team(bare_demo_studio):
    st = bare_demo_studio
    st.store.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    for name, role in [("ada", "admin"), ("rex", "reviewer"), ("ann", "annotator"), ("bob", "annotator")]:
        st.store.add_user(name, f"{name} password long", role)
        if role != "admin":
            st.store.add_member(P, name)
    ids = [im.id for im in st.store.list_images(P, order="id")]
    return st, {n: st.principal(n) for n in ("ada", "rex", "ann", "bob")}, ids


def submit(st, who, iid, edit=None):
    ready = st.open_in_project(P, iid, who=who)
    cm = ready.prediction.copy()
    if edit is not None:
        edit(cm)
    return st.save_edits(ready.loaded, cm, who.name, "submitted")


def road_as_sky(cm):
    cm[cm == ROAD] = SKY          # a whole, large, confidently predicted class relabelled


def test_the_second_reviewer_orders_the_queue_and_the_review_round_trip(team):
    st, who, ids = team
    good, bad = ids[0], ids[1]
    submit(st, who["ann"], good)                 # agrees with the model
    submit(st, who["ann"], bad, road_as_sky)     # the road labelled sky
    assert st.wait_idle(60)
    s_good, s_bad = st.store.get_image(good).review_score, st.store.get_image(bad).review_score
    assert s_good is not None and s_bad is not None and s_bad > 0.2 > s_good, (s_good, s_bad)
    # the reviewer's queue: strongest disagreement first; annotators have no review queue
    assert st.next_image(P, "review", who=who["rex"]) == bad
    assert st.next_image(P, "review", (bad,), who=who["rex"]) == good
    with pytest.raises(Forbidden, match="may not review"):
        st.next_image(P, "review", who=who["ann"])
    # what the reviewer sees: the score and where the model disagrees (the relabelled road)
    ready = st.open_in_project(P, bad, who=who["rex"])
    state = st.review_state(bad, who=who["rex"])
    assert state["state"] == "pending" and state["can_review"] and state["score"] == pytest.approx(s_bad)
    assert (state["rank"], state["pending"]) == (1, 2)              # the first of the 2 awaiting review
    assert st.review_state(good, who=who["rex"])["rank"] == 2
    mask = st.review_overlay(bad, state["revision"])
    road = ready.prediction == ROAD
    assert mask.sum() > 0.5 * road.sum() and (mask & ~road).sum() < 0.1 * mask.sum()
    assert "score" not in st.review_state(bad, who=who["ann"])     # annotators get no score
    # a rejection needs a comment; a reviewer with unsaved edits must submit or undo first
    with pytest.raises(UserError, match="needs a comment"):
        st.review(ready.loaded, ready.loaded.class_map, "rejected", "  ", who=who["rex"])
    edited = ready.loaded.class_map.copy()
    edited[:5, :5] = ROAD
    with pytest.raises(UserError, match="unsaved edits"):
        st.review(ready.loaded, edited, "accepted", "", who=who["rex"])
    with pytest.raises(Forbidden):
        st.review(ready.loaded, ready.loaded.class_map, "accepted", "", who=who["ann"])
    r = st.review(ready.loaded, ready.loaded.class_map, "rejected", "the road is not sky", who=who["rex"])
    assert (r.decision, r.reviewer) == ("rejected", "rex")
    # back to the annotator, with the comment shown when they open it
    assert st.next_image(P, "rejected", who=who["ann"]) == bad
    seen = st.review_state(bad, who=who["ann"])
    assert (seen["state"], seen["decision"], seen["comment"], seen["reviewer"]) == (
        "rejected", "rejected", "the road is not sky", "rex")
    # fixed and submitted again: pending, scored again (low now), then accepted
    submit(st, who["ann"], bad)
    assert st.wait_idle(60)
    assert st.store.get_image(bad).review == "pending" and st.store.get_image(bad).review_score < 0.2
    ready = st.open_in_project(P, bad, who=who["rex"])
    st.review(ready.loaded, ready.loaded.class_map, "accepted", "", who=who["rex"])
    assert st.store.get_image(bad).review == "accepted"
    # the activity names who did what
    acts = [(a[1], a[2]) for a in st.activity(P)]
    assert acts[0] == ("rex", "review: accepted") and ("rex", "review: rejected") in acts
    assert ("ann", "revision saved (submitted)") in acts
    assert any(a[3].endswith("“the road is not sky”") for a in st.activity(P))
    # images by their file name, not their id
    name = st.store.get_image(bad).filename
    on = [a[3] for a in st.activity(P) if a[2].startswith(("review", "revision"))]
    assert on and all(not o.startswith("image ") for o in on), on
    assert f"{name}, revision 2" in on and f"{name}, revision 1: “the road is not sky”" in on, on


def test_jobs_and_exports_follow_the_project_setting(team):
    """The project has a reviewer, so by default only accepted annotations are used;
    the setting "submitted" uses every submitted one."""
    st, who, ids = team
    for iid in ids[:3]:
        submit(st, who["ann"], iid)
    ready = st.open_in_project(P, ids[0], who=who["rex"])
    st.review(ready.loaded, ready.loaded.class_map, "accepted", "", who=who["rex"])

    def exported():
        z = st.export(P, "folder", who=who["ada"])
        with zipfile.ZipFile(z) as zf:
            return sorted(n for n in zf.namelist() if n.startswith("labels/"))

    assert st.store.effective_training_source(P) == "accepted"
    assert len(exported()) == 1
    assert len(st.store.training_examples(P, split=None)) == 1
    st.store.set_training_source(P, "submitted")
    assert len(exported()) == 3
    assert len(st.store.training_examples(P, split=None)) == 3
    exports = [a for a in st.activity(P) if a[2] == "export"]
    assert len(exports) == 2 and exports[0][1] == "ada"


def test_annotators_see_unlabelled_images_and_their_own_work(team):
    st, who, ids = team
    submit(st, who["bob"], ids[2])
    with pytest.raises(Forbidden, match="someone else's work"):
        st.open_in_project(P, ids[2], who=who["ann"])
    with pytest.raises(Forbidden, match="someone else's work"):
        st.authorize("ann", "view", image_id=ids[2])
    assert st.open_in_project(P, ids[2], who=who["bob"]).loaded.image_id == ids[2]
    assert st.open_in_project(P, ids[2], who=who["rex"]).loaded.image_id == ids[2]
    strip_ann = [it["id"] for it in st.strip(P, None, who=who["ann"])["items"]]
    strip_rex = [it["id"] for it in st.strip(P, None, who=who["rex"])["items"]]
    assert ids[2] not in strip_ann and ids[2] in strip_rex and len(strip_rex) == len(ids)
    # the strip lists fewer images to an annotator; its progress is still the project's
    s_ann, s_rex = st.strip(P, None, who=who["ann"]), st.strip(P, None, who=who["rex"])
    assert s_ann["total"] == len(strip_ann) < len(ids) == s_ann["project_total"] == s_rex["project_total"]
    assert s_ann["labelled"] == s_rex["labelled"] <= s_ann["project_total"]
    assert st.next_image(P, "submitted", who=who["ann"]) is None
    assert st.next_image(P, "submitted", who=who["bob"]) == ids[2]


def test_only_admins_add_a_class_through_a_text_prompt(team):
    st, who, ids = team
    ready = st.open_in_project(P, ids[0], who=who["ann"])
    mask = np.zeros_like(ready.loaded.class_map, dtype=bool)
    mask[:10, :10] = True
    with pytest.raises(Forbidden, match="only an admin adds classes"):
        st.accept_prompt(P, ready.loaded.class_map, mask, "traffic cone", True, who=who["ann"])
    p, out = st.accept_prompt(P, ready.loaded.class_map, mask, "traffic cone", True, who=who["ada"])
    assert "traffic cone" in p.class_names and (out[mask] == next(c.index for c in p.classes if c.name == "traffic cone")).all()
    # an existing class is fine for anyone who labels
    _, out = st.accept_prompt(P, ready.loaded.class_map, mask, "road", False, who=who["ann"])
    assert (out[mask] == ROAD).all()


def test_admins_manage_accounts_and_members_in_the_app(team):
    st, who, ids = team
    with pytest.raises(Forbidden):
        st.manage_user("add", "cat", "reviewer", "cat password long", who=who["rex"])
    with pytest.raises(UserError, match="at least"):
        st.manage_user("add", "cat", "reviewer", "short", who=who["ada"])
    assert "cat (reviewer) added" in st.manage_user("add", "cat", "reviewer", "cat password long", who=who["ada"])
    assert st.login("cat", "cat password long") and not st.login("cat", "wrong password!")
    assert st.manage_user("set_role", "cat", "annotator", who=who["ada"]) == "cat is annotator."
    assert "added to" in st.set_member(P, "cat", True, who=who["ada"])
    assert ["cat", "annotator", "enabled", P] in st.users_table()
    st.manage_user("disable", "cat", who=who["ada"])
    assert not st.login("cat", "cat password long")
    with pytest.raises(Forbidden, match="disabled"):
        st.principal("cat")
    with pytest.raises(UserError, match="last enabled admin"):
        st.manage_user("disable", "ada", who=who["ada"])
    with pytest.raises(UserError, match="add the account first"):
        st.set_member(P, "nobody", True, who=who["ada"])
    assert st.set_training_source(P, "submitted", who=who["ada"]) == "submitted"
    admin_log = [(a.user, a.action) for a in st.store.list_activity(None)]
    for action in ("user_added", "role_changed", "user_disabled"):
        assert ("ada", action) in admin_log
    project_log = [(a[1], a[2]) for a in st.activity(P)]
    assert ("ada", "member added") in project_log and ("ada", "training source changed") in project_log


def test_submissions_never_scored_are_scored_when_the_app_starts(demo_studio):
    """The demo's 10 ground-truth submissions were stored without the second reviewer:
    score_unscored (app.py runs it in a thread at start) scores each once, so the review
    queue is ordered by the model's disagreement from the first minute."""
    st = demo_studio
    pending = st.store.review_queue(DEMO_PROJECT)
    assert len(pending) == 10 and all(im.review_score is None for im in pending)
    assert st.score_unscored(limit=3) == 3
    assert st.score_unscored() == 7
    scores = [im.review_score for im in st.store.review_queue(DEMO_PROJECT, order="review_score")]
    assert all(s is not None and 0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert st.score_unscored() == 0                       # nothing left


def test_submissions_stored_while_the_app_runs_are_scored_after_an_image_is_opened(bare_demo_studio, tmp_path):
    """An import (``python -m storage import-dataset``) or a second app process stores
    submissions while the app runs: the background scores them once an image is opened
    (at most every REVIEW_SYNC_EVERY_S per project), so the review queue ranks them
    before the next start."""
    from segui import review
    from storage import Store

    st = bare_demo_studio
    ids = [im.id for im in st.store.list_images(P, order="id")]
    pid = st.store.get_project(P).id
    assert st._review_sync(pid, now=1000.0) == 0          # the first look only starts the clock
    outside = Store(data_dir=st.store.data_dir, url=st.store.url)    # another process's store
    try:
        for iid in ids[:2]:
            cm = st.prepare(iid).prediction.copy()
            if iid == ids[1]:
                road_as_sky(cm)
            outside.save_annotation(iid, cm, "import", "submitted")
    finally:
        outside.close()
    assert all(st.store.get_image(i).review_score is None for i in ids[:2])
    assert st._review_sync(pid, now=1000.0 + review.REVIEW_SYNC_EVERY_S / 2) == 0     # not yet
    assert st._review_sync(pid, now=1000.0 + review.REVIEW_SYNC_EVERY_S + 1) == 2
    good, bad = (st.store.get_image(i).review_score for i in ids[:2])
    assert good is not None and bad is not None and bad > good
    assert st.next_image(P, "review") == ids[1]           # the queue ranks them: the relabelled road first


def test_opening_an_image_is_what_looks_for_outside_submissions(bare_demo_studio, monkeypatch):
    """The wiring: the prefetch that follows an opened image runs the review sync."""
    from segui import review
    from storage import Store

    monkeypatch.setattr(review, "REVIEW_SYNC_EVERY_S", 0.0)
    st = bare_demo_studio
    first, second = [im.id for im in st.store.list_images(P, order="id")[:2]]
    outside = Store(data_dir=st.store.data_dir, url=st.store.url)
    try:
        outside.save_annotation(first, st.prepare(first).prediction, "import", "submitted")
    finally:
        outside.close()
    st.prefetch_next(P, "unlabelled", second)
    assert st.wait_idle(60)
    assert st.store.get_image(first).review_score is not None


def test_the_activity_shows_one_kind_or_one_person(demo_studio):
    """The Activity screen's filters: a kind of record and a person; every action a
    project's log can hold is under some kind."""
    from segui.admin import ACTIVITY_KINDS
    from storage.models import Action
    per_user = {"user_added", "role_changed", "user_disabled", "user_enabled", "password_changed"}
    kinds = set().union(*(v for v in ACTIVITY_KINDS.values() if v))
    assert kinds == {a.value for a in Action} - per_user
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT, "unlabelled")
    ready = st.open_in_project(DEMO_PROJECT, iid)
    st.save_edits(ready.loaded, ready.prediction, "ann", "draft")
    st.remove_image(DEMO_PROJECT, iid)
    everything = st.activity(DEMO_PROJECT)
    assert {r[2] for r in everything} >= {"image removed", "revision saved (draft)"}
    images = st.activity(DEMO_PROJECT, kind="images: uploads, removals, exports")
    assert [r[2] for r in images] == ["image removed"]
    anns = st.activity(DEMO_PROJECT, who="ann")
    assert anns and all(r[1] == "ann" for r in anns) and len(anns) < len(everything)
    assert st.activity(DEMO_PROJECT, kind="reviews", who="ann") == []
    with pytest.raises(UserError, match="show one of"):
        st.activity(DEMO_PROJECT, kind="bogus")
