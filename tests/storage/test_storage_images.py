"""Bad and unusual image input: normalised correctly or rejected with nothing written."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from storage import InvalidImageError, ValidationError



def _nothing_written(store, data_dir):
    assert store.list_images("p") == []
    files = [p for p in (data_dir / "images").rglob("*") if p.is_file()]
    assert files == []


def _bomb_png(w=100_000, h=100_000) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("name, make, msg", [
    ("text", lambda rgb: b"hello, I am not an image" * 10, "not an image"),
    ("empty", lambda rgb: b"", "empty file"),
    ("truncated png", lambda rgb: _png(rgb)[: len(_png(rgb)) // 2], "truncated"),
    ("truncated jpeg", lambda rgb: _jpeg(rgb)[: len(_jpeg(rgb)) // 2], "truncated"),
    ("bomb", lambda rgb: _bomb_png(), "decompression bomb"),
])
def test_bad_images_rejected_nothing_written(store, project, rgb_image, tmp_path, name, make, msg):
    with pytest.raises(InvalidImageError, match=msg):
        store.add_image("p", make(rgb_image), f"{name}.png")
    _nothing_written(store, tmp_path / "data")


def test_megapixel_limit_is_configurable(make_store, tmp_path, png_bytes):
    store = make_store(max_image_megapixels=0.001)   # 1000 pixels
    store.create_project("p", ["a"])
    ok = store.add_image("p", png_bytes(np.zeros((20, 50, 3), np.uint8)), "ok.png")
    assert (ok.width, ok.height) == (50, 20)
    with pytest.raises(InvalidImageError, match="over the limit of 0.001 megapixels"):
        store.add_image("p", png_bytes(np.zeros((40, 30, 3), np.uint8)), "big.png")
    assert [i.filename for i in store.list_images("p")] == ["ok.png"]


def test_exif_rotated_jpeg_is_turned_upright(store, project):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)      # left half red
    arr[:, 20:] = (0, 0, 255)      # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6               # "rotate 90 CW to display"
    info = store.add_image("p", _jpeg(arr, exif=exif.tobytes()), "rot.jpg")
    assert (info.width, info.height) == (20, 40)
    img = store.load_image(info.id)
    assert img.shape == (40, 20, 3)
    # after a 90 degree clockwise turn the red half is on top
    assert img[5, 10, 0] > 200 and img[5, 10, 2] < 60
    assert img[35, 10, 2] > 200 and img[35, 10, 0] < 60
    assert info.normalised


def test_cmyk_palette_grey_rgba_16bit_are_normalised_to_rgb(store, project, rgb_image, png_bytes):
    cases = {}
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))   # pure red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=100)
    cases["cmyk.jpg"] = (buf.getvalue(), lambda a: a[..., 0].min() > 200 and a[..., 1:].max() < 60)
    pal = Image.fromarray(np.arange(16 * 16, dtype=np.uint8).reshape(16, 16) % 4).convert("P")
    pal.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120] + [0] * 756)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    cases["pal.png"] = (buf.getvalue(), lambda a: tuple(a[0, 1]) == (40, 50, 60))
    grey = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    cases["grey.png"] = (png_bytes(grey), lambda a: (a[..., 0] == grey).all() and (a[..., 2] == grey).all())
    rgba = np.dstack([rgb_image, np.full(rgb_image.shape[:2], 128, np.uint8)])
    cases["rgba.png"] = (png_bytes(rgba), lambda a: (a == rgb_image).all())
    g16 = np.tile((np.arange(16, dtype=np.uint16) * 4369), (16, 1))   # 0..65535
    cases["g16.png"] = (png_bytes(g16), lambda a: a[0, 15, 0] == 255 and a[0, 0, 0] == 0 and a[0, 1, 0] == 17)
    for name, (data, check) in cases.items():
        info = store.add_image("p", data, name)
        a = store.load_image(info.id)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, name
        assert check(a), name
    assert len(store.list_images("p")) == len(cases)


def test_duplicate_detected_by_content(store, project, rgb_image, tmp_path, png_bytes):
    a = store.add_image("p", png_bytes(rgb_image), "a.png")
    b = store.add_image("p", png_bytes(rgb_image), "other-name.png", split="val")
    assert b.duplicate and b.id == a.id and b.filename == "a.png"
    assert len(store.list_images("p")) == 1
    # the same bytes in another project are a separate image sharing one file
    store.create_project("q", ["x"])
    c = store.add_image("q", png_bytes(rgb_image), "c.png")
    assert not c.duplicate and c.id != a.id and c.sha256 == a.sha256
    assert len([p for p in (tmp_path / "data" / "images").rglob("*") if p.is_file()]) == 1


def test_image_roundtrip_and_path_input(store, project, rgb_image, tmp_path, png_bytes):
    f = tmp_path / "in.png"
    f.write_bytes(png_bytes(rgb_image))
    info = store.add_image("p", f, split="val")
    assert info.filename == "in.png" and info.split == "val" and info.status == "unlabelled"
    assert (store.load_image(info.id) == rgb_image).all()
    assert store.image_bytes(info.id) == f.read_bytes()
    with pytest.raises(ValidationError, match="split"):
        store.add_image("p", f, split="test")


class _MemoryBlobs:
    """A BlobStore (storage.files) that keeps files in a dict: what Store(blobs=...) takes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def write(self, sha256, data):
        new = sha256 not in self.files
        self.files[sha256] = bytes(data)
        return new

    def read(self, sha256):
        return self.files[sha256]

    def path(self, sha256):
        return f"memory:{sha256}"

    def iter_files(self):
        return [(sha, sha, 0.0) for sha in self.files]

    def remove(self, entry):
        self.files.pop(entry, None)


