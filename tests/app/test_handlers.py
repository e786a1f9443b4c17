"""Handlers over the real model and a SQLite store (no Gradio, no browser)."""
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segui.imageops import hex_color
from segui.canvas import codec
from segui.handlers import DEMO_AUTHOR, DEMO_DIR, DEMO_PROJECT, VAL_EVERY, Studio, UserError, auto_split, parse_classes

from .conftest import png_bytes


def street(i=0):
    return np.array(Image.open(sorted(DEMO_DIR.glob("*.jpg"))[i]).convert("RGB"))


def test_demo_project_on_first_start(demo_studio):
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    assert p.ignore_index == 11 and p.class_names[0] == "sky" and len(p.classes) == 11
    mv = st.store.active_model_version(p.id)
    assert mv.metrics["val_miou"] > 0.5 and "car" in mv.metrics["val_per_class_iou"]
    imgs = st.store.list_images(p.id, status="unlabelled", order="uncertainty")
    assert len(imgs) == 4 and all(i.uncertainty is not None for i in imgs)
    # labelled images (ground truth), split by the automatic rule: a first job can be promoted
    done = st.store.list_images(p.id, status="submitted")
    assert len(done) == 10 and {i.annotated_by for i in done} == {DEMO_AUTHOR}
    assert all(i.split == auto_split(i.sha256) for i in done)
    assert st.split_counts(p.id) == {"train": 4, "val": 6}
    assert "is promoted when its mIoU on the 6 val images" in st.promotion_readiness(p.id)
    pred = st.store.get_prediction(imgs[0].id)
    assert pred.class_map.shape == (360, 480)
    assert (pred.class_map == 3).mean() > 0.15            # road is predicted on a street image
    assert st.ensure_demo() is None                        # second start: nothing added
    st.remove_project(p.name)
    assert st.project_names() == [] and st.ensure_demo() is None    # a removed demo is not made again
    assert st.removed_project_names() == [p.name]
    st.restore_project(p.name)
    assert "CPU" in st.device_name or "GPU" in st.device_name


def test_parse_classes_and_bad_label_sets(studio):
    assert parse_classes("road\ncar #4000ff, traffic light") == [
        {"name": "road"}, {"name": "car", "color": "#4000ff"}, {"name": "traffic light"}]
    for bad in ["", "  \n ", "road\nRoad"]:
        with pytest.raises(UserError):
            studio.create_project("p", bad)
    with pytest.raises(UserError):
        studio.create_project("  ", "road")
    assert studio.store.list_projects() == []             # nothing stored
    p = studio.create_project("p", "road\ncar")
    with pytest.raises(UserError, match="duplicate"):
        studio.add_class("p", "CAR")
    with pytest.raises(UserError, match="already exists"):
        studio.create_project("p", "x")
    assert studio.store.get_project("p").class_names == ["road", "car"]
    assert studio.store.active_model_version(p.id) is not None


def test_update_classes_renames_swaps_and_recolours(studio):
    studio.create_project("p", "road\ncar\nsky")
    p = studio.update_classes("p", [[0, "car", "#010203"], [1, "road", "#ffffff"], [2, "sky", "#000000"]])
    assert p.class_names == ["car", "road", "sky"] and p.classes[0].color == (1, 2, 3)
    for bad in ([[0, "x", "#zzzzzz"]], [[0, "", "#000000"]], [[0, "a", "#000000"], [1, "A", "#000000"]],
                [[7, "new", "#000000"]]):
        with pytest.raises(UserError):
            studio.update_classes("p", bad)
    assert studio.store.get_project("p").class_names == ["car", "road", "sky"]
    with pytest.raises(UserError, match="duplicate"):      # clashes with a class not in the table
        studio.update_classes("p", [[0, "SKY", "#010203"]])
    assert studio.store.get_project("p").class_names == ["car", "road", "sky"]


def test_upload_files_and_zip_with_junk(studio, tmp_path):
    studio.create_project("p", "sky\nroad\ncar")
    good = tmp_path / "a.png"
    good.write_bytes(png_bytes(street(0)))
    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\xff\xd8 garbage")
    z = tmp_path / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("imgs/b.png", png_bytes(street(1)))
        zf.writestr("imgs/readme.md", "junk")
        zf.writestr("imgs/broken.png", b"\x89PNG nope")
        zf.writestr("__MACOSX/imgs/._b.png", b"junk")
    docx = tmp_path / "report.docx"                      # a zip inside, but not an upload zip
    with zipfile.ZipFile(docx, "w") as zf:
        zf.writestr("word/document.xml", "<x/>")
    rep = studio.upload("p", [good, txt, fake, z, docx])
    assert len(rep.added) == 2 and any(s_.startswith("report.docx:") for s_ in rep.skipped)
    rep.skipped = [s_ for s_ in rep.skipped if not s_.startswith("report.docx:")]
    names = " ".join(rep.skipped)
    assert "notes.txt" in names and "fake.jpg" in names and "readme.md" in names and "broken.png" in names
    assert len(rep.skipped) == 4 and "skipped" in rep.message()
    kinds = {name: kind for name, kind, _ in rep.files}
    assert kinds["a.png"] == kinds["batch.zip/imgs/b.png"] == "added"
    assert kinds["notes.txt"] == kinds["fake.jpg"] == "skipped"
    # zip members are named zip/member whether the zip check or the decoder refused them
    assert kinds["batch.zip/imgs/readme.md"] == kinds["batch.zip/imgs/broken.png"] == kinds["report.docx"] == "skipped"
    # the first image is predicted at once, the others in the background
    assert studio.store.get_prediction(rep.added[0]) is not None
    assert studio.wait_idle(60)
    # every added image got a prediction in the project's indices
    for iid in rep.added:
        pred = studio.store.get_prediction(iid)
        assert pred is not None and set(np.unique(pred.class_map)) <= {0, 1, 2}
    rep2 = studio.upload("p", [good])
    assert rep2.added == [] and rep2.duplicates == ["a.png"] and rep2.duplicate_ids == [rep.added[0]]
    assert studio.store.count_images("p")["total"] == 2
    # the project's activity says who made it and who added which images; an upload that
    # added nothing (a duplicate) is not recorded
    log = [(what, on) for _, _, what, on in studio.activity("p")]
    assert log == [("images added", "upload: 2 image(s) added, 5 refused"), ("project created", "project p, 3 classes")]
    assert {who for _, who, _, _ in studio.activity("p")} == {"(no login)"}    # a person, not "(system)"
    rec = studio.store.list_activity("p", action="import")[0]
    assert rec.details["files"] == ["a.png", "batch.zip/imgs/b.png"] and rec.details["image_ids"] == rep.added
    # without a login, the activity names each browser session by the name typed in *Your
    # name* (the guard asks with each event; a Label-screen event carries the name)
    assert studio.session_typed_name("s1", "  Ann  ") == "Ann"
    assert studio.session_typed_name("s1") == "Ann" and studio.session_typed_name("s2") is None
    assert studio.session_typed_name("s1", "a\u200bb") == "Ann"      # a refused name keeps the last good one
    assert studio.session_typed_name(None, "Ann") is None             # no session, nothing to remember
    from segui.access import Principal
    assert Principal(None, "admin", typed="Ann").actor == "Ann" and Principal("boss", "admin", typed="Ann").actor == "boss"


