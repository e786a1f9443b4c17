"""Review stage (submitted -> accepted | rejected), the training source that jobs and
exports follow, and the activity log."""
import numpy as np
import pytest
from argon2 import PasswordHasher
from PIL import Image as PILImage
from sqlalchemy.exc import IntegrityError

from storage import NotFoundError, ReviewError, ValidationError
from storage.datasets import export_dataset
from storage.models import Review, utcnow

PW = "correct horse battery"
Z = np.zeros((16, 24), np.uint8)


@pytest.fixture
def store(make_store):
    return make_store(password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def imgs(store, project, png_bytes):
    """Four 16x24 train images of project "p"."""
    return [store.add_image("p", png_bytes(np.full((16, 24, 3), 10 * i, np.uint8)), f"im{i}.png",
                            split="train").id for i in range(4)]


def save(store, image_id, value, status="submitted"):
    rev = store.get_image(image_id).revision
    return store.save_annotation(image_id, Z + value, "ann", status=status, base_revision=rev).revision


def states(store):
    return [i.review for i in store.list_images("p")]


def test_review_round_trip(store, imgs):
    a, b, c, d = imgs
    save(store, a, 1, "draft")
    assert store.get_image(a).review is None                 # nothing submitted yet
    r1 = save(store, a, 1)
    assert store.get_image(a).review == "pending" and store.get_review(a) is None
    save(store, b, 1)
    assert [i.id for i in store.review_queue("p")] == [a, b]
    acc = store.review(a, r1, "accepted", "", "rita")
    assert (acc.decision, acc.comment, acc.reviewer, acc.revision) == ("accepted", "", "rita", r1)
    assert store.get_review(a) == acc and store.get_image(a).review == "accepted"
    with pytest.raises(ValidationError, match="rejection needs a comment"):
        store.review(b, 1, "rejected", "   ", "rita")
    with pytest.raises(ValidationError, match="decision must be one of accepted, rejected"):
        store.review(b, 1, "maybe", "", "rita")
    rej = store.review(b, 1, "rejected", " the car is a bus ", "rita")
    assert rej.comment == "the car is a bus" and store.get_image(b).review == "rejected"
    assert [i.id for i in store.review_queue("p")] == []
    assert store.next_image("p", filter="rejected").id == b   # back to the annotator
    # a draft after the rejection keeps it (and its comment) visible ...
    save(store, b, 2, "draft")
    assert store.get_image(b).review == "rejected" and store.get_review(b).comment == "the car is a bus"
    # ... a new submission goes back to pending
    r3 = save(store, b, 2)
    assert store.get_image(b).review == "pending" and store.get_review(b) is None
    assert [i.id for i in store.review_queue("p")] == [b]
    assert states(store) == ["accepted", "pending", None, None]
    assert store.count_reviews("p") == {"pending": 1, "accepted": 1, "rejected": 0}
    assert [i.id for i in store.list_images("p", review="accepted")] == [a]
    assert [(r.revision, r.decision) for r in store.list_reviews(b)] == [(1, "rejected")]
    # a reviewer may change their mind on the same revision: the latest decision counts
    store.review(b, r3, "rejected", "still a bus", "rita")
    store.review(b, r3, "accepted", "ok after all", "rex")
    assert store.get_image(b).review == "accepted" and store.get_review(b).reviewer == "rex"
    assert len(store.list_reviews(b)) == 3


def test_only_the_latest_submitted_revision_can_be_reviewed(store, imgs):
    a = imgs[0]
    save(store, a, 1)                         # 1 submitted
    save(store, a, 2, "draft")                # 2 draft
    with pytest.raises(ReviewError, match="revision 2 is a draft"):
        store.review(a, 2, "accepted", "", "rita")
    store.review(a, 1, "accepted", "", "rita")   # a later draft does not hide the submission
    save(store, a, 1)                         # 3 submitted
    with pytest.raises(ReviewError, match="revision 1 is no longer the latest submitted revision; "
                                          "'ann' submitted revision 3"):
        store.review(a, 1, "rejected", "late", "rita")
    with pytest.raises(NotFoundError, match="no annotation revision 9"):
        store.review(a, 9, "accepted", "", "rita")
    with pytest.raises(NotFoundError, match="image 12345"):
        store.review(12345, 1, "accepted", "", "rita")
    with pytest.raises(ValidationError, match="reviewer"):
        store.review(a, 3, "accepted", "", " ")
    assert store.get_image(a).review == "pending"
    assert [r.revision for r in store.list_reviews(a)] == [1]


def test_database_refuses_a_rejection_without_comment(store, imgs):
    save(store, imgs[0], 1)
    with store._session() as s, pytest.raises(IntegrityError):
        s.add(Review(image_id=imgs[0], revision=1, decision="rejected", comment=" ", reviewer="r",
                     created_at=utcnow()))
        s.commit()
    with store._session() as s, pytest.raises(IntegrityError):   # an annotation revision that does not exist
        s.add(Review(image_id=imgs[0], revision=7, decision="accepted", comment="", reviewer="r",
                     created_at=utcnow()))
        s.commit()


def test_effective_training_source_rule(store, project):
    assert store.effective_training_source("p") == "submitted"          # no reviewers
    store.add_user("ann", PW, "annotator")
    store.add_user("rev", PW, "reviewer")
    store.add_user("adm", PW, "admin")
    store.add_member("p", "ann")
    store.add_member("p", "adm")
    assert store.effective_training_source("p") == "submitted"
    store.add_member("p", "rev")
    assert store.effective_training_source("p") == "accepted"           # once a reviewer joins
    store.add_user("adm2", PW, "admin")
    store.disable_user("rev")
    assert store.effective_training_source("p") == "submitted"          # nobody could accept
    store.enable_user("rev")
    p = store.set_training_source("p", "submitted")                      # explicit wins
    assert p.training_source == "submitted" and store.effective_training_source("p") == "submitted"
    assert store.get_project("p").training_source == "submitted"
    assert store.set_training_source("p", None).training_source is None  # automatic again
    assert store.effective_training_source("p") == "accepted"
    with pytest.raises(ValidationError, match="training source must be one of accepted, submitted"):
        store.set_training_source("p", "all")


@pytest.fixture
def reviewed(store, imgs):
    """a: accepted; b: rejected; c: pending; d: accepted at revision 1, then revision 2
    submitted (pending). Returns the ids and d's revisions."""
    a, b, c, d = imgs
    store.review(a, save(store, a, 1), "accepted", "", "rita")
    store.review(b, save(store, b, 1), "rejected", "wrong", "rita")
    save(store, c, 1)
    d1 = save(store, d, 1)
    store.review(d, d1, "accepted", "", "rita")
    d2 = save(store, d, 2)
    return a, b, c, d, d1, d2


def test_training_examples_follow_the_source(store, reviewed):
    a, b, c, d, d1, d2 = reviewed
    sub = store.submitted_annotations("p", "train", source="submitted")
    assert sub == [(a, 1), (b, 1), (c, 1), (d, d2)]
    acc = store.submitted_annotations("p", "train", source="accepted")
    assert acc == [(a, 1), (d, d1)]            # pending and rejected left out; d's accepted revision
    assert store.submitted_annotations("p", "train") == sub             # automatic: no reviewer yet
    store.set_training_source("p", "accepted")
    assert store.submitted_annotations("p", "train") == acc
    ex = store.training_examples("p")           # what a job trains on
    assert [e[0] for e in ex] == [a, d]
    assert np.array_equal(ex[1][2], Z + 1)      # d's accepted revision, not the pending one
    assert [e[0] for e in store.training_examples("p", source="submitted")] == [a, b, c, d]
    assert store.submitted_annotations("p", "val") == []
    # the pending revision of d accepted: the newer one is used
    store.review(d, d2, "accepted", "", "rita")
    assert store.submitted_annotations("p", None) == [(a, 1), (d, d2)]
    # a decision changed to rejected drops it
    store.review(a, 1, "rejected", "on second look, no", "rita")
    assert store.submitted_annotations("p", None) == [(d, d2)]
    with pytest.raises(ValidationError, match="training source"):
        store.submitted_annotations("p", None, source="drafts")


def test_exports_follow_the_source(store, reviewed, tmp_path):
    a, b, c, d, d1, d2 = reviewed
    store.add_user("rev", PW, "reviewer")
    store.add_member("p", "rev")                # automatic source becomes "accepted"

    def exported(out):
        return sorted(p.name for p in (out / "labels" / "train").glob("*.png"))
    rep = export_dataset(store, "p", tmp_path / "acc", "folder")
    assert rep.source == "accepted" and rep.images == 2 and rep.skipped_unannotated == 2
    assert exported(tmp_path / "acc") == ["im0.png", "im3.png"]
    d_label = np.array(PILImage.open(tmp_path / "acc" / "labels" / "train" / "im3.png"))
    assert np.array_equal(d_label, Z + 1)      # the accepted revision
    rep = export_dataset(store, "p", tmp_path / "sub", "folder", source="submitted")
    assert rep.source == "submitted" and rep.images == 4
    assert exported(tmp_path / "sub") == ["im0.png", "im1.png", "im2.png", "im3.png"]
    rep = export_dataset(store, "p", tmp_path / "coco", "coco")
    assert rep.images == 2
    rep = export_dataset(store, "p", tmp_path / "drafts", "voc", include_drafts=True)
    assert rep.source == "drafts" and rep.images == 4


def test_list_images_carries_review_state_in_one_query(store, reviewed):
    from sqlalchemy import event
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    infos = store.list_images("p")
    assert len(statements) == 2 and "FROM images" in statements[1]   # project lookup + the listing
    assert [i.review for i in infos] == ["accepted", "rejected", "pending", "pending"]
    assert [i.review for i in store.list_images("p", order="uncertainty")] == [i.review for i in infos]
    assert store.get_image(infos[1].id).review == "rejected"
    assert store.next_image("p", filter="any").review is not None
    with pytest.raises(ValidationError, match="review must be one of"):
        store.list_images("p", review="done")


def test_activity_for_saves_reviews_activations_promotions(store, imgs):
    a = imgs[0]
    save(store, a, 1, "draft")
    save(store, a, 1)
    store.review(a, 2, "rejected", "fix the road", "rita")
    v1 = store.add_model_version("p", "/w/v1", activate=True)
    v2 = store.add_model_version("p", "/w/v2", parent_id=v1.id, name="tuned")
    store.activate_model_version(v2.id, by="boss")
    store.activate_model_version(v2.id, by="boss")      # no change: not recorded again
    store.activate_model_version(v1.id)
    job = store.create_job("p", {})
    store.claim_job()
    v3 = store.add_model_version("p", "/w/v3", parent_id=v1.id)
    store.finish_job(job.id, "succeeded", result_version_id=v3.id, activate=True)
    store.record_activity("job_started", "boss", "p", f"job {job.id}", {"job_id": job.id})
    store.record_activity("user_added", "cli", None, "user x")
    acts = list(reversed(store.list_activity("p")))
    got = [(x.action, x.user, x.subject) for x in acts]
    assert got == [
        ("revision_saved", "ann", f"image {a} revision 1"),
        ("revision_saved", "ann", f"image {a} revision 2"),
        ("review", "rita", f"image {a} revision 2"),
        ("model_activated", "boss", f"model version {v2.id} (tuned)"),
        ("model_activated", None, f"model version {v1.id}"),
        ("model_promoted", None, f"model version {v3.id}"),
        ("job_started", "boss", f"job {job.id}"),
    ]
    assert acts[0].details == {"image_id": a, "revision": 1, "status": "draft"}
    assert acts[2].details["decision"] == "rejected" and acts[2].details["comment"] == "fix the road"
    assert acts[3].details == {"version_id": v2.id, "previous_version_id": v1.id}
    assert acts[5].details == {"version_id": v3.id, "previous_version_id": v1.id, "job_id": job.id}
    assert all(x.project_id == acts[0].project_id and x.created_at is not None for x in acts)
    # newest first, paged, filtered; project None: everything, user administration included
    assert [x.action for x in store.list_activity("p", limit=2)] == ["job_started", "model_promoted"]
    assert [x.action for x in store.list_activity("p", limit=2, offset=5)] == ["revision_saved"] * 2
    assert len(store.list_activity("p", action=["review", "model_promoted"])) == 2
    assert len(store.list_activity("p", user="ann")) == 2
    everything = store.list_activity(None)
    assert everything[0].action == "user_added" and everything[0].project_id is None
    with pytest.raises(ValidationError, match="action must be one of"):
        store.record_activity("hacked", "x")
    with pytest.raises(ValidationError, match="JSON"):
        store.record_activity("export", "x", "p", "e", {"x": object()})
    with pytest.raises(NotFoundError):
        store.record_activity("export", "x", "nope")


def test_a_failed_save_records_nothing(store, imgs):
    from storage import ConflictError
    save(store, imgs[0], 1)
    with pytest.raises(ConflictError):
        store.save_annotation(imgs[0], Z, "late", status="submitted", base_revision=0)
    assert [x.user for x in store.list_activity("p")] == ["ann"]


def test_a_review_waits_for_a_submission_in_flight(store, imgs):
    """review() locks the image before its checks (SQLite: the write lock; PostgreSQL:
    the row lock a save's UPDATE takes): a decision on revision 1 that races a submission
    of revision 2 is refused, never recorded as the state of revision 2."""
    import threading
    import time

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from storage import imaging
    from storage.models import Annotation, Image
    a = imgs[0]
    save(store, a, 1)
    errors = []

    def decide():
        try:
            store.review(a, 1, "accepted", "", "rita")
        except Exception as e:   # noqa: BLE001
            errors.append(e)
    with Session(store.engine) as s:       # what save_annotation does, not yet committed
        s.execute(update(Image).where(Image.id == a).values(revision=2, status="submitted",
                                                             review="pending"))
        s.add(Annotation(image_id=a, revision=2, author="late", status="submitted",
                         png=imaging.encode_class_map(Z), created_at=utcnow()))
        s.flush()
        t = threading.Thread(target=decide)
        t.start()
        time.sleep(0.5)
        assert t.is_alive()                # waiting for the image
        s.commit()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], ReviewError), errors
    assert store.get_image(a).review == "pending" and store.list_reviews(a) == []


