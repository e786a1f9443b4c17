"""A studio's backup while it runs, and its restore elsewhere: `python -m storage backup`
and `restore` (storage.backup)."""
import io
import tarfile

import numpy as np
import pytest

from storage import Store
from storage.__main__ import main
from storage.backup import BackupError, backup, restore


def png_bytes(arr):
    buf = io.BytesIO()
    from PIL import Image
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _studio(store):
    """A project with one annotated image, a fine-tuned model folder, a job log, and the
    files a backup leaves out (thumbnails, an export, a model being written)."""
    store.create_project("p", ["road", "car"])
    img = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    iid = store.add_image("p", png_bytes(img), "a.png").id
    cm = np.zeros((32, 48), np.uint8)
    cm[10:] = 1
    store.save_annotation(iid, cm, "ann", "submitted")
    d = store.data_dir
    (d / "models" / "p" / "job1").mkdir(parents=True)
    (d / "models" / "p" / "job1" / "config.json").write_text("{}")
    (d / "models" / "p" / "job2.partial").mkdir(parents=True)
    (d / "models" / "p" / "job2.partial" / "config.json").write_text("{}")
    store.add_model_version("p", d / "models" / "p" / "job1", activate=True)
    (d / "job-logs").mkdir()
    (d / "job-logs" / "job-1.log").write_text("step 1\n")
    (d / "cache" / "thumbs").mkdir(parents=True)
    (d / "cache" / "thumbs" / "x.jpg").write_bytes(b"thumb")
    (d / "exports" / "u").mkdir(parents=True)
    (d / "exports" / "u" / "p-folder.zip").write_bytes(b"zip")
    return iid, cm


def test_a_backup_restored_elsewhere_is_the_studio_as_it_was(tmp_path):
    store = Store(None, tmp_path / "data")
    iid, cm = _studio(store)
    rep = backup(store, tmp_path / "studio.tar")
    assert rep.database and (rep.projects, rep.images) == (1, 1) and rep.outside == []
    names = tarfile.open(tmp_path / "studio.tar").getnames()
    assert names[0] == "studio.db" and "models/p/job1/config.json" in names and "job-logs/job-1.log" in names
    assert not [n for n in names if n.startswith(("cache/", "exports/")) or ".partial" in n or "db-wal" in n]
    store.save_annotation(iid, np.ones_like(cm), "ann", "draft", base_revision=1)   # after the backup
    store.close()
    r = restore(tmp_path / "studio.tar", tmp_path / "restored")
    assert (r.projects, r.images) == (1, 1) and r.outside == []     # the job's model came with it
    back = Store(None, tmp_path / "restored")
    try:
        info = back.get_image(iid)
        assert info.revision == 1                                        # as it was at the backup
        np.testing.assert_array_equal(back.get_annotation(iid).class_map, cm)
        assert back.load_image(iid).shape == (32, 48, 3)
        mv = back.active_model_version("p")
        assert mv.weights_dir == str((tmp_path / "restored" / "models" / "p" / "job1").resolve())
        assert (tmp_path / "restored" / "models" / "p" / "job1" / "config.json").is_file()
    finally:
        back.close()


def test_nothing_is_overwritten_and_nothing_lands_outside(tmp_path):
    store = Store(None, tmp_path / "data")
    _studio(store)
    (tmp_path / "taken.tar").write_bytes(b"old")
    with pytest.raises(BackupError, match="exists already"):
        backup(store, tmp_path / "taken.tar")
    assert (tmp_path / "taken.tar").read_bytes() == b"old"
    with pytest.raises(BackupError, match="lies in the data folder"):
        backup(store, store.data_dir / "inside.tar")
    backup(store, tmp_path / "ok.tar.gz")
    store.close()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "ok.tar.gz", tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, data in (("studio.db", b""), ("../escaped.txt", b"x")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    with pytest.raises(BackupError, match="cannot be restored"):
        restore(evil, tmp_path / "new")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "new").exists()   # nothing half-restored


def test_backup_and_restore_from_the_command_line(backend, db_url, tmp_path, capsys):
    url = db_url or f"sqlite:///{tmp_path / 'cli' / 'studio.db'}"
    store = Store(url, tmp_path / "cli")
    _studio(store)
    store.close()
    assert main(["backup", "--db", url, "--data-dir", str(tmp_path / "cli"), "--out", str(tmp_path / "b.tar")]) == 0
    out = capsys.readouterr().out
    if backend == "sqlite":
        assert out.startswith("backed up the database (1 projects, 1 images) and ")
        assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "r")]) == 0
        assert "restored 1 projects, 1 images" in capsys.readouterr().out
        # a version whose folder is outside the data folder and not on "this machine": said
        store = Store(None, tmp_path / "r")
        gone = tmp_path / "elsewhere" / "camvid"
        store.add_model_version("p", gone)
        store.close()
        assert main(["backup", "--data-dir", str(tmp_path / "r"), "--out", str(tmp_path / "b2.tar")]) == 0
        assert "1 model version(s) point outside the data folder" in capsys.readouterr().out
        assert main(["restore", str(tmp_path / "b2.tar"), "--data-dir", str(tmp_path / "r2")]) == 0
        assert f"folder is not on this machine: {gone}" in capsys.readouterr().err
    else:       # the server's database is pg_dump's; the files are in the backup
        assert out.startswith("backed up no database (PostgreSQL: back it up with pg_dump) and ")
        assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "r")]) == 2
        assert "pg_restore" in capsys.readouterr().err
        assert main(["restore", str(tmp_path / "b.tar"), "--db", url, "--data-dir", str(tmp_path / "r")]) == 0
        assert (tmp_path / "r" / "models" / "p" / "job1" / "config.json").is_file()
    assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "r")]) == 2
    assert "not empty" in capsys.readouterr().err