def test_huge_image_is_refused_and_nothing_stored(studio, tmp_path):
    studio.create_project("p", "sky")
    big = tmp_path / "huge.png"
    Image.new("RGB", (6000, 6000)).save(big)          # 36 MP > the app's 30 MP limit
    rep = studio.upload("p", [big])
    assert rep.added == [] and "huge.png" in rep.skipped[0]
    assert studio.store.count_images("p")["total"] == 0
    with pytest.raises(UserError):
        studio.upload("", [big])


def test_unlabelled_queue_takes_the_most_uncertain_scene_not_yet_submitted(bare_demo_studio):
    """Most uncertain first, weighed by how unlike the submitted images it looks
    (common.queue_order): a near-duplicate of a submitted scene waits, however uncertain."""
    st = bare_demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    v = st.model_version(p.id)
    imgs = sorted(st.store.list_images(DEMO_PROJECT, status="unlabelled"), key=lambda im: im.id)
    assert len(imgs) == 4
    h, w = imgs[0].height, imgs[0].width
    sky, building, road = (next(c.index for c in p.classes if c.name == n) for n in ("sky", "building", "road"))
    X = np.full((h, w), road, np.uint8)
    X[: h // 2] = sky                                  # one scene: sky above road
    Y = np.full((h, w), road, np.uint8)
    Y[:, : w // 2] = building                          # another: a building on the left
    for im, m, u in zip(imgs, (X, X, Y, Y), (0.9, 0.8, 0.5, 0.1)):
        st.store.save_prediction(im.id, v.id, m, u)
    a, b, c, d = (im.id for im in imgs)
    assert st.next_image(DEMO_PROJECT) == a            # nothing submitted: the most uncertain
    assert st.next_image(DEMO_PROJECT, "unlabelled", (a,)) == c   # a still open (the prefetch): it counts
    st.save(a, X, "alice", "submitted", 0)
    assert st.next_image(DEMO_PROJECT) == c            # b (0.8) repeats a's scene: c (0.5) first
    # c open: b repeats a, d repeats c, both score 0: then the most uncertain of them
    assert st.next_image(DEMO_PROJECT, "unlabelled", (c,)) == b
    Z = np.full((h, w), building, np.uint8)
    st.store.save_prediction(b, v.id, Z, 0.7)          # a new prediction of b: a new scene now
    assert st.next_image(DEMO_PROJECT) == b
    st.store.add_class(DEMO_PROJECT, "lamp post")      # every layout is longer now: none kept mixes in
    st.store.save_prediction(c, v.id, Y, 0.45)         # (a layout made after the class came)
    assert st.next_image(DEMO_PROJECT) == b
    st.save(c, Y, "alice", "submitted", 0)
    st.save(b, Z, "alice", "submitted", 0)
    assert st.next_image(DEMO_PROJECT) == d
    assert st.next_image(DEMO_PROJECT, "unlabelled", (d,)) is None


def test_queue_order_filters_and_open(demo_studio):
    st = demo_studio
    imgs = st.store.list_images(DEMO_PROJECT, status="unlabelled")
    most = st.store.get_image(st.next_image(DEMO_PROJECT))   # its pick: test_unlabelled_queue_...
    assert most.status == "unlabelled" and most.id in {im.id for im in imgs}
    assert st.next_image(DEMO_PROJECT, "unlabelled", (most.id,)) not in (most.id, None)
    assert st.next_image(DEMO_PROJECT, "draft") is None
    loaded = st.open_image(most.id)
    assert loaded.base_revision == 0 and loaded.source.startswith("prediction")
    st.save(most.id, loaded.class_map, "alice", "submitted", 0)
    assert st.next_image(DEMO_PROJECT, "submitted") == most.id
    assert st.next_image(DEMO_PROJECT) != most.id
    again = st.open_image(most.id)
    assert again.base_revision == 1 and "alice" in again.source
    submitted = [r[0] for r in st.queue(DEMO_PROJECT, "submitted")]
    assert submitted[0] == most.id and len(submitted) == 1 + 10          # and the demo's labelled ones
    with pytest.raises(UserError):
        st.next_image(DEMO_PROJECT, "bogus")


def test_save_conflict_keeps_both_versions(demo_studio):
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    a = st.open_image(iid)
    b = st.open_image(iid)
    mine = a.class_map.copy()
    mine[:10] = 8
    theirs = b.class_map.copy()
    theirs[:10] = 0
    r1 = st.save(iid, theirs, "bob", "submitted", b.base_revision)
    assert r1.conflict is None and r1.revision == 1
    r2 = st.save(iid, mine, "alice", "submitted", a.base_revision)
    assert r2.conflict and "bob" in r2.conflict and r2.revision == 2 and r2.status == "draft"
    np.testing.assert_array_equal(st.store.get_annotation(iid, 1).class_map, theirs)
    np.testing.assert_array_equal(st.store.get_annotation(iid, 2).class_map, mine)
    assert len(st.revisions(iid)) == 2


def test_store_edit_from_the_pages_outbox_is_idempotent_and_keeps_conflicts(demo_studio):
    """Issue 17: an edit the page journaled is stored once, even when sent again after
    its answer was lost; someone else's newer revision stays (both kept)."""
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    mine = st.open_image(iid).class_map.copy()
    mine[:12] = 3
    r1 = st.store_edit(iid, mine, "ann", 0)
    assert (r1.revision, r1.status, r1.same, r1.conflict) == (1, "draft", False, None)
    r2 = st.store_edit(iid, mine, "ann", 0)           # sent again: nothing new stored
    assert (r2.revision, r2.same) == (1, True)
    theirs = mine.copy()
    theirs[-5:] = 1
    st.save(iid, theirs, "bob", "draft", 1)
    newer = mine.copy()
    newer[20:30] = 2
    r3 = st.store_edit(iid, newer, "ann", 1)           # made on revision 1; bob saved 2 meanwhile
    assert r3.revision == 3 and r3.conflict and "bob" in r3.conflict
    np.testing.assert_array_equal(st.store.get_annotation(iid, 2).class_map, theirs)
    np.testing.assert_array_equal(st.store.get_annotation(iid, 3).class_map, newer)
    assert len(st.revisions(iid)) == 3


def test_a_conflict_names_the_three_revisions_the_compare_view_needs(demo_studio):
    """Issue 17: a save that meets someone else's newer revision says which revisions
    the page compares (the base it was made on, theirs, mine) and serves their maps."""
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    pred = st.open_image(iid).class_map.copy()
    theirs, mine = pred.copy(), pred.copy()
    theirs[:10] = 1
    mine[-10:] = 2
    assert st.save(iid, theirs, "bob", "draft", 0).conflict_info() is None
    r = st.save(iid, mine, "ann", "draft", 0)
    assert r.conflict_info() == {"mine": 2, "theirs": 1, "base": 0, "author": "bob"}
    maps = st.revision_maps(iid, [0, 1, 2])
    np.testing.assert_array_equal(maps[0], pred)       # 0: the prediction the labeller started from
    np.testing.assert_array_equal(maps[1], theirs)
    np.testing.assert_array_equal(maps[2], mine)
    with pytest.raises(UserError, match="no revision 3"):
        st.revision_maps(iid, [3])
    with pytest.raises(UserError):
        st.revision_maps(iid, [0, 1, 2, 0.5])
    with pytest.raises(UserError, match="1 to 3"):
        st.revision_maps(iid, list(range(4)))


def test_reopen_after_the_server_lost_the_session_keeps_the_pages_base(demo_studio):
    """Issue 17: a page still showing an image the server no longer holds for it (a
    restart) gets it reopened at the page's revision: its edits are unsaved edits and a
    save conflicts only with what was stored after that revision."""
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    pred = st.open_image(iid).class_map.copy()
    lo = st.reopen(DEMO_PROJECT, iid, 0)
    assert lo.base_revision == 0 and np.array_equal(lo.class_map, pred)
    page = pred.copy()
    page[:5] = 3
    assert st.has_unsaved(lo, page)
    assert st.save_edits(lo, page, "ann").conflict is None
    other = page.copy()
    other[-5:] = 4
    st.save(iid, other, "bob", "draft", 1)
    lo = st.reopen(DEMO_PROJECT, iid, 1)                # the page is still on revision 1
    assert lo.base_revision == 1 and np.array_equal(lo.class_map, page)
    res = st.save_edits(lo, page, "ann")                # ... so bob's revision 2 is a conflict
    assert res.conflict and res.conflict_info()["theirs"] == 2
    assert st.reopen(DEMO_PROJECT, iid, "x").base_revision == 3   # no number: the latest
    with pytest.raises(UserError):
        st.reopen(DEMO_PROJECT, 10 ** 6, 0)


def test_save_bad_input(demo_studio):
    st = demo_studio
    with pytest.raises(UserError, match="nothing to save"):
        st.save(None, None, "alice")
    iid = st.next_image(DEMO_PROJECT)
    with pytest.raises(UserError, match="name"):
        st.save(iid, st.open_image(iid).class_map, "  ")
    with pytest.raises(UserError):
        st.save(iid, np.full((360, 480), 99, np.uint8), "alice")       # value outside the label set
    with pytest.raises(UserError):
        st.save(iid, np.zeros((10, 10), np.uint8), "alice")            # wrong size
    assert st.store.list_annotation_revisions(iid) == []


def test_text_prompt_and_accept_adds_a_class(demo_studio):
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    loaded = st.open_image(iid)
    mask = st.text_prompt(DEMO_PROJECT, loaded, "road")             # an existing class: its own mask
    np.testing.assert_array_equal(mask, loaded.class_map == 3)
    mask = st.text_prompt(DEMO_PROJECT, loaded, "traffic light")
    assert mask.shape == (360, 480) and mask.dtype == bool
    forced = np.zeros_like(mask)
    forced[:5, :5] = True
    p, out = st.accept_prompt(DEMO_PROJECT, loaded.class_map, forced, "traffic light", add_class=True)
    tl = next(c.index for c in p.classes if c.name == "traffic light")
    assert tl == 12                                                   # after void (11)
    assert (out[:5, :5] == tl).all() and (out[5:] == loaded.class_map[5:]).all()
    with pytest.raises(UserError):
        st.accept_prompt(DEMO_PROJECT, loaded.class_map, np.zeros_like(mask), "x")
    with pytest.raises(UserError):
        st.text_prompt(DEMO_PROJECT, loaded, "   ")
    # the new class can be saved and the next prediction knows it
    st.save(iid, out, "alice", "draft", 0)
    assert st.predict(DEMO_PROJECT, iid).max() <= 12


def test_tools_through_studio(demo_studio):
    st = demo_studio
    loaded = st.open_image(st.next_image(DEMO_PROJECT))
    out = st.superpixel_fill(DEMO_PROJECT, loaded, loaded.class_map, 240, 300, "car")
    changed = out != loaded.class_map
    assert out[300, 240] == 8 and changed.sum() > 0 and (out[changed] == 8).all()
    with pytest.raises(UserError):
        st.superpixel_fill(DEMO_PROJECT, loaded, loaded.class_map, 999, 5, "car")
    cleaned = st.clean_up(DEMO_PROJECT, loaded.class_map, 200)
    assert (cleaned != loaded.class_map).sum() > 0
    with pytest.raises(UserError):
        st.clean_up(DEMO_PROJECT, loaded.class_map, 0)


def test_model_panel_and_export(bare_demo_studio, tmp_path):
    st = bare_demo_studio
    text, per_class = st.model_summary(DEMO_PROJECT)
    assert "mIoU" in text and len(per_class) == 11 and dict(per_class)["road"] > 0.9
    assert "measured on this project" not in text                # the demo's label set is the model's
    with pytest.raises(UserError, match="no annotated"):
        st.export(DEMO_PROJECT, "folder")
    iid = st.next_image(DEMO_PROJECT)
    cm = st.open_image(iid).class_map
    st.save(iid, cm, "alice", "submitted", 0)
    for fmt in ("folder", "voc", "coco"):
        z = st.export(DEMO_PROJECT, fmt)
        with zipfile.ZipFile(z) as zf:
            assert len(zf.namelist()) >= 2
            if fmt == "folder":
                lbl = [n for n in zf.namelist() if n.startswith("labels/")][0]
                np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(zf.read(lbl)))), cm)
    with pytest.raises(UserError):
        st.export(DEMO_PROJECT, "xml")
    mv2 = st.store.add_model_version(DEMO_PROJECT, str(st.default_model_dir), metrics=None, name="copy")
    st.activate_model(DEMO_PROJECT, mv2.id)
    assert st.store.active_model_version(DEMO_PROJECT).id == mv2.id
    assert "No metrics" in st.model_summary(DEMO_PROJECT)[0]
    assert any("(active)" in label and v == mv2.id for label, v in st.model_versions(DEMO_PROJECT))
    other = st.create_project("other", "a")
    with pytest.raises(UserError):
        st.activate_model("other", mv2.id)
    del other


