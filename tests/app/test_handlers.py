"""Handlers over the real model and a SQLite store (no Gradio, no browser)."""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from segui.handlers import DEMO_DIR, DEMO_PROJECT, UserError, parse_classes

from .conftest import png_bytes


def street(i=0):
    return np.array(Image.open(sorted(DEMO_DIR.glob("*.jpg"))[i]).convert("RGB"))


def test_demo_project_on_first_start(demo_studio):
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    assert p.ignore_index == 11 and p.class_names[0] == "sky" and len(p.classes) == 11
    mv = st.store.active_model_version(p.id)
    assert mv.metrics["val_miou"] > 0.5 and "car" in mv.metrics["val_per_class_iou"]
    imgs = st.store.list_images(p.id, order="uncertainty")
    assert len(imgs) == 4 and all(i.uncertainty is not None for i in imgs)
    pred = st.store.get_prediction(imgs[0].id)
    assert pred.class_map.shape == (360, 480)
    assert (pred.class_map == 3).mean() > 0.15            # road is predicted on a street image
    assert st.ensure_demo() is None                        # second start: nothing added
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
    # every added image got a prediction in the project's indices
    for iid in rep.added:
        pred = studio.store.get_prediction(iid)
        assert pred is not None and set(np.unique(pred.class_map)) <= {0, 1, 2}
    rep2 = studio.upload("p", [good])
    assert rep2.added == [] and rep2.duplicates == ["a.png"]
    assert studio.store.count_images("p")["total"] == 2


def test_huge_image_is_refused_and_nothing_stored(studio, tmp_path):
    studio.create_project("p", "sky")
    big = tmp_path / "huge.png"
    Image.new("RGB", (6000, 6000)).save(big)          # 36 MP > the app's 30 MP limit
    rep = studio.upload("p", [big])
    assert rep.added == [] and "huge.png" in rep.skipped[0]
    assert studio.store.count_images("p")["total"] == 0
    with pytest.raises(UserError):
        studio.upload("", [big])


def test_queue_order_filters_and_open(demo_studio):
    st = demo_studio
    imgs = st.store.list_images(DEMO_PROJECT)
    most = max(imgs, key=lambda i: i.uncertainty)
    assert st.next_image(DEMO_PROJECT) == most.id
    assert st.next_image(DEMO_PROJECT, "unlabelled", (most.id,)) != most.id
    assert st.next_image(DEMO_PROJECT, "draft") is None
    loaded = st.open_image(most.id)
    assert loaded.base_revision == 0 and loaded.source.startswith("prediction")
    st.save(most.id, loaded.class_map, "alice", "submitted", 0)
    assert st.next_image(DEMO_PROJECT, "submitted") == most.id
    assert st.next_image(DEMO_PROJECT) != most.id
    again = st.open_image(most.id)
    assert again.base_revision == 1 and "alice" in again.source
    assert [r[0] for r in st.queue(DEMO_PROJECT, "submitted")] == [most.id]
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
    p, out = st.accept_prompt(DEMO_PROJECT, loaded.class_map, forced, "traffic light")
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


def test_model_panel_and_export(demo_studio, tmp_path):
    st = demo_studio
    text, per_class = st.model_summary(DEMO_PROJECT)
    assert "mIoU" in text and len(per_class) == 11 and dict(per_class)["road"] > 0.9
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
    loaded = studio.open_image(rep.added[0])
    back = studio.read_editor("p", studio.editor_value("p", loaded), 1200, 1600)
    np.testing.assert_array_equal(back, pred)