def test_another_blob_store_can_be_passed_in(make_store, rgb_image, png_bytes, tmp_path):
    blobs = _MemoryBlobs()
    store = make_store(blobs=blobs)
    store.create_project("p", ["road", "car"])
    data = png_bytes(rgb_image)
    im = store.add_image("p", data, "a.png")
    assert blobs.files == {im.sha256: data}
    assert not any(p.is_file() for p in (tmp_path / "data" / "images").rglob("*"))
    np.testing.assert_array_equal(store.load_image(im.id), rgb_image)
    assert store.image_bytes(im.id) == data


def test_corrupted_file_on_disk_is_detected(store, image, tmp_path):
    path = store.blobs.path(image.sha256)
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(Exception, match="corrupt"):
        store.load_image(image.id)


def test_crash_between_file_and_row_leaves_orphan_that_is_swept(store, project, rgb_image,
                                                                 monkeypatch, tmp_path, png_bytes):
    real_write = store.blobs.write

    def write_then_crash(sha, data):
        real_write(sha, data)
        raise RuntimeError("simulated crash before the row is committed")
    monkeypatch.setattr(store.blobs, "write", write_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.add_image("p", png_bytes(rgb_image), "a.png")
    monkeypatch.undo()
    assert store.list_images("p") == []                  # no dangling row
    files = [p for p in (tmp_path / "data" / "images").rglob("*") if p.is_file()]
    assert len(files) == 1                               # the orphan file
    assert store.sweep_orphans(min_age_s=3600) == []     # too young: maybe an add in progress
    kept = store.add_image("p", png_bytes(np.zeros((16, 16, 3), np.uint8)), "kept.png")
    removed = store.sweep_orphans(min_age_s=0)
    assert removed == files
    assert [p for p in (tmp_path / "data" / "images").rglob("*") if p.is_file()] == \
        [store.blobs.path(kept.sha256)]
    assert store.load_image(kept.id).shape == (16, 16, 3)


def test_crash_during_file_write_leaves_only_a_temp_file(store, project, rgb_image, monkeypatch, tmp_path, png_bytes):
    import os
    real_replace = os.replace

    def crash(*a, **k):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        store.add_image("p", png_bytes(rgb_image), "a.png")
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.list_images("p") == []
    assert [p for p in (tmp_path / "data" / "images").rglob("*") if p.is_file()] == []


def test_add_that_loses_the_unique_race_returns_the_winner(store, project, png_bytes, monkeypatch):
    """Deterministic version of the race: the duplicate pre-check sees nothing, the
    unique (project_id, sha256) constraint must catch it."""
    from sqlalchemy.orm import Session
    data = png_bytes(np.zeros((16, 16, 3), np.uint8))
    first = store.add_image("p", data, "a.png")
    real = Session.scalar
    state = {"hidden": False}

    def blind_once(self, stmt, *a, **k):
        if not state["hidden"] and "sha256" in str(stmt):
            state["hidden"] = True
            return None
        return real(self, stmt, *a, **k)
    monkeypatch.setattr(Session, "scalar", blind_once)
    again = store.add_image("p", data, "b.png")
    assert state["hidden"] and again.duplicate and again.id == first.id
    assert len(store.list_images("p")) == 1


def test_concurrent_add_of_same_bytes_returns_one_image(make_store, project, rgb_image, png_bytes):
    import threading
    a, b = make_store(), make_store()
    data = png_bytes(rgb_image)
    barrier = threading.Barrier(2)
    out = []

    def add(st):
        barrier.wait()
        out.append(st.add_image("p", data, "x.png"))
    ts = [threading.Thread(target=add, args=(st,)) for st in (a, b)]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    assert len(out) == 2 and out[0].id == out[1].id
    assert sorted(i.duplicate for i in out) == [False, True]
    assert len(a.list_images("p")) == 1


def test_tiny_images_are_refused_naming_their_size(make_store, png_bytes, tmp_path):
    store = make_store()
    store.create_project("p", ["a"])
    with pytest.raises(InvalidImageError, match=r"image is 6x4 px: too small to label \(each side must be at least 16 px\)"):
        store.add_image("p", png_bytes(np.zeros((4, 6, 3), np.uint8)), "tiny.png")
    assert store.list_images("p") == []
    assert store.add_image("p", png_bytes(np.zeros((16, 16, 3), np.uint8)), "ok.png").width == 16
    lenient = make_store(min_image_side=1)          # the minimum is a Store setting
    assert lenient.add_image("p", png_bytes(np.zeros((4, 6, 3), np.uint8)), "tiny.png").width == 6
    assert lenient.load_image(lenient.list_images("p")[-1].id).shape == (4, 6, 3)
    assert store.load_image(lenient.list_images("p")[-1].id).shape == (4, 6, 3)   # stored: always readable


def test_a_removed_image_leaves_every_list_and_comes_back_as_it_was(store, project, png_bytes):
    """Taken out of the project: not listed, counted, queued, exported, trained on or
    reviewed; its revisions, review and file kept; restored, all of it is back. Both
    are recorded once; adding the same bytes again finds the removed image."""
    ids = [store.add_image("p", png_bytes(np.full((32, 48, 3), i, np.uint8)), f"{i}.png", split="train").id
           for i in range(3)]
    cm = np.zeros((32, 48), np.uint8)
    store.save_annotation(ids[1], cm, "ann", "submitted")
    store.review(ids[1], 1, "accepted", reviewer="rex")
    store.save_annotation(ids[2], cm, "ann", "submitted")
    before = (store.count_images("p"), store.count_reviews("p"), store.submitted_annotations("p"))
    assert before[0]["total"] == 3 and before[1]["pending"] == 1 and len(before[2]) == 2

    for iid in (ids[1], ids[2]):
        info = store.remove_image(iid, by="ada")
        assert info.removed and store.get_image(iid).removed
    store.remove_image(ids[2], by="ada")                       # again: nothing more
    assert [i.id for i in store.list_images("p")] == [ids[0]]
    assert store.count_images("p") == {"unlabelled": 1, "draft": 0, "submitted": 0, "total": 1}
    assert store.next_image("p", "any").id == ids[0] and store.next_image("p", "any", exclude=[ids[0]]) is None
    assert store.count_reviews("p") == {"pending": 0, "accepted": 0, "rejected": 0}
    assert store.review_queue("p") == [] and store.submitted_annotations("p", source="submitted") == []
    assert store.submitted_since("p", None) == 0
    total, rows = store.explore_images("p")
    assert total == 1 and [r.id for r in rows] == [ids[0]]
    assert [i.id for i in store.removed_images("p")] == [ids[2], ids[1]]     # the latest removal first
    again = store.add_image("p", png_bytes(np.full((32, 48, 3), 2, np.uint8)), "again.png")
    assert again.duplicate and again.removed and again.id == ids[2]
    assert store.image_filenames("p", ids) == {ids[0]: "0.png", ids[1]: "1.png", ids[2]: "2.png"}  # the log's names

    for iid in (ids[1], ids[2]):
        assert not store.restore_image(iid, by="ada").removed
    assert (store.count_images("p"), store.count_reviews("p"), store.submitted_annotations("p")) == before
    assert store.get_review(ids[1]).decision == "accepted" and store.get_annotation(ids[2]).revision == 1
    assert store.removed_images("p") == []
    acts = [(a.action, a.subject, a.user) for a in store.list_activity("p", action=["image_removed", "image_restored"])]
    assert acts == [("image_restored", "2.png", "ada"), ("image_restored", "1.png", "ada"),
                    ("image_removed", "2.png", "ada"), ("image_removed", "1.png", "ada")]
