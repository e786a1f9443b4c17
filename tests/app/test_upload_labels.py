"""A zip in the folder export's layout brings its labels: one project's export uploaded
into another adds its images with their class maps as submitted annotations, classes
matched by name; what cannot be imported is said on the image's line and loses nothing."""
import json
import zipfile

import numpy as np
import pytest

from segui.handlers import DEMO_PROJECT

from .conftest import png_bytes, street


def labelled_export(studio, tmp_path):
    """Project "a" (sky, road, car) with two submitted images, one in val; its folder export."""
    studio.create_project("a", "sky\nroad\ncar")
    ids = []
    for k in range(2):
        f = tmp_path / f"s{k}.png"
        f.write_bytes(png_bytes(street(k)))
        ids += studio.upload("a", [f], predict=False).added
    studio.store.set_split(ids[1], "val")
    maps = {}
    for k, iid in enumerate(ids):
        cm = np.zeros((48, 64), np.uint8)
        cm[20:, :] = 1
        cm[30:40, 10 + k:30] = 2
        cm[0, 0] = 255                                  # unlabelled pixels stay unlabelled
        studio.store.save_annotation(iid, cm, "ann", "submitted")
        maps[f"s{k}.png"] = cm
    return studio.export("a", "folder"), maps


def by_name(studio, project):
    return {im.filename: im for im in studio.store.list_images(project)}


def test_an_export_uploaded_into_another_project_brings_its_labels_by_class_name(studio, tmp_path):
    z, maps = labelled_export(studio, tmp_path)
    with zipfile.ZipFile(z) as zf:
        assert "classes.json" in zf.namelist() and any(n.startswith("labels/") for n in zf.namelist())
    # another project: the same words in another order and case, and one more
    studio.create_project("b", "Car\nbuilding\nSKY\nroad")
    rep = studio.upload("b", [z], predict=False)
    assert len(rep.added) == 2 and rep.labelled == rep.added and rep.skipped == []
    assert "2 image(s) added, 2 with their labels" in rep.message()
    assert all(what == "added" and text.endswith("with its labels, submitted") for _, what, text in rep.files)
    images = by_name(studio, "b")
    assert set(images) == {"s0.png", "s1.png"}           # the label PNGs were not added as images
    assert images["s0.png"].split in ("train", "none") and images["s1.png"].split == "val"
    lut = np.array([2, 3, 0] + [255] * 253, np.uint8)    # a's sky, road, car -> b's indices
    for name, im in images.items():
        ann = studio.store.get_annotation(im.id)
        assert ann.status == "submitted"
        np.testing.assert_array_equal(ann.class_map, lut[maps[name]])
    (rec,) = [a for a in studio.store.list_activity(project="b") if a.action == "import"]
    assert rec.details["labelled"] == 2
    # as after a submit: the second reviewer scores them (background), the review queue holds them
    assert studio.wait_idle(60)
    assert all(studio.store.get_image(im.id).review_score is not None for im in images.values())
    # uploaded again: duplicates, and their saved labels are kept
    again = studio.upload("b", [z], predict=False)
    assert again.added == [] and len(again.duplicates) == 2 and again.labelled == []
    assert all("saved labels are kept" in text for _, _, text in again.files)
    assert all(studio.store.get_image(im.id).revision == 1 for im in images.values())


def test_labels_that_use_a_class_the_project_lacks_wait_for_it(studio, tmp_path):
    z, maps = labelled_export(studio, tmp_path)
    studio.store.set_split(by_name(studio, "a")["s0.png"].id, "none")   # exported under images/none/
    z = studio.export("a", "folder")
    studio.create_project("c", "road\nsky")              # no car: both maps use it
    rep = studio.upload("c", [z], predict=False)
    assert len(rep.added) == 2 and rep.labelled == []    # the images are added all the same
    assert rep.labels_refused == rep.added and "the labels of 2 not imported" in rep.summary()
    for _, what, text in rep.files:
        assert what == "added" and "its labels not imported" in text and "'car' that project 'c' does not have" in text
    assert all(im.revision == 0 for im in by_name(studio, "c").values())
    studio.store.add_class("c", "car")                   # what the message says to do
    again = studio.upload("c", [z], predict=False)
    assert len(again.duplicates) == 2 and len(again.labelled) == 2
    assert by_name(studio, "c")["s0.png"].split in ("train", "val")   # decided as a submit decides it
    for name, im in by_name(studio, "c").items():
        expect = np.array([1, 0, 2] + [255] * 253, np.uint8)[maps[name]]
        np.testing.assert_array_equal(studio.store.get_annotation(im.id).class_map, expect)


