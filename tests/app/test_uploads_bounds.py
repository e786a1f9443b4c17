"""Issue 17, findings 3 and 7: what an annotator sends is bounded before it is read or
decoded, each refusal names the file; uploads and exports do not stay in shared folders."""
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_bounds import blank_png, zip_bomb
from common import limits
from segui import upload_files, uploads
from segui.canvas import codec

from .conftest import png_bytes, street

MB = 1024 * 1024


def peak_rss_mb_during(fn):
    """(fn's result, how far this process's peak RSS rose above its RSS while fn ran, in MB)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")

    def kb(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    before = kb("VmRSS")
    out = fn()
    return out, (kb("VmHWM") - before) / 1024


class NoDecode:
    """Counts Pillow decodes (Image.load) while in use."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = Image.Image.load

        def load(im, *a, **kw):
            self.calls += 1
            return real(im, *a, **kw)
        monkeypatch.setattr(Image.Image, "load", load)


# ------------------------------------------------------------------ zips

def test_zip_bomb_is_refused_from_its_directory_without_unpacking(studio, tmp_path):
    studio.create_project("p", "sky")
    bomb = zip_bomb(tmp_path / "bomb.zip", members=2, member_bytes=60 * MB)
    assert bomb.stat().st_size < 1 * MB
    rep, rise = peak_rss_mb_during(lambda: studio.upload("p", [bomb], predict=False))
    assert rep.added == [] and len(rep.skipped) == 2
    for i in range(2):
        line = next(s for s in rep.skipped if s.startswith(f"bomb.zip/bomb/{i}.png:"))
        assert "compressed" in line and "SEGUI_ZIP_MAX_RATIO" in line and "not unpacked" in line
    assert rise < 30, f"refusing a zip bomb raised the peak RSS by {rise:.0f} MB"
    assert studio.store.count_images("p")["total"] == 0


def test_zip_total_size_and_file_count_are_checked_before_any_member(studio, tmp_path, monkeypatch):
    studio.create_project("p", "sky")
    z = tmp_path / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.png", png_bytes(street(i)))
    reads = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **kw: reads.append(a) or real_open(self, *a, **kw))

    monkeypatch.setattr(upload_files, "ZIP_MAX_MEMBERS", 2)
    rep = studio.upload("p", [z], predict=False)
    assert rep.skipped == ["batch.zip: the zip holds 3 files, over the limit of 2 (SEGUI_ZIP_MAX_FILES); "
                           "nothing unpacked"] and reads == []

    monkeypatch.setattr(upload_files, "ZIP_MAX_MEMBERS", 10)
    monkeypatch.setattr(upload_files, "ZIP_MAX_TOTAL_BYTES", 100)
    rep = studio.upload("p", [z], predict=False)
    assert len(rep.skipped) == 1 and rep.skipped[0].startswith("batch.zip: the zip would unpack to ")
    assert "SEGUI_ZIP_MAX_TOTAL_MB" in rep.skipped[0] and reads == []

    monkeypatch.setattr(upload_files, "ZIP_MAX_TOTAL_BYTES", 10 * MB)
    rep = studio.upload("p", [z], predict=False)
    assert len(rep.added) == 3 and len(reads) == 3


def test_zip_member_over_the_image_limit_is_not_unpacked(studio, tmp_path, monkeypatch):
    studio.create_project("p", "sky")
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("small.png", png_bytes(street(0)))
        zf.writestr("big.png", png_bytes(street(1, 400, 400)))
    monkeypatch.setattr(upload_files, "MAX_IMAGE_BYTES", 100_000)
    rep = studio.upload("p", [z], predict=False)
    assert len(rep.added) == 1
    assert rep.skipped[0].startswith("b.zip/big.png: ") and "SEGUI_MAX_IMAGE_MB" in rep.skipped[0]


def test_read_capped_counts_the_bytes_whatever_a_header_said():
    assert uploads.read_capped(io.BytesIO(b"x" * 10), 10) == b"x" * 10
    assert uploads.read_capped(io.BytesIO(b"x" * 11), 10) is None
    assert uploads.read_capped(io.BytesIO(b""), 10) == b""


# ------------------------------------------------------------------ single files

def test_file_over_the_upload_or_image_limit_is_refused_unread(studio, tmp_path, monkeypatch):
    studio.create_project("p", "sky")
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(street(0)))
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(3 * MB)                         # sparse: nothing on disk
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 2 * MB)
    rep = studio.upload("p", [good, big], predict=False)
    assert len(rep.added) == 1 and rep.skipped == [
        "big.png: 3.0 MB, over the upload limit of 2.0 MB (SEGUI_MAX_UPLOAD_MB); not read"]
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10 * MB)
    monkeypatch.setattr(upload_files, "MAX_IMAGE_BYTES", 1 * MB)
    rep = studio.upload("p", [big], predict=False)
    assert rep.skipped == ["big.png: 3.0 MB, over the limit of 1.0 MB for one image (SEGUI_MAX_IMAGE_MB); not read"]