def test_large_image_is_predicted_downscaled_at_full_size(studio, tmp_path):
    studio.create_project("p", "sky\nroad")
    big = Image.fromarray(street(0)).resize((1600, 1200), Image.NEAREST)   # 1.9 MP > PREDICT_MAX_PIXELS
    path = tmp_path / "big.png"
    big.save(path)
    rep = studio.upload("p", [path])
    pred = studio.store.get_prediction(rep.added[0]).class_map
    assert pred.shape == (1200, 1600) and set(np.unique(pred)) == {0, 1}
    ready = studio.prepare(rep.added[0])
    np.testing.assert_array_equal(ready.loaded.class_map, pred)
    np.testing.assert_array_equal(ready.prediction, pred)
    assert ready.photo.startswith("data:image/png;base64,")        # the original bytes
    np.testing.assert_array_equal(codec.decode_map(codec.encode_map(pred), 1200, 1600), pred)


# --------------------------------------------------------------------------- the labelling rules

def names_to_idx(st, project=DEMO_PROJECT) -> dict[str, int]:
    return {c.name: c.index for c in st.store.get_project(project).classes}


def test_has_unsaved_and_leave(demo_studio):
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    loaded = st.open_image(iid)
    assert not Studio.has_unsaved(None, loaded.class_map) and not Studio.has_unsaved(loaded, None)
    assert not Studio.has_unsaved(loaded, loaded.class_map.copy())
    # an image only looked at: nothing stored
    assert st.leave(loaded, loaded.class_map.copy(), "alice") is None
    assert st.leave(loaded, None, "alice") is None and st.leave(None, None, "alice") is None
    assert st.store.list_annotation_revisions(iid) == []
    # edits not saved yet become a draft when the labeller leaves
    edited = loaded.class_map.copy()
    edited[:20, :20] = names_to_idx(st)["car"]
    assert Studio.has_unsaved(loaded, edited)
    res = st.leave(loaded, edited, " alice ")
    assert res.revision == 1 and res.status == "draft" and res.conflict is None
    a = st.store.get_annotation(iid)
    assert a.author == "alice" and a.status == "draft"
    np.testing.assert_array_equal(a.class_map, edited)
    # the open image now counts as saved at that revision
    assert loaded.base_revision == 1 and loaded.status == "draft" and "revision 1 by alice" in loaded.source
    assert not Studio.has_unsaved(loaded, edited)
    np.testing.assert_array_equal(loaded.tool_base, edited)
    edited[0, 0] = names_to_idx(st)["sky"]                 # the caller's array is not kept by reference
    assert Studio.has_unsaved(loaded, edited)
    assert st.leave(loaded, loaded.class_map.copy(), "alice") is None
    assert len(st.store.list_annotation_revisions(iid)) == 1