def test_bad_labels_are_said_on_their_line_and_the_images_still_come(studio, tmp_path):
    studio.create_project("p", "sky\nroad")
    z = tmp_path / "hand-made.zip"
    good = np.zeros((48, 64), np.uint8)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("export/classes.json", json.dumps({"ignore_index": 255, "classes": [
            {"index": 0, "name": "road"}, {"index": 1, "name": "sky"}]}))
        zf.writestr("export/images/train/ok.png", png_bytes(street(1)))
        zf.writestr("export/labels/train/ok.png", png_bytes(good + 1))                # all sky
        zf.writestr("export/images/train/small.png", png_bytes(street(2)))
        zf.writestr("export/labels/train/small.png", png_bytes(np.zeros((10, 10), np.uint8)))
        zf.writestr("export/images/train/odd.png", png_bytes(street(3)))
        zf.writestr("export/labels/train/odd.png", png_bytes(good + 7))               # no class 7
        zf.writestr("export/labels/train/lonely.png", png_bytes(good))
    rep = studio.upload("p", [z], predict=False)
    lines = {shown.split("/")[-1]: (what, text) for shown, what, text in rep.files}
    assert lines["ok.png"] == ("added", lines["ok.png"][1]) and lines["ok.png"][1].endswith("with its labels, submitted")
    assert "label PNG is 10x10, the image 64x48" in lines["small.png"][1]
    assert "value(s) 7 that classes.json does not name" in lines["odd.png"][1]
    assert lines["lonely.png"][0] == "skipped" and "matches no image" in lines["lonely.png"][1]
    images = by_name(studio, "p")
    assert set(images) == {"ok.png", "small.png", "odd.png"} and len(rep.labelled) == 1
    assert (studio.store.get_annotation(images["ok.png"].id).class_map == 0).all()    # sky is 0 here
    assert images["small.png"].revision == images["odd.png"].revision == 0