def test_image_with_huge_dimensions_is_refused_from_its_header(studio, tmp_path, monkeypatch):
    studio.create_project("p", "sky")
    big = tmp_path / "big.png"
    big.write_bytes(blank_png(12000, 10000))       # 120 MP declared (over the app's limit), ~120 KB
    huge = tmp_path / "huge.png"
    huge.write_bytes(blank_png(20000, 20000))      # 400 MP: over Pillow's own bomb limit too
    spy = NoDecode(monkeypatch)
    rep = studio.upload("p", [big, huge], predict=False)
    assert rep.added == [] and spy.calls == 0
    assert rep.skipped[0].startswith("big.png: image is 12000x10000 = 120.0 megapixels, over the limit of "
                                     f"{limits.MAX_IMAGE_MEGAPIXELS:g} megapixels")
    assert rep.skipped[1].startswith("huge.png: decompression bomb rejected from its header")
    assert all(s.endswith("not decoded") for s in rep.skipped)


def test_upload_limit_is_the_launch_limit():
    from segui.ui import DELETE_CACHE, LAUNCH_OPTIONS
    assert LAUNCH_OPTIONS["max_file_size"] == limits.MAX_UPLOAD_BYTES == uploads.MAX_UPLOAD_BYTES
    assert DELETE_CACHE[1] == int(limits.EXPORT_TTL_SECONDS)


def test_limits_are_read_from_the_environment(monkeypatch):
    import importlib
    monkeypatch.setenv("SEGUI_MAX_UPLOAD_MB", "12")
    monkeypatch.setenv("SEGUI_ZIP_MAX_RATIO", "50")
    try:
        fresh = importlib.reload(limits)
        assert fresh.MAX_UPLOAD_BYTES == 12 * MB and fresh.ZIP_MAX_RATIO == 50
        monkeypatch.setenv("SEGUI_ZIP_MAX_FILES", "lots")
        with pytest.raises(ValueError, match="SEGUI_ZIP_MAX_FILES"):
            importlib.reload(limits)
    finally:
        monkeypatch.delenv("SEGUI_MAX_UPLOAD_MB")
        monkeypatch.delenv("SEGUI_ZIP_MAX_RATIO")
        monkeypatch.delenv("SEGUI_ZIP_MAX_FILES", raising=False)
        importlib.reload(limits)


# ------------------------------------------------------------------ class maps from the page

def test_class_map_of_another_size_is_refused_from_its_png_header(monkeypatch):
    url = codec.PNG_PREFIX + __import__("base64").b64encode(blank_png(13000, 13000, channels=4)).decode()
    assert len(url) < 1 * MB
    spy = NoDecode(monkeypatch)

    def refuse():
        with pytest.raises(codec.MapFormatError, match=r"13000x13000, the image 640x480; not decoded"):
            codec.map_from_value({"image_id": 5, "map": url}, 5, 480, 640)
    _, rise = peak_rss_mb_during(refuse)
    assert spy.calls == 0
    assert rise < 60, f"refusing a 13000x13000 map raised the peak RSS by {rise:.0f} MB"


def test_class_map_over_the_byte_limit_or_not_a_png_is_refused(monkeypatch):
    ok = codec.encode_map(np.zeros((48, 64), np.uint8))
    assert codec.decode_map(ok, 48, 64).shape == (48, 64)
    monkeypatch.setattr(codec, "MAX_MAP_BYTES", 100)
    with pytest.raises(codec.MapFormatError, match="over the limit .*SEGUI_MAX_MAP_MB"):
        codec.decode_map(codec.encode_map(np.random.default_rng(0).integers(0, 9, (48, 64), dtype=np.uint8)), 48, 64)
    monkeypatch.setattr(codec, "MAX_MAP_BYTES", MB)
    jpeg = io.BytesIO()
    Image.new("L", (64, 48)).save(jpeg, format="JPEG")
    with pytest.raises(codec.MapFormatError, match="not a readable PNG"):
        codec.decode_map(codec.PNG_PREFIX + __import__("base64").b64encode(jpeg.getvalue()).decode(), 48, 64)


def test_save_refuses_a_huge_map_and_stores_nothing(demo_studio):
    """Through Studio and the codec as the /save event does: refused, nothing stored."""
    st = demo_studio
    from segui.handlers import DEMO_PROJECT
    iid = st.store.list_images(DEMO_PROJECT, order="id")[0].id
    info = st.store.get_image(iid)
    before = st.store.get_annotation(iid)
    url = codec.PNG_PREFIX + __import__("base64").b64encode(blank_png(13000, 13000)).decode()
    with pytest.raises(codec.MapFormatError, match=f"the image {info.width}x{info.height}"):
        codec.map_from_value({"image_id": iid, "map": url}, iid, info.height, info.width)
    after = st.store.get_annotation(iid)
    assert (before is None and after is None) or before.revision == after.revision


