import contextlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from segui.handlers import Studio
from storage import Store

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
_PREDICTORS: dict = {}   # one loaded model for the whole session (loading costs seconds)


def make_studio(tmp_path: Path, demo: bool = False) -> Studio:
    st = Studio(Store(data_dir=tmp_path / "data"))
    st._predictors = _PREDICTORS
    if demo:
        st.ensure_demo()
    return st


@pytest.fixture
def studio(tmp_path):
    st = make_studio(tmp_path)
    yield st
    st.store.close()


@pytest.fixture
def demo_studio(tmp_path):
    st = make_studio(tmp_path, demo=True)
    yield st
    st.store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(st: Studio):
    """Build the app for a studio, launch it on a free loopback port and yield its URL;
    closes the server and the store afterwards."""
    from segui.ui import LAUNCH_OPTIONS, build_app
    app = build_app(st)
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       **LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
        st.store.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def png_bytes(arr: np.ndarray) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