def test_a_classes_json_that_is_not_a_label_set_imports_no_labels(studio, tmp_path):
    studio.create_project("p", "sky")
    z = tmp_path / "broken.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("classes.json", "{not json")
        zf.writestr("images/a.png", png_bytes(street(4)))
        zf.writestr("labels/a.png", png_bytes(np.zeros((48, 64), np.uint8)))
    rep = studio.upload("p", [z], predict=False)
    lines = {shown: (what, text) for shown, what, text in rep.files}
    what, text = lines.pop("broken.zip/images/a.png")
    assert what == "added" and "its labels not imported: classes.json is not a label set" in text
    what, text = lines.pop("broken.zip/classes.json")           # the file itself says it too
    assert what == "skipped" and text.startswith("no labels read from it: classes.json is not a label set")
    assert lines == {}
    assert rep.labelled == [] and studio.store.count_images("p")["total"] == 1


def test_a_label_file_is_bounded_as_an_image_is(studio, tmp_path):
    """A label file compressed like a zip bomb is refused from the zip's directory, with its
    image (one line), and nothing of it is unpacked."""
    studio.create_project("p", "sky")
    z = tmp_path / "bomb-labels.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("classes.json", json.dumps({"classes": [{"index": 0, "name": "sky"}]}))
        zf.writestr("images/a.png", png_bytes(street(5)))
        zf.writestr("labels/a.png", b"\x00" * (8 << 20))       # 8 MB of zeros: over 1000:1
    rep = studio.upload("p", [z], predict=False)
    ((shown, what, text),) = rep.files
    assert shown == "bomb-labels.zip/images/a.png" and what == "skipped"
    assert "its label file labels/a.png: compressed" in text and "not unpacked" in text
    assert studio.store.count_images("p")["total"] == 0


# ------------------------------------------------------------------ colour masks (VOC / CVAT)

def test_a_voc_export_uploaded_into_another_project_brings_its_labels(studio, tmp_path):
    """The VOC export (CVAT's "Segmentation mask" layout: JPEGImages/, SegmentationClass/
    colour masks, labelmap.txt) comes back pixel for pixel in another project's indices."""
    z, maps = labelled_export(studio, tmp_path)
    voc = studio.export("a", "voc")
    with zipfile.ZipFile(voc) as zf:
        assert "labelmap.txt" in zf.namelist()
    studio.create_project("b", "car\nroad\nsky")
    rep = studio.upload("b", [voc], predict=False)
    assert len(rep.labelled) == 2 and rep.skipped == [] and rep.labels_refused == []
    assert by_name(studio, "b")["s1.png"].split == "val"     # ImageSets/Segmentation/val.txt
    lut = np.array([2, 1, 0] + [255] * 253, np.uint8)
    for name, im in by_name(studio, "b").items():
        np.testing.assert_array_equal(studio.store.get_annotation(im.id).class_map, lut[maps[name]])


def cvat_zip(path, rows, masks):
    """A zip as CVAT exports "Segmentation mask 1.1" with images: colour masks."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("labelmap.txt", "# label:color_rgb:parts:actions\n"
                    + "".join(f"{n}:{','.join(map(str, c))}::\n" for n, c in rows))
        zf.writestr("ImageSets/Segmentation/default.txt", "\n".join(masks) + "\n")
        for k, (stem, mask) in enumerate(masks.items()):
            zf.writestr(f"JPEGImages/{stem}.png", png_bytes(street(10 + k)))
            zf.writestr(f"SegmentationClass/{stem}.png", png_bytes(mask))
            zf.writestr(f"SegmentationObject/{stem}.png", png_bytes(mask))   # CVAT's instances: not ours
    return path


def test_a_cvat_segmentation_mask_zip_comes_with_its_labels(studio, tmp_path):
    rows = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (0, 0, 142))]
    mask = np.zeros((48, 64, 3), np.uint8)
    mask[24:] = (128, 64, 128)
    mask[30:40, 5:20] = (0, 0, 142)
    odd = mask.copy()
    odd[0, 0] = (1, 2, 3)
    z = cvat_zip(tmp_path / "task_1-segmentation mask 1.1.zip", rows, {"f1": mask, "f2": odd})
    studio.create_project("p", "car\nroad\nsky")
    rep = studio.upload("p", [z], predict=False)
    lines = {shown.split("/")[-1]: (what, text) for shown, what, text in rep.files}
    assert set(lines) == {"f1.png", "f2.png"}          # SegmentationObject/ and ImageSets/ are not images
    assert lines["f1.png"][1].endswith("with its labels, submitted")
    assert "colour(s) (1,2,3) that labelmap.txt does not name" in lines["f2.png"][1]
    f1 = by_name(studio, "p")["f1.png"]
    cm = studio.store.get_annotation(f1.id).class_map
    assert (cm[:24] == 255).all()                      # background: unlabelled (the project has none)
    assert (cm[30:40, 5:20] == 0).all() and (cm[24:30] == 1).all()
    # a project with a class named background takes those pixels as that class
    studio.create_project("q", "background\nroad\ncar")
    studio.upload("q", [z], predict=False)
    q1 = by_name(studio, "q")["f1.png"]
    assert (studio.store.get_annotation(q1.id).class_map[:24] == 0).all()


def test_a_labelmap_that_is_not_one_imports_no_labels(studio, tmp_path):
    studio.create_project("p", "road")
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("labelmap.txt", "road:128,64,128::\ncar:128,64,128::\n")
        zf.writestr("JPEGImages/a.png", png_bytes(street(6)))
        zf.writestr("SegmentationClass/a.png", png_bytes(np.zeros((48, 64, 3), np.uint8)))
    files = studio.upload("p", [z], predict=False).files
    assert [(shown, what) for shown, what, _ in files] == [("bad.zip/labelmap.txt", "skipped"), ("bad.zip/JPEGImages/a.png", "added")]
    assert "its labels not imported: labelmap.txt line 2: colour (128, 64, 128) is given twice" in files[1][2]


def test_files_beside_a_label_layout_are_uploaded_as_ever(studio, tmp_path):
    """Only the layout's own folders are read as labels and metadata: an image elsewhere in
    the zip is added (without labels), other files are refused with their line."""
    studio.create_project("p", "sky")
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("classes.json", json.dumps({"classes": [{"index": 0, "name": "sky"}]}))
        zf.writestr("images/a.png", png_bytes(street(7)))
        zf.writestr("labels/a.png", png_bytes(np.zeros((48, 64), np.uint8)))
        zf.writestr("photos/b.png", png_bytes(street(8)))
        zf.writestr("notes.txt", "hello")
    rep = studio.upload("p", [z], predict=False)
    lines = {shown: (what, text) for shown, what, text in rep.files}
    assert lines["mixed.zip/images/a.png"][1].endswith("with its labels, submitted")
    assert lines["mixed.zip/photos/b.png"][0] == "added" and "labels" not in lines["mixed.zip/photos/b.png"][1]
    assert lines["mixed.zip/notes.txt"] == ("skipped", "not an image file")
    assert len(rep.files) == 3


# ------------------------------------------------------------------ COCO

def test_a_coco_export_uploaded_into_another_project_brings_its_labels(studio, tmp_path):
    z, maps = labelled_export(studio, tmp_path)
    coco = studio.export("a", "coco")
    studio.create_project("b", "car\nroad\nsky")
    rep = studio.upload("b", [coco], predict=False)
    assert len(rep.labelled) == 2 and rep.skipped == [] and len(rep.files) == 2
    images = by_name(studio, "b")
    assert images["s1.png"].split == "val"                 # the export's own split field
    lut = np.array([2, 1, 0] + [255] * 253, np.uint8)
    for name, im in images.items():
        np.testing.assert_array_equal(studio.store.get_annotation(im.id).class_map, lut[maps[name]])


def test_coco_polygons_as_label_studio_and_cvat_export_them(studio, tmp_path):
    """Label Studio's COCO export (result.json, images/) and CVAT's (annotations/
    instances_default.json, images/default/...): polygons; category ids as the tool gave them."""
    doc = {"images": [{"id": 7, "file_name": "default/frame.png", "width": 64, "height": 48}],
           "categories": [{"id": 3, "name": "Road"}, {"id": 9, "name": "car"}],
           "annotations": [
               {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[0, 24, 63.9, 24, 63.9, 47.9, 0, 47.9]]},
               {"id": 2, "image_id": 7, "category_id": 9, "segmentation": [[10, 30, 30, 30, 30, 40, 10, 40]]},
               {"id": 3, "image_id": 7, "category_id": 9, "bbox": [0, 0, 5, 5]}]}     # no segmentation: left out
    z = tmp_path / "cvat-coco.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("annotations/instances_default.json", json.dumps(doc))
        zf.writestr("images/default/frame.png", png_bytes(street(9)))
    studio.create_project("p", "sky\nroad\ncar")
    rep = studio.upload("p", [z], predict=False)
    ((shown, what, text),) = rep.files
    assert shown == "cvat-coco.zip/images/default/frame.png" and text.endswith("with its labels, submitted")
    cm = studio.store.get_annotation(rep.added[0]).class_map
    assert (cm[:20] == 255).all() and (cm[26:29, :8] == 1).all() and (cm[32:38, 12:28] == 2).all()
    bad = tmp_path / "label-studio.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("result.json", json.dumps({"images": [], "annotations": []}))     # no categories
        zf.writestr("images/x.png", png_bytes(street(10)))
    files = studio.upload("p", [bad], predict=False).files
    assert ("label-studio.zip/result.json", "skipped") == files[0][:2] and "not one (KeyError" in files[0][2]
    assert files[1][:2] == ("label-studio.zip/images/x.png", "added")


def test_a_coco_file_that_gives_another_size_is_refused_before_any_mask_is_made(studio, tmp_path, monkeypatch):
    from pycocotools import mask as mask_utils
    made = []
    real = mask_utils.decode
    monkeypatch.setattr(mask_utils, "decode", lambda *a: made.append(1) or real(*a))
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 100000, "height": 100000},
                      {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": "sky"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 9, 0, 9, 9]]},
                           {"id": 2, "image_id": 2, "category_id": 1,
                            "segmentation": {"size": [100000, 100000], "counts": "0"}}]}
    z = tmp_path / "huge.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("annotations.json", json.dumps(doc))
        zf.writestr("images/a.png", png_bytes(street(11)))
        zf.writestr("images/b.png", png_bytes(street(12)))
    studio.create_project("p", "sky")
    lines = {s.split("/")[-1]: text for s, _, text in studio.upload("p", [z], predict=False).files}
    assert "the COCO file gives it 100000x100000, the image is 64x48" in lines["a.png"]
    assert "its mask's size [100000, 100000] is not the image's [48, 64]" in lines["b.png"]
    assert made == []


def test_two_zips_with_their_own_label_sets_in_one_upload(studio, tmp_path):
    studio.create_project("p", "sky\nroad")
    zips, truth = [], {}
    for k, names in enumerate((["sky", "road"], ["road", "sky"])):
        z = tmp_path / f"z{k}.zip"
        cm = np.zeros((48, 64), np.uint8)
        cm[:10] = 1
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("classes.json", json.dumps({"classes": [{"index": i, "name": n} for i, n in enumerate(names)]}))
            zf.writestr(f"images/f{k}.png", png_bytes(street(20 + k)))
            zf.writestr(f"labels/f{k}.png", png_bytes(cm))
        zips.append(z)
        here = ["sky", "road"].index                   # the project's indices of the zip's words
        truth[f"f{k}.png"] = np.where(cm == 1, here(names[1]), here(names[0])).astype(np.uint8)
    rep = studio.upload("p", zips, predict=False)
    assert len(rep.labelled) == 2
    for name, im in by_name(studio, "p").items():
        np.testing.assert_array_equal(studio.store.get_annotation(im.id).class_map, truth[name])


# ------------------------------------------------------------------ a new project's label set from an export

def test_a_new_projects_label_set_comes_from_an_export(studio, tmp_path):
    """Each export format (and each label-set file alone) gives the words, in order, with
    their colours where the file has them; CVAT's background row is not a class."""
    labelled_export(studio, tmp_path)
    want = [("sky", studio.project("a").classes[0].color), ("road", studio.project("a").classes[1].color),
            ("car", studio.project("a").classes[2].color)]
    from segui.upload_files import label_set_of
    for fmt in ("folder", "voc"):
        assert label_set_of(studio.export("a", fmt)) == want, fmt
    assert [n for n, _ in label_set_of(studio.export("a", "coco"))] == ["sky", "road", "car"]
    cvat = cvat_zip(tmp_path / "cvat.zip", [("background", (0, 0, 0)), ("road", (128, 64, 128)),
                                             ("car", (0, 0, 142))], {"f1": np.zeros((48, 64, 3), np.uint8)})
    assert label_set_of(cvat) == [("road", (128, 64, 128)), ("car", (0, 0, 142))]
    lm = tmp_path / "labelmap.txt"
    lm.write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nlane marking:255,255,0::\n")
    assert label_set_of(lm) == [("lane marking", (255, 255, 0))]
    # the VOC export of a project with a class named background names the unlabelled row "ignore"
    lm.write_text("ignore:0,0,0::\nbackground:10,10,10::\nroad:128,64,128::\n")
    assert label_set_of(lm) == [("background", (10, 10, 10)), ("road", (128, 64, 128))]
    coco = tmp_path / "result.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 2, "name": "b"},
                                                                                 {"id": 1, "name": "a"}]}))
    assert label_set_of(coco) == [("a", None), ("b", None)]
    # through Studio: the New project box's text, which create_project takes as it is
    text = studio.label_set_text(cvat)
    assert text == "road #804080\ncar #00008e"
    p = studio.create_project("from cvat", text)
    assert [(c.name, c.color) for c in p.classes] == [("road", (128, 64, 128)), ("car", (0, 0, 142))]