def test_dataset_label_png_of_another_size_is_refused_before_decoding():
    from storage import InvalidClassMapError
    from storage.imaging import decode_class_map
    png = blank_png(13000, 13000)
    with pytest.raises(InvalidClassMapError, match="13000x13000, the image 64x48; not decoded"):
        decode_class_map(png, shape=(48, 64))
    assert decode_class_map(png_bytes(np.zeros((48, 64), np.uint8)), shape=(48, 64)).shape == (48, 64)


# ------------------------------------------------------------------ exports and uploads (finding 7)

def test_export_is_per_user_private_and_swept(bare_demo_studio):
    st = bare_demo_studio
    from segui.access import Principal
    from segui.handlers import DEMO_PROJECT
    iid = st.store.list_images(DEMO_PROJECT, order="id")[0].id
    loaded = st.open_in_project(DEMO_PROJECT, iid).loaded
    st.store.save_annotation(iid, loaded.class_map, author="ann", status="submitted", base_revision=loaded.base_revision)
    who = Principal("ann", "admin")
    z = st.export(DEMO_PROJECT, "folder", who=who)
    root = Path(st.store.data_dir) / "exports"
    assert z.parent.parent == root / "ann" and not str(z).startswith("/tmp/segui-export")
    assert z.suffix == ".zip" and zipfile.ZipFile(z).namelist()
    assert oct(z.stat().st_mode & 0o777) == oct(0o600)
    assert oct(z.parent.stat().st_mode & 0o777) == oct(0o700)
    assert len(z.parent.name) >= 20                       # a random folder per export
    z2 = st.export(DEMO_PROJECT, "folder", who=who)
    assert z2.parent != z.parent
    # older than the TTL: swept on the next export (or sweep_exports)
    old = time.time() - limits.EXPORT_TTL_SECONDS - 60
    os.utime(z.parent, (old, old))
    assert st.sweep_exports() == 1 and not z.exists() and z2.exists()
    assert st.sweep_exports(max_age=0) == 1 and not z2.exists()


def test_discard_uploads_deletes_only_inside_the_upload_folder(tmp_path):
    up = tmp_path / "gradio"
    (up / "abc").mkdir(parents=True)
    inside = up / "abc" / "a.png"
    inside.write_bytes(b"x")
    outside = tmp_path / "mine.png"
    outside.write_bytes(b"x")
    assert uploads.discard_uploads([inside, outside], up) == 1
    assert not inside.exists() and not (up / "abc").exists() and outside.exists() and up.is_dir()


# ------------------------------------------------------------------ through the running app

def test_served_app_bounds_uploads_and_keeps_no_files_behind(tmp_path, monkeypatch):
    """The upload route refuses a file over the limit (HTTP 413) before any handler;
    an uploaded file leaves Gradio's upload folder once stored; an export's zip leaves
    the data dir once Gradio has its copy, which Gradio deletes after the export TTL."""
    import httpx
    from gradio_client import Client, handle_file

    from segui.handlers import DEMO_PROJECT

    from .conftest import make_studio, served
    st = make_studio(tmp_path, demo=True, labelled=True)
    with served(st) as url:
        big = tmp_path / "big.png"
        with open(big, "wb") as f:
            f.truncate(limits.MAX_UPLOAD_BYTES + 1)
        with open(big, "rb") as f:
            r = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=120)
        assert r.status_code == 413 and "maximum allowed size" in r.text

        c = Client(url, verbose=False)
        c.predict(api_name="/init")
        good = tmp_path / "fresh.png"
        good.write_bytes(png_bytes(street(7, 64, 80)))
        canvas = {"image_id": None, "map": None, "request": None, "args": {}}
        sent = []
        real_discard = uploads.discard_uploads
        import segui.screens.label as label_screen
        monkeypatch.setattr(label_screen, "discard_uploads",
                            lambda paths, folder: sent.extend(paths) or real_discard(paths, folder))
        _, _, log, _ = c.predict(DEMO_PROJECT, [handle_file(str(good))], canvas, "dave", api_name="/upload")
        assert "fresh.png" in log and "added" in log
        assert sent and all(not Path(p).exists() for p in sent)

        path = c.predict(DEMO_PROJECT, "folder", False, api_name="/export")
        assert zipfile.ZipFile(path).namelist()
        exports = Path(st.store.data_dir) / "exports"
        assert [p for p in exports.rglob("*") if p.is_file()] == []