def test_save_edits_stores_a_conflict_as_a_draft_and_keeps_both(demo_studio):
    st = demo_studio
    iid = st.next_image(DEMO_PROJECT)
    mine, theirs = st.open_image(iid), st.open_image(iid)     # two labellers open the same image
    idx = names_to_idx(st)
    b = theirs.class_map.copy()
    b[:10] = idx["sky"]
    r1 = st.save_edits(theirs, b, "bob", "submitted")
    assert r1.revision == 1 and r1.status == "submitted" and r1.conflict is None
    a = mine.class_map.copy()
    a[:10] = idx["car"]
    r2 = st.save_edits(mine, a, "alice", "submitted")
    assert r2.conflict and "bob" in r2.conflict and "revision 1" in r2.conflict
    assert r2.revision == 2 and r2.status == "draft"                 # stored on top of theirs, as a draft
    assert mine.base_revision == 2 and mine.status == "draft"
    np.testing.assert_array_equal(st.store.get_annotation(iid, 1).class_map, b)
    np.testing.assert_array_equal(st.store.get_annotation(iid, 2).class_map, a)
    assert st.store.get_annotation(iid, 1).status == "submitted"
    assert [r.split(":")[0] for r in st.revisions(iid)] == ["1", "2"]
    # leaving with edits on an image someone else saved meanwhile: a conflict too
    b2 = b.copy()
    b2[-10:] = idx["sky"]
    res = st.leave(theirs, b2, "bob")
    assert res.conflict and "alice" in res.conflict and res.revision == 3
    with pytest.raises(UserError, match="nothing to save"):
        st.save_edits(None, a, "alice")
    with pytest.raises(UserError, match="name"):
        st.save_edits(mine, a, "  ")
    assert len(st.revisions(iid)) == 3


def test_open_in_project_refuses_other_projects_and_missing_images(demo_studio):
    st = demo_studio
    st.create_project("other", "sky\nroad")
    foreign = st.store.add_image("other", png_bytes(street(2)), "foreign.png").id
    with pytest.raises(UserError, match=f"there is no image {foreign} in this project"):   # as if missing
        st.open_in_project(DEMO_PROJECT, foreign)
    assert st.store.get_prediction(foreign) is None          # refused before any work
    for missing in (987654, "abc", None):
        with pytest.raises(UserError, match="no image"):
            st.open_in_project(DEMO_PROJECT, missing)
    ready = st.open_in_project("other", foreign)
    assert ready.loaded.image_id == foreign and ready.loaded.project_id == st.store.get_project("other").id
    assert set(np.unique(ready.prediction)) <= {0, 1}
    own = st.store.list_images(DEMO_PROJECT)[0].id
    assert st.open_in_project(DEMO_PROJECT, own).loaded.image_id == own
    with pytest.raises(UserError, match="no revision 5"):
        st.open_in_project(DEMO_PROJECT, own, revision=5)


def test_author_login_wins_and_empty_is_refused():
    assert Studio.author("typed", "login") == "login"
    assert Studio.author("  bob  ", None) == "bob"
    assert Studio.author("bob", "") == "bob"
    assert Studio.author(None, " carol ") == "carol"
    for typed, login in [("", None), ("   ", ""), (None, None), ("", "  ")]:
        with pytest.raises(UserError, match="name"):
            Studio.author(typed, login)


def test_strip_counts_pages_and_positions(bare_demo_studio):
    st = bare_demo_studio
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]
    assert len(ids) == 4
    s = st.strip(DEMO_PROJECT, ids[1])
    assert s["current"] == ids[1] and s["total"] == 4 and (s["page"], s["pages"]) == (0, 1)
    assert (s["unlabelled"], s["draft"], s["submitted"]) == (4, 0, 0)
    assert [it["id"] for it in s["items"]] == ids and [it["pos"] for it in s["items"]] == [1, 2, 3, 4]
    assert all(it["status"] == "unlabelled" and it["name"].endswith(".jpg") for it in s["items"])
    cm = st.open_image(ids[0]).class_map
    st.save(ids[0], cm, "alice", "draft", 0)
    st.save(ids[3], cm, "alice", "submitted", 0)
    s = st.strip(DEMO_PROJECT, None)
    assert (s["unlabelled"], s["draft"], s["submitted"], s["total"], s["labelled"]) == (2, 1, 1, 4, 1)
    assert [it["status"] for it in s["items"]] == ["draft", "unlabelled", "unlabelled", "submitted"]
    # pages: the one holding the open image, or the one asked for (clamped)
    s = st.strip(DEMO_PROJECT, ids[3], page_size=3)
    assert [(it["id"], it["pos"]) for it in s["items"]] == [(ids[3], 4)] and (s["page"], s["pages"]) == (1, 2)
    s = st.strip(DEMO_PROJECT, ids[2], page_size=3)
    assert [it["pos"] for it in s["items"]] == [1, 2, 3] and s["page"] == 0
    s = st.strip(DEMO_PROJECT, ids[0], page=1, page_size=2)
    assert [(it["id"], it["pos"]) for it in s["items"]] == [(ids[2], 3), (ids[3], 4)]
    s = st.strip(DEMO_PROJECT, None, page=99, page_size=1)
    assert [it["pos"] for it in s["items"]] == [4] and s["page"] == 3