def test_review_queue_by_the_models_disagreement(store, imgs):
    """The second reviewer's score orders the queue (unscored last); a new submission
    clears its image's score, and a score for a revision that is no longer the latest
    submitted one is not stored."""
    a, b, c, d = imgs
    revs = {i: save(store, i, 1) for i in (a, b, c)}
    assert store.set_review_score(b, revs[b], 0.4) and store.set_review_score(c, revs[c], 0.05)
    assert [i.id for i in store.review_queue("p", order="review_score")] == [b, c, a]
    # where each stands among the 3 awaiting review (a: not scored yet, no rank; d: nothing submitted)
    assert (store.review_rank(b), store.review_rank(c)) == ((1, 3), (2, 3))
    assert store.review_rank(a) is None and store.review_rank(d) is None
    assert store.get_image(b).review_score == pytest.approx(0.4)
    assert [i.review_score for i in store.list_images("p", order="review_score")][:2] == [
        pytest.approx(0.4), pytest.approx(0.05)]
    r2 = save(store, b, 2)                                   # resubmitted: the old score is gone
    assert store.get_image(b).review_score is None
    assert not store.set_review_score(b, revs[b], 0.9)       # stale revision: refused
    assert store.get_image(b).review_score is None
    save(store, c, 2, "draft")                               # a draft on top: nothing to score
    assert not store.set_review_score(c, revs[c] + 1, 0.3)
    assert store.set_review_score(b, r2, 0.2)
    assert [i.id for i in store.review_queue("p", order="review_score")] == [b, c, a]
    # the evidence a score came from is kept with it, and cleared by a new submission
    ev = {"labelled": 384, "top": [1], "cls": [2], "evidence": [12.5]}
    assert store.set_review_score(a, revs[a], 0.01, ev)
    assert [(i, r, sc, e) for i, r, sc, e in store.review_evidence("p")] == [(a, revs[a], pytest.approx(0.01), ev)]
    save(store, a, 2)
    assert store.review_evidence("p") == [] and store.get_image(a).review_score is None
    assert store.set_review_scores([(b, r2, 0.3), (c, revs[c], 0.5)]) == 1   # c has a draft on top
    assert store.get_image(b).review_score == pytest.approx(0.3)
    assert store.get_image(c).review_score == pytest.approx(0.05)          # unchanged
    with pytest.raises(ValidationError, match="evidence must be a dict"):
        store.set_review_score(b, r2, 0.1, [1, 2])
    with pytest.raises(ValidationError, match=r"score must be in \[0, 1\]"):
        store.set_review_score(a, revs[a], 1.5)
    with pytest.raises(NotFoundError):
        store.set_review_score(10_000, 1, 0.1)


def test_a_reviewer_cannot_accept_their_own_submission(store, imgs):
    """Issue 17, finding 6: an author's own acceptance would count as reviewed training
    data; refused (names ignore case) unless the project allows self-review."""
    a, b = imgs[:2]
    save(store, a, 1)                                   # submitted by "ann"
    with pytest.raises(ReviewError, match="cannot accept their own submission"):
        store.review(a, 1, "accepted", "", "ANN")
    assert store.get_image(a).review == "pending" and store.list_reviews(a) == []
    store.review(a, 1, "rejected", "on second look, the sky is wrong", "ann")  # sending it back is fine
    save(store, b, 2)
    assert store.get_project("p").allow_self_review is False
    assert store.set_self_review("p", True).allow_self_review is True
    assert store.review(b, 1, "accepted", "", "ann").decision == "accepted"
    with pytest.raises(ValidationError):
        store.set_self_review("p", "yes")