def test_a_file_that_is_no_export_is_refused_with_why(studio, tmp_path):
    from segui.errors import UserError
    plain = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.png", png_bytes(street(1)))
    with pytest.raises(UserError, match="holds no label set"):
        studio.label_set_text(plain)
    other = tmp_path / "notes.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(UserError, match="neither a classes.json nor a COCO file"):
        studio.label_set_text(other)
    with pytest.raises(UserError, match="choose an export file"):
        studio.label_set_text(None)


def test_labels_that_come_with_an_upload_count_for_automatic_jobs(studio, tmp_path, monkeypatch):
    """With the project's automatic fine-tuning on, an upload that brings labels asks for the
    job as a submit does (the job itself waits, as after submits, for the val images a job
    needs to be promoted: tests/jobs/test_auto_finetune.py)."""
    import segui.finetuning as ft
    z, _ = labelled_export(studio, tmp_path)
    studio.create_project("b", "sky\nroad\ncar")
    studio.store.set_auto_finetune_every("b", 2)
    asked = []
    real = ft.maybe_auto_finetune
    monkeypatch.setattr(ft, "maybe_auto_finetune", lambda store, project, who=None: asked.append(project)
                        or real(store, project, who))
    rep = studio.upload("b", [z], predict=False)
    assert studio.wait_idle(60)
    assert len(rep.labelled) == 2 and asked == [studio.store.get_project("b").id]
    assert ft.auto_finetune_due(studio.store, "b") is None and ft.val_short(studio.store, "b") > 0