def test_prepare_reuses_a_prefetched_image_until_it_is_saved(demo_studio, monkeypatch):
    st = demo_studio
    first = st.next_image(DEMO_PROJECT)
    nxt = st.next_image(DEMO_PROJECT, "unlabelled", (first,))
    st.prefetch_next(DEMO_PROJECT, "unlabelled", first)       # what Next would open after `first`
    assert st.wait_idle(60)
    assert nxt in st._ready and nxt in st._segments
    loads = []
    real_load = st.store.load_image
    monkeypatch.setattr(st.store, "load_image", lambda iid: loads.append(iid) or real_load(iid))
    ready = st.prepare(nxt)
    assert loads == []                                        # from the cache: no decoding, no prediction
    pred = st.store.get_prediction(nxt).class_map
    np.testing.assert_array_equal(ready.loaded.class_map, pred)
    np.testing.assert_array_equal(ready.prediction, pred)
    assert ready.loaded.base_revision == 0 and ready.photo.startswith("data:image/jpeg")
    # what the caller gets is its own copy: changing it does not change the cache
    ready.loaded.class_map[:] = names_to_idx(st)["car"]
    ready.loaded.base_revision = 42
    again = st.prepare(nxt)
    np.testing.assert_array_equal(again.loaded.class_map, pred)
    assert again.loaded.base_revision == 0 and loads == []
    # a split chosen meanwhile (no new revision) is served as stored (the cached entry used to
    # give the split of when it was computed: the page showed "automatic" for an image in val)
    assert again.loaded.split == "none"
    st.set_split(DEMO_PROJECT, nxt, "val")
    assert st.prepare(nxt).loaded.split == "val" and loads == []
    # after a save the cached entry is stale: the new revision is shown
    edited = pred.copy()
    edited[:30] = names_to_idx(st)["sky"]
    st.save_edits(again.loaded, edited, "alice")
    after = st.prepare(nxt)
    assert loads == [nxt]
    np.testing.assert_array_equal(after.loaded.class_map, edited)
    np.testing.assert_array_equal(after.prediction, pred)
    assert after.loaded.base_revision == 1 and "revision 1 by alice" in after.loaded.source
    # an explicit revision is never served from (nor stored in) the cache
    st.save_edits(after.loaded, pred.copy(), "alice")
    np.testing.assert_array_equal(st.prepare(nxt, revision=1).loaded.class_map, edited)
    np.testing.assert_array_equal(st.prepare(nxt).loaded.class_map, pred)
    assert st.prepare(nxt).loaded.base_revision == 2


def test_upload_reports_each_file_and_refuses_tiny_images(studio, tmp_path):
    studio.create_project("p", "sky\nroad\ncar")
    paths = []
    for i in range(3):
        path = tmp_path / f"street{i}.png"
        path.write_bytes(png_bytes(street(i)))
        paths.append(path)
    dot = tmp_path / "dot.png"
    dot.write_bytes(png_bytes(np.zeros((1, 1, 3), np.uint8)))
    line = tmp_path / "line.png"
    line.write_bytes(png_bytes(np.zeros((1, 5000, 3), np.uint8)))   # 5000 wide, 1 high
    rep = studio.upload("p", [paths[0], dot, paths[1], line, paths[2]])
    assert [(n, k) for n, k, _ in rep.files] == [("street0.png", "added"), ("dot.png", "skipped"),
                                                ("street1.png", "added"), ("line.png", "skipped"),
                                                ("street2.png", "added")]
    msgs = dict((n, m) for n, _, m in rep.files)
    assert "too small" in msgs["dot.png"] and "1x1" in msgs["dot.png"]
    assert "too small" in msgs["line.png"] and "5000x1" in msgs["line.png"]
    assert any(s.startswith("dot.png:") and "too small" in s for s in rep.skipped)
    assert any(s.startswith("line.png:") and "too small" in s for s in rep.skipped)
    assert "dot.png" in rep.message() and "line.png" in rep.message()
    assert len(rep.added) == 3 and rep.to_open == rep.added[0]
    for iid, (name, _, msg) in zip(rep.added, [f for f in rep.files if f[1] == "added"]):
        assert msg.startswith(f"added as image {iid}, 480x360")
    # the first new image is predicted before upload returns, the others in the background
    assert studio.store.get_prediction(rep.added[0]) is not None
    assert studio.wait_idle(60)
    for iid in rep.added:
        pred = studio.store.get_prediction(iid)
        assert pred is not None and pred.class_map.shape == (360, 480)
    assert studio.store.count_images("p")["total"] == 3
    # the same image again (under another name): a duplicate, opened instead of a new one
    again = tmp_path / "copy of street1.png"
    again.write_bytes(paths[1].read_bytes())
    rep2 = studio.upload("p", [again, dot])
    assert rep2.added == [] and rep2.duplicate_ids == [rep.added[1]] and rep2.to_open == rep.added[1]
    assert rep2.files[0][:2] == ("copy of street1.png", "duplicate")
    assert f"image {rep.added[1]}" in rep2.files[0][2] and "street1.png" in rep2.files[0][2]
    assert rep2.files[1][:2] == ("dot.png", "skipped")
    assert studio.store.count_images("p")["total"] == 3
    # only bad files: nothing to open
    rep3 = studio.upload("p", [dot])
    assert rep3.to_open is None and rep3.added == []
    with pytest.raises(UserError, match="no files"):
        studio.upload("p", [])


def test_accept_prompt_adds_a_new_class_only_when_told(demo_studio):
    st = demo_studio
    loaded = st.open_image(st.next_image(DEMO_PROJECT))
    mask = np.zeros(loaded.class_map.shape, bool)
    mask[10:20, 30:50] = True
    names = st.store.get_project(DEMO_PROJECT).class_names
    old_idx = set(names_to_idx(st).values())
    with pytest.raises(UserError, match="not a class"):
        st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask, "street lamp")
    assert st.store.get_project(DEMO_PROJECT).class_names == names          # nothing added
    # an existing class (any case) needs no consent
    p, out = st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask, "ROAD")
    road = names_to_idx(st)["road"]
    assert p.class_names == names and (out[mask] == road).all()
    np.testing.assert_array_equal(out[~mask], loaded.class_map[~mask])
    p, out = st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask, " street lamp ", add_class=True)
    assert p.class_names == names + ["street lamp"]
    lamp = names_to_idx(st)["street lamp"]
    assert (out[mask] == lamp).all() and lamp != p.ignore_index and lamp not in old_idx
    np.testing.assert_array_equal(out[~mask], loaded.class_map[~mask])
    # the same name again is now a class: no second one
    p, _ = st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask, "Street Lamp", add_class=True)
    assert p.class_names == names + ["street lamp"]
    with pytest.raises(UserError, match="name"):
        st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask, "  ", add_class=True)
    with pytest.raises(UserError, match="another image"):
        st.accept_prompt(DEMO_PROJECT, loaded.class_map, mask[:100], "road")


