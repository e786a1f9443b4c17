import json
import shutil

import numpy as np
import pytest
from PIL import Image

from storage.__main__ import main
from storage import ValidationError
from storage.datasets import coco_class_map, export_dataset, import_dataset, parse_coco, safe_stem

N = 4   # a few real CamVid images keep the suite fast; the benchmark imports all 367


@pytest.fixture
def small_camvid(camvid, tmp_path):
    """The first N val images of the real CamVid folder, same layout."""
    root = tmp_path / "camvid_small"
    for sub in ("images/val", "labels/val"):
        (root / sub).mkdir(parents=True)
    names = sorted(p.stem for p in (camvid / "images" / "val").glob("*.jpg"))[:N]
    for n in names:
        shutil.copy(camvid / "images" / "val" / f"{n}.jpg", root / "images" / "val")
        shutil.copy(camvid / "labels" / "val" / f"{n}.png", root / "labels" / "val")
    shutil.copy(camvid / "classes.json", root)
    return root, names


def test_camvid_roundtrip_folder_is_pixel_exact(store, small_camvid, tmp_path):
    root, names = small_camvid
    rep = import_dataset(store, "camvid", root, "val")
    assert (rep.added, rep.annotated, rep.rejected) == (N, N, [])
    assert store.get_project("camvid").ignore_index == 11
    assert all(i.status == "submitted" and i.split == "val" for i in store.list_images("camvid"))
    again = import_dataset(store, "camvid", root, "val")            # idempotent
    assert (again.added, again.duplicates, again.annotated) == (0, N, 0)
    out = tmp_path / "out"
    export_dataset(store, "camvid", out, "folder")
    assert json.loads((out / "classes.json").read_text()) == json.loads((root / "classes.json").read_text())
    for n in names:
        want = np.array(Image.open(root / "labels" / "val" / f"{n}.png"))
        got_img = Image.open(out / "labels" / "val" / f"{n}.png")
        assert got_img.mode == "L"
        assert np.array_equal(np.array(got_img), want)
        assert (out / "images" / "val" / f"{n}.jpg").read_bytes() == (root / "images" / "val" / f"{n}.jpg").read_bytes()
    assert 11 in np.unique(want)   # the ignore index survives too