def test_a_voc_export_of_a_project_with_a_background_class_comes_back_whole(studio, tmp_path):
    """Its labelmap names the unlabelled row "ignore" and has a real "background" class."""
    studio.create_project("a", "background\nroad")
    f = tmp_path / "x.png"
    f.write_bytes(png_bytes(street(30)))
    (iid,) = studio.upload("a", [f], predict=False).added
    cm = np.zeros((48, 64), np.uint8)
    cm[30:] = 1
    cm[0, :5] = 255
    studio.store.save_annotation(iid, cm, "ann", "submitted")
    voc = studio.export("a", "voc")
    with zipfile.ZipFile(voc) as zf:
        assert zf.read("labelmap.txt").decode().splitlines()[1].startswith("ignore:")
    studio.create_project("b", "road\nbackground")
    rep = studio.upload("b", [voc], predict=False)
    assert len(rep.labelled) == 1
    np.testing.assert_array_equal(studio.store.get_annotation(rep.added[0]).class_map,
                                  np.array([1, 0] + [255] * 254, np.uint8)[cm])
    studio.create_project("c", "road")                  # no background class: said, not dropped
    text = studio.upload("c", [voc], predict=False).files[0][2]
    assert "'background' that project 'c' does not have" in text


def test_labels_with_two_class_names_swapped_are_flagged_against_the_model(demo_studio, tmp_path):
    """The demo's 10 labelled CamVid frames exported, and the export's classes.json with
    'road' and 'pavement' exchanged: uploaded, the model sees each one's pixels as the
    other's in most images, and the report says so (the as-is export raises nothing)."""
    st = demo_studio
    z = st.export(DEMO_PROJECT, "folder")
    swapped = tmp_path / "swapped.zip"
    with zipfile.ZipFile(z) as zin, zipfile.ZipFile(swapped, "w") as zout:
        for n in zin.namelist():
            data = zin.read(n)
            if n == "classes.json":
                meta = json.loads(data)
                for c in meta["classes"]:
                    c["name"] = {"road": "pavement", "pavement": "road"}.get(c["name"], c["name"])
                data = json.dumps(meta).encode()
            zout.writestr(n, data)
    words = "\n".join(st.store.get_project(DEMO_PROJECT).class_names)
    st.create_project("as is", words)
    assert st.upload("as is", [z], predict=False).swapped == []
    st.create_project("swapped", words)
    rep = st.upload("swapped", [swapped], predict=False)
    assert len(rep.labelled) == 10 and rep.swapped == [("road", "pavement")]
    assert "what they call 'road' the model sees as 'pavement', and the other way round" in rep.summary()
    st.wait_idle(120)


def test_the_swapped_names_check_failing_loses_no_label(studio, tmp_path, monkeypatch, caplog):
    z, _ = labelled_export(studio, tmp_path)
    studio.create_project("b", "sky\nroad\ncar")
    monkeypatch.setattr(type(studio), "_predict_map", lambda *a, **kw: (_ for _ in ()).throw(OSError("no weights")))
    rep = studio.upload("b", [z], predict=False)
    assert len(rep.labelled) == 2 and rep.swapped == [] and "swapped-names check did not run" in caplog.text
    assert all(im.revision == 1 for im in by_name(studio, "b").values())
    monkeypatch.undo()
    studio.wait_idle(60)
