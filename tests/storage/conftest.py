"""Fixtures: every ``store`` test runs on SQLite and, when STORAGE_TEST_PG_URL is set
(``.ci/run`` sets it), a second time on a real PostgreSQL server, each test in a
fresh schema."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from storage import Store

REPO = Path(__file__).resolve().parents[2]
CAMVID = REPO.parent / "shared" / "datasets" / "camvid"
PG_URL = os.environ.get("STORAGE_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def db_url(backend, tmp_path):
    """A URL to an empty database (None = default SQLite file in the data dir)."""
    if backend == "sqlite":
        yield None
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def make_store(db_url, tmp_path):
    stores = []

    def make(**kw) -> Store:
        s = Store(db_url, tmp_path / "data", **kw)
        stores.append(s)
        return s
    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


@pytest.fixture
def project(store):
    """A 3-class project with ignore index 255 and one 48x32 image."""
    return store.create_project("p", ["road", {"name": "car", "color": "#ff0000"}, "sky"])


def png_bytes(arr: np.ndarray, **save) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


@pytest.fixture(name="png_bytes")
def png_bytes_fixture():
    return png_bytes


@pytest.fixture
def rgb_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)


@pytest.fixture
def image(store, project, rgb_image):
    return store.add_image("p", png_bytes(rgb_image), "a.png", split="train")


@pytest.fixture
def camvid():
    if not CAMVID.is_dir():
        pytest.skip(f"CamVid not found at {CAMVID}")
    return CAMVID