def test_clean_up_keeps_thin_classes_by_default(demo_studio):
    st = demo_studio
    idx = names_to_idx(st)
    pole, road, car = idx["pole"], idx["road"], idx["car"]
    thin = st.thin_classes(DEMO_PROJECT)
    assert pole in thin and road not in thin and car not in thin
    cm = np.full((360, 480), road, np.uint8)
    cm[50:150, 300:400] = car                        # a big car
    cm[200:204, 100:104] = car                       # a 16 px car speck
    cm[100:140, 50:53] = pole                        # a pole: 3 x 40 = 120 px
    cm[250:300, 350:400] = pole                      # a big pole region: pole survives as a class anyway
    out = st.clean_up(DEMO_PROJECT, cm, 500)         # default keep: the thin classes
    assert (out[100:140, 50:53] == pole).all()       # the thin region survives a min_size above its size
    assert (out[200:204, 100:104] == road).all()     # the speck is gone
    assert ((out != cm).sum()) == 16
    np.testing.assert_array_equal(out, st.clean_up(DEMO_PROJECT, cm, 500, keep=thin))
    bare = st.clean_up(DEMO_PROJECT, cm, 500, keep=[])
    assert (bare[100:140, 50:53] == road).all() and (bare[250:300, 350:400] == pole).all()
    with pytest.raises(UserError, match="no class with index 77"):
        st.clean_up(DEMO_PROJECT, cm, 500, keep=[77])
    for bad in (0, -3, "many", None):
        with pytest.raises(UserError, match="minimum region size"):
            st.clean_up(DEMO_PROJECT, cm, bad)


def test_upload_lines_follow_the_upload_order(studio, tmp_path):
    studio.create_project("p", "sky\nroad")
    first = tmp_path / "first.png"
    first.write_bytes(png_bytes(street(0)))
    z = tmp_path / "later.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("notes.md", "junk")
    rep = studio.upload("p", [first, z], predict=False)
    assert [(n, k) for n, k, _ in rep.files] == [("first.png", "added"), ("later.zip/notes.md", "skipped")]


# --------------------------------------------------------------------------- val split

def test_auto_split_holds_out_one_in_five_stably():
    import hashlib
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    splits = [auto_split(h) for h in shas]
    assert set(splits) == {"train", "val"}
    assert abs(splits.count("val") / len(splits) - 1 / VAL_EVERY) < 0.03
    assert [auto_split(h) for h in shas] == splits           # stable


def test_submit_gives_an_image_its_split_and_keeps_a_chosen_one(demo_studio):
    st = demo_studio
    a, b = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    la = st.prepare(a).loaded
    st.save_edits(la, la.class_map, "ann", "draft")
    assert st.store.get_image(a).split == "none"              # a draft decides nothing
    st.save_edits(la, la.class_map, "ann", "submitted")
    info = st.store.get_image(a)
    assert info.split == auto_split(info.sha256) == la.split
    assert st.set_split(DEMO_PROJECT, b, "val") == "val"      # the labeller's choice stays
    lb = st.prepare(b).loaded
    st.save_edits(lb, lb.class_map, "ann", "submitted")
    assert st.store.get_image(b).split == "val"
    # back to automatic on a submitted image: decided at once
    assert st.set_split(DEMO_PROJECT, b, "none") == auto_split(st.store.get_image(b).sha256)
    with pytest.raises(UserError):
        st.set_split(DEMO_PROJECT, b, "test")
    other = st.create_project("other", "x, y")
    with pytest.raises(UserError, match=f"there is no image {b} in this project"):
        st.set_split(other.name, b, "val")


def test_split_counts_and_why_a_job_would_not_be_promoted(bare_demo_studio):
    st = bare_demo_studio
    assert "Nothing to train on" in st.promotion_readiness(DEMO_PROJECT)
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]
    for iid, split in zip(ids, ["train", "val", "val", "none"]):
        st.set_split(DEMO_PROJECT, iid, split)
        st.store.save_annotation(iid, st.prepare(iid).loaded.class_map, "ann", "submitted", 0)
    assert st.split_counts(DEMO_PROJECT) == {"train": 2, "val": 2}
    msg = st.promotion_readiness(DEMO_PROJECT)
    assert "2 submitted val image(s), at least 5 needed" in msg


# --------------------------------------------------------------------------- evaluation, fresh predictions

def test_evaluate_on_the_projects_val_images_with_its_own_classes(bare_demo_studio, monkeypatch):
    st = bare_demo_studio
    with pytest.raises(UserError, match="no submitted val images"):
        st.evaluate_on_val(DEMO_PROJECT)
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    p = st.store.get_project(DEMO_PROJECT)
    truths = []
    for iid in ids:
        st.set_split(DEMO_PROJECT, iid, "val")
        cm = st.prepare(iid).loaded.class_map.copy()
        cm[:40] = p.ignore_index                              # void rows are not counted
        cm[40:60, :100] = p.class_indices[0]                  # some pixels labelled sky that it predicts otherwise
        st.store.save_annotation(iid, cm, "ann", "submitted", 0)
        truths.append(cm)
    ev = st.evaluate_on_val(DEMO_PROJECT)
    assert ev["images"] == 2 and ev["names"] == p.class_names
    gt = np.concatenate([t.ravel() for t in truths])
    want_px = [int((gt == c).sum()) for c in p.class_indices]
    assert ev["val_pixels"] == want_px
    conf = np.array(ev["confusion"])
    assert conf.sum() <= sum(want_px) and 0 < ev["miou"] < 1
    sky = p.class_names.index("sky")
    assert ev["iou"][sky] < 1.0                                # the relabelled pixels count as errors
    # cached: asking again predicts nothing
    monkeypatch.setattr(st, "_predict_map", lambda *a, **k: (_ for _ in ()).throw(AssertionError("predicted")))
    assert st.evaluate_on_val(DEMO_PROJECT) is ev
    assert st.cached_evaluation(DEMO_PROJECT, ev["version"]) is ev
    assert st.version_history(DEMO_PROJECT)[0]["measured"] == "this project's val set now"


def test_recorded_metrics_show_only_the_projects_classes(studio):
    studio.create_project("roads", "road\nsky")
    text, per_class = studio.model_summary("roads")
    assert {c for c, _ in per_class} == {"road", "sky"}
    # the shipped model's CamVid figures are not this project's, and the panel says so
    assert "11 classes, 2 of them this project's; neither this figure nor the chart is measured on this project" in text