def test_coco_export_decodes_to_same_pixels(store, small_camvid, tmp_path):
    from pycocotools.coco import COCO
    root, names = small_camvid
    import_dataset(store, "camvid", root, "val")
    export_dataset(store, "camvid", tmp_path / "coco", "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))      # pycocotools reads it
    assert len(coco.imgs) == N and len(coco.cats) == 11
    labels = parse_coco((tmp_path / "coco" / "annotations.json").read_bytes())
    assert labels.classes == {c.index: c.name for c in store.get_project("camvid").classes}
    for img in coco.imgs.values():
        want = np.array(Image.open(root / "labels" / "val" / img["file_name"].replace(".jpg", ".png")))
        assert np.array_equal(coco_class_map(labels, img["file_name"], want.shape, 11), want)
        assert (tmp_path / "coco" / "images" / img["file_name"]).is_file()


def test_voc_export_colours_map_back_to_indices(store, small_camvid, tmp_path):
    root, names = small_camvid
    import_dataset(store, "camvid", root, "val")
    out = tmp_path / "voc"
    export_dataset(store, "camvid", out, "voc")
    lines = [l for l in (out / "labelmap.txt").read_text().splitlines() if not l.startswith("#")]
    colour_to_index = {}
    p = store.get_project("camvid")
    for l in lines:
        name, rgb = l.split(":")[:2]
        idx = p.ignore_index if name == "background" else p.class_names.index(name)
        colour_to_index[tuple(int(v) for v in rgb.split(","))] = idx
    assert len(colour_to_index) == 12
    for n in names:
        rgb = np.array(Image.open(out / "SegmentationClass" / f"{n}.png"))
        assert rgb.ndim == 3
        back = np.zeros(rgb.shape[:2], np.uint8)
        for c, i in colour_to_index.items():
            back[(rgb == c).all(axis=2)] = i
        assert np.array_equal(back, np.array(Image.open(root / "labels" / "val" / f"{n}.png")))
    assert (out / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == names


@pytest.mark.parametrize("name, expect", [
    ("../../etc/passwd", "passwd"), ("..\\..\\win.jpg", "win"), ("/abs/x.png", "x"),
    ("....", "fallback"), ("a b/../c?.jpg", "c"), ("ok-name_1.jpeg", "ok-name_1"),
])
def test_safe_stem(name, expect):
    assert safe_stem(name, "fallback") == expect


def test_export_names_cannot_escape(store, project, png_bytes, tmp_path):
    evil = ["../../escape.png", "..\\..\\escape2.png", "/etc/escape3.png", "same.png", "sub/same.png"]
    for i, n in enumerate(evil):
        info = store.add_image("p", png_bytes(np.full((16, 24, 3), i, np.uint8)), n)
        store.save_annotation(info.id, np.zeros((16, 24), np.uint8), "a", status="submitted", base_revision=0)
    out = tmp_path / "deep" / "out"
    for fmt in ("folder", "voc", "coco"):
        rep = export_dataset(store, "p", out / fmt, fmt)
        assert rep.images == len(evil)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts]
    assert all(out in p.parents for p in written)
    labels = sorted(p.name for p in (out / "folder" / "labels" / "none").iterdir())
    assert len(labels) == len(evil) and len(set(labels)) == len(evil)   # "same" twice -> unique


def test_exif_rotated_image_exports_upright_pixels(store, project, tmp_path):
    import io
    arr = np.zeros((16, 32, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif.tobytes())
    info = store.add_image("p", buf.getvalue(), "rot.jpg")
    store.save_annotation(info.id, np.zeros((32, 16), np.uint8), "a", status="submitted", base_revision=0)
    export_dataset(store, "p", tmp_path / "o", "folder")
    img = Image.open(tmp_path / "o" / "images" / "none" / "rot.png")
    assert img.size == (16, 32)   # matches the (32, 16) label map


def test_cli_import_export(backend, db_url, small_camvid, tmp_path, capsys):
    root, names = small_camvid
    url = db_url or f"sqlite:///{tmp_path / 'cli' / 'studio.db'}"
    data_dir = str(tmp_path / "cli")
    assert main(["import-dataset", "--db", url, "--data-dir", data_dir, "--project", "cv",
                 "--data", str(root), "--split", "val"]) == 0
    assert f"added {N}, annotated {N}" in capsys.readouterr().out
    assert main(["export", "--db", url, "--data-dir", data_dir, "--project", "cv", "--format", "folder",
                 "--out", str(tmp_path / "exp")]) == 0
    for n in names:
        assert np.array_equal(np.array(Image.open(tmp_path / "exp" / "labels" / "val" / f"{n}.png")),
                              np.array(Image.open(root / "labels" / "val" / f"{n}.png")))
    assert main(["export", "--db", url, "--data-dir", data_dir, "--project", "nope", "--format", "coco",
                 "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_import_reports_images_too_small_to_label(store, tmp_path):
    root = tmp_path / "ds"
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"ignore_index": 255, "classes": [{"index": 0, "name": "a"}]}))
    for name, (h, w) in {"ok": (16, 20), "tiny": (8, 8)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / "train" / f"{name}.png")
        Image.fromarray(np.zeros((h, w), np.uint8)).save(root / "labels" / "train" / f"{name}.png")
    rep = import_dataset(store, "ds", root, "train")
    assert (rep.added, rep.annotated) == (1, 1)
    assert rep.rejected == ["tiny.png: image is 8x8 px: too small to label (each side must be at least 16 px)"]


def _tiny_dataset(root, classes, maps):
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"ignore_index": 255, "classes": [
        {"index": i, "name": n} for i, n in enumerate(classes)]}))
    for k, cm in enumerate(maps):
        Image.fromarray(np.full((16, 20, 3), 40 * k, np.uint8)).save(root / "images" / "train" / f"f{k}.png")
        Image.fromarray(cm).save(root / "labels" / "train" / f"f{k}.png")


def test_import_into_a_project_matches_classes_by_name(store, tmp_path):
    """The same words in another order (and case), one more in the project: the labels are
    read in the project's indices; a file using a class the project lacks is rejected and
    its image still imported; a project with none of the words is refused."""
    cm = np.zeros((16, 20), np.uint8)
    cm[8:] = 1
    pole = cm.copy()
    pole[0, :4] = 2
    _tiny_dataset(tmp_path / "ds", ["sky", "road", "pole"], [cm, pole])
    store.create_project("streets", ["Road", "car", "SKY"])
    rep = import_dataset(store, "streets", tmp_path / "ds", "train")
    assert (rep.added, rep.annotated) == (2, 1)
    assert len(rep.rejected) == 1 and rep.rejected[0].startswith("f1.png: ") and "'pole'" in rep.rejected[0]
    first = next(i for i in store.list_images("streets") if i.filename == "f0.png")
    np.testing.assert_array_equal(store.get_annotation(first.id).class_map, np.where(cm == 0, 2, 0))
    store.create_project("kitchens", ["cup", "plate"])
    with pytest.raises(ValidationError, match="none of the classes"):
        import_dataset(store, "kitchens", tmp_path / "ds", "train")
    assert store.count_images("kitchens")["total"] == 0