def test_a_new_active_model_predicts_the_queue_again(demo_studio):
    st = demo_studio
    assert st.refresh_predictions(DEMO_PROJECT) == 0           # the demo's predictions are the active model's
    mv2 = st.store.add_model_version(DEMO_PROJECT, str(st.default_model_dir), metrics=None, name="again")
    st.activate_model(DEMO_PROJECT, mv2.id)
    unlabelled = [im.id for im in st.store.list_images(DEMO_PROJECT, status="unlabelled")]
    assert st.refresh_predictions(DEMO_PROJECT) == len(unlabelled) > 0
    assert st.wait_idle(120)
    assert all(st.store.get_prediction(i, mv2.id) is not None for i in unlabelled)
    assert st.refresh_predictions(DEMO_PROJECT) == 0           # once per model version


def test_a_new_or_renamed_class_word_predicts_the_images_again(demo_studio):
    """Stored predictions were made for the label set's old words: after a class is added
    (or renamed) they are forgotten, the prepared views too, the queue is predicted again
    in the background and any other image when it opens; colours alone change nothing."""
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.store.active_model_version(p.id)
    queue = [i.id for i in st.store.list_images(p.id, status="unlabelled")]
    done = st.store.list_images(p.id, status="submitted")[0].id
    old = st.prepare(queue[0]).prediction.copy()               # now in the prepared views
    made = {iid: st.store.get_prediction(iid, mv.id).created_at for iid in queue}
    annotation = st.store.get_annotation(done).class_map.copy()
    st.add_class(DEMO_PROJECT, "traffic signal")
    assert st.store.get_prediction(done) is None               # forgotten (predicted again when opened)
    st.wait_idle(60)                                           # the background re-prediction
    q = st.store.get_project(DEMO_PROJECT)
    for iid in queue:                                          # predicted again, with the new word
        pred = st.store.get_prediction(iid, mv.id)
        assert pred is not None and pred.created_at > made[iid]
    expect = st.predict(q.id, queue[0], store=False)
    np.testing.assert_array_equal(st.prepare(queue[0]).prediction, expect)   # not the prepared view
    assert not np.array_equal(expect, old)                     # the word takes pixels (from sign symbol)
    assert np.array_equal(st.store.get_annotation(done).class_map, annotation)   # annotations untouched
    # a rename forgets them again; a colour alone does not
    first = st.store.get_prediction(queue[0], mv.id).created_at
    rows = [[c.index, c.name, hex_color(c.color)] for c in q.classes]
    rows[0][2] = "#123456"
    st.update_classes(DEMO_PROJECT, rows)
    st.wait_idle(60)
    assert st.store.get_prediction(queue[0], mv.id).created_at == first
    rows[-1][1] = "traffic light"
    st.update_classes(DEMO_PROJECT, rows)
    st.wait_idle(60)
    assert st.store.get_prediction(queue[0], mv.id).created_at > first
    # each change is in the project's activity: what, and on what
    log = [(what, on) for _, _, what, on in st.activity(DEMO_PROJECT)[:3]]
    assert log == [("classes changed", "'traffic signal' renamed 'traffic light'"),
                   ("classes changed", "'sky' recoloured"),
                   ("classes changed", "class 'traffic signal' added")]


def test_a_renamed_class_makes_the_explore_metrics_stale(demo_studio):
    """A rename changes every prediction (label_set_changed), so the metrics computed
    from them are recomputed, with the new predictions; a colour alone redraws them."""
    st = demo_studio
    st.refresh_explore_metrics(DEMO_PROJECT)
    assert st.explore_progress(DEMO_PROJECT)["stale"] == 0
    p = st.store.get_project(DEMO_PROJECT)
    rows = [[c.index, c.name, hex_color(c.color)] for c in p.classes]
    rows[6][1] = "traffic sign"                                 # sign symbol
    st.update_classes(DEMO_PROJECT, rows)
    st.wait_idle(60)                                            # the queue predicted again first
    assert st.explore_progress(DEMO_PROJECT)["stale"] == st.explore_progress(DEMO_PROJECT)["images"] == 14
    assert st.refresh_explore_metrics(DEMO_PROJECT) == 14
    mv = st.store.active_model_version(p.id)
    assert all(st.store.get_prediction(i.id, mv.id) is not None for i in st.store.list_images(DEMO_PROJECT))
    assert st.explore_progress(DEMO_PROJECT)["stale"] == 0


def test_a_prediction_made_with_the_old_words_is_not_stored_after_a_class_is_added(demo_studio, monkeypatch):
    """A prediction under way (a prefetch, a background refresh) when a class is added was
    made for the old words: storing it would show the old label set until the next model."""
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.store.active_model_version(p.id)
    done = st.store.list_images(p.id, status="submitted")[0].id   # not in the queue refreshed after the change
    st.store.delete_predictions(p.id)
    started, release = threading.Event(), threading.Event()
    real = st.predictors.class_map_entropy

    def slow(weights_dir, image, names):
        if "traffic signal" not in names:
            started.set()
            assert release.wait(60)
        return real(weights_dir, image, names)

    monkeypatch.setattr(st.predictors, "class_map_entropy", slow)
    t = threading.Thread(target=st.predict, args=(p.id, done))
    t.start()
    assert started.wait(60)
    st.add_class(DEMO_PROJECT, "traffic signal")           # the words change while it predicts
    release.set()
    t.join(60)
    st.wait_idle(60)
    assert st.store.get_prediction(done, mv.id) is None    # not stored: predicted again when opened
    st.predict(p.id, done)                                 # with the new words it is
    assert st.store.get_prediction(done, mv.id) is not None


def test_the_app_can_predict_from_an_enlarged_input(tmp_path):
    """--predict-scale 1.5: the studio's predictors see each image enlarged (the header says
    so), and the maps still come back at the image's size."""
    from storage import Store

    st = Studio(Store(data_dir=tmp_path / "data"), input_scale=1.5)
    try:
        assert st.predictors.input_scale == 1.5 and st.device_name.endswith("input 1.5x")
        # an evaluation made here says its scale next to a job's recorded (1x) figures
        assert st.measured_here() == "this project's val set now (input 1.5x)"
        assert st.predictors.get(st.default_model_dir).input_scale == 1.5
        img = np.asarray(Image.open(sorted(DEMO_DIR.glob("*.jpg"))[0]).convert("RGB"))
        cm, _ = st.predictors.class_map(st.default_model_dir, img, ["sky", "road", "car"])
        assert cm.shape == img.shape[:2] and set(np.unique(cm)) <= {0, 1, 2}
    finally:
        st.store.close()
    with pytest.raises(ValueError, match="input scale must be between"):
        Studio(Store(data_dir=tmp_path / "data2"), input_scale=10)


def test_the_app_can_predict_from_both_views(tmp_path):
    """--predict-flip: the studio's predictors also see each image mirrored, and the header
    and the evaluations made here say so."""
    from storage import Store

    st = Studio(Store(data_dir=tmp_path / "data"), flip=True)
    try:
        assert st.predictors.flip and st.device_name.endswith("each image also seen mirrored")
        assert st.measured_here() == "this project's val set now (also seen mirrored)"
        assert st.predictors.get(st.default_model_dir).flip
    finally:
        st.store.close()


def test_an_image_removed_and_put_back(demo_studio, tmp_path):
    """A wrong upload taken out of the project: out of the queue, counts and strip, not
    opened; another project's image is refused; put back (or uploaded again) it has its
    saved revision; both are in the activity."""
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    total = st.store.count_images(p.id)["total"]
    iid = st.next_image(DEMO_PROJECT, "unlabelled")
    ready = st.open_in_project(DEMO_PROJECT, iid)
    st.save_edits(ready.loaded, ready.prediction, "ann", "draft")
    note = st.remove_image(DEMO_PROJECT, iid)
    assert ready.loaded.filename in note and "puts it back" in note
    assert st.store.count_images(p.id)["total"] == total - 1
    assert iid not in [i.id for i in st.store.list_images(p.id)]
    assert all(st.next_image(DEMO_PROJECT, f) != iid for f in ("unlabelled", "draft", "any"))
    with pytest.raises(UserError, match="was removed.*put it back under Upload"):
        st.open_in_project(DEMO_PROJECT, iid)
    from segui.access import Principal
    with pytest.raises(UserError, match="was removed.*a reviewer or an admin can put it back"):
        st.open_in_project(DEMO_PROJECT, iid, who=Principal("ann", "annotator"))
    assert st.removed_images(DEMO_PROJECT) == [(f"{ready.loaded.filename} (#{iid}, draft)", iid)]
    other = st.create_project("other", "road\nsky")
    with pytest.raises(UserError, match="no image"):
        st.remove_image(other.name, st.next_image(DEMO_PROJECT, "any"))
    with pytest.raises(UserError, match="no image"):
        st.restore_image(other.name, iid)
    assert "is back" in st.restore_image(DEMO_PROJECT, iid)
    back = st.open_in_project(DEMO_PROJECT, iid)
    assert back.loaded.base_revision == 1 and np.array_equal(back.loaded.class_map, ready.prediction)
    # removed while someone has it open: their save is kept with it, and they are told
    st.remove_image(DEMO_PROJECT, iid)
    res = st.save_edits(back.loaded, back.loaded.class_map, "ann", "submitted")
    assert res.removed and res.revision == 2 and "removed meanwhile" in res.note(back.loaded.filename)
    assert st.store.get_annotation(iid).status == "submitted" and iid not in [i.id for i in st.store.review_queue(p.id)]
    # uploaded again after the removal: restored, not refused as a duplicate
    f = tmp_path / "again.jpg"
    f.write_bytes(st.store.image_bytes(iid))
    rep = st.upload(DEMO_PROJECT, [f])
    assert rep.added == [iid] and "restored" in rep.files[0][2] and st.removed_images(DEMO_PROJECT) == []
    assert rep.summary().startswith("Upload: 0 image(s) added, 1 put back")
    log = [(what, on) for _, _, what, on in st.activity(DEMO_PROJECT)
           if what.startswith(("image", "images"))][:4]
    assert [w for w, _ in log] == ["images added", "image restored", "image removed", "image restored"]
    assert all(on == ready.loaded.filename for _, on in log[1:])


def test_a_class_added_by_mistake_can_be_removed(demo_studio):
    """A typo added as a class takes pixels in every prediction; removed (by name, any
    case) the queue is predicted without it. A class saved annotations use is refused."""
    st = demo_studio
    p = st.add_class(DEMO_PROJECT, "bcycle")
    st.wait_idle(60)
    iid = st.next_image(DEMO_PROJECT, "unlabelled")
    mv = st.model_version(p.id)
    typo = p.classes[-1].index
    assert st.store.get_prediction(iid, mv.id) is not None
    with pytest.raises(UserError, match="rename it"):
        st.remove_class(DEMO_PROJECT, "road")
    with pytest.raises(UserError, match="no class 'bus'"):
        st.remove_class(DEMO_PROJECT, "bus")
    q = st.remove_class(DEMO_PROJECT, "BCYCLE")
    assert "bcycle" not in q.class_names and typo not in q.class_indices
    st.wait_idle(60)
    pred = st.store.get_prediction(iid, mv.id)
    assert pred is not None and typo not in np.unique(pred.class_map)      # predicted again without it
    assert st.activity(DEMO_PROJECT)[0][2:] == ["classes changed", "class 'bcycle' removed"]


def test_a_server_function_maps_a_renamed_project_and_refuses_a_missing_one_with_404(studio):
    """A canvas server function (the strip, thumbnails) of a window that still names a
    renamed project reaches it under its new name; a project that does not exist is a
    clear refusal (404, "reload the page"), not a 500 with a traceback in the log."""
    from segui.guard import Refused, acting
    studio.create_project("old name", "sky\nroad")
    studio.rename_project("old name", "new name")
    with acting(studio, None, "strip_page", project="old name") as a:   # mapped, as the events' guard does
        assert a.project == "new name" and studio.strip(a.project, None)["project"] == "new name"
    with pytest.raises(Refused) as e:
        with acting(studio, None, "strip_page", project="never was"):
            studio.strip("never was", None)
    assert e.value.status_code == 404 and "reload the page" in str(e.value)


def test_a_page_that_shows_a_renamed_projects_old_name_is_told_once_a_session(studio, monkeypatch):
    from segui import admin
    assert "reload it to see the new name" in studio.renamed_notice("s1", "old name", "new name")
    assert studio.renamed_notice("s1", "old name", "new name") is None       # told already
    assert studio.renamed_notice("s2", "old name", "new name") is not None   # another window
    assert studio.renamed_notice("s1", "new name", "newer name") is not None  # renamed again
    monkeypatch.setattr(admin, "SESSION_NAMES_KEPT", 2)                       # bounded: the oldest go
    studio.renamed_notice("s3", "a", "b")
    assert studio.renamed_notice("s1", "old name", "new name") is not None


def test_a_moved_shipped_model_is_found_again_at_start(demo_studio, tmp_path):
    """The code folder (and its weights/camvid) moved, or a backup was restored on another
    machine: the demo's first version points to a folder that is gone. At start it points
    to the app's model again; a fine-tuned version's missing folder, or another model's, is
    left as it is (nothing to guess)."""
    st = demo_studio
    mv = st.store.active_model_version(DEMO_PROJECT)
    st.store.move_model_version(mv.id, tmp_path / "old checkout" / "weights" / "camvid")
    job = st.store.add_model_version(DEMO_PROJECT, tmp_path / "gone" / "camvid", parent_id=mv.id)
    other = st.store.add_model_version(DEMO_PROJECT, tmp_path / "gone" / "streets")
    assert st.relink_shipped_model() == [mv.id]
    assert Path(st.store.get_model_version(mv.id).weights_dir) == Path(st.default_model_dir).resolve()
    assert st.store.get_model_version(job.id).weights_dir == str((tmp_path / "gone" / "camvid").resolve())
    assert st.store.get_model_version(other.id).weights_dir == str((tmp_path / "gone" / "streets").resolve())
    assert st.relink_shipped_model() == []                          # nothing left to move
