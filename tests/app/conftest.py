import contextlib
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from segui.handlers import DEMO_DIR, Studio
from segui.predicting import PredictorCache
from storage import Store

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
_PREDICTORS = PredictorCache()   # one loaded model for the whole session (loading costs seconds)


def make_studio(tmp_path: Path, demo: bool = False, labelled: bool = True) -> Studio:
    """A studio on a fresh data folder; ``demo``: with the demo project, ``labelled=False``:
    only its 4 street images to label (not the 10 labelled ones)."""
    st = Studio(Store(data_dir=tmp_path / "data"), predictors=_PREDICTORS)
    if demo:
        st.ensure_demo(DEMO_DIR if labelled else bare_demo_dir(tmp_path / "demo"))
    return st


def bare_demo_dir(out: Path) -> Path:
    """A copy of the demo folder without its labelled images."""
    out.mkdir(parents=True)
    for f in [DEMO_DIR / "classes.json", *DEMO_DIR.glob("*.jpg")]:
        shutil.copy(f, out / f.name)
    return out


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


@pytest.fixture
def bare_demo_studio(tmp_path):
    """The demo project with only its 4 images to label: nothing submitted yet."""
    st = make_studio(tmp_path, demo=True, labelled=False)
    yield st
    st.store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(app, **options) -> int:
    """``app.queue().launch`` on a free loopback port, without blocking; -> the port.
    Gradio gives up when one HEAD of the new server takes over 3 s ("When localhost is not
    accessible..."), which a 2-core machine running the suite can make it do (seen once in
    CI): tried again, up to three times, on a new port."""
    for attempt in range(3):
        port = free_port()
        try:
            app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                               **options)
            return port
        except ValueError as e:
            if "localhost is not accessible" not in str(e) or attempt == 2:
                raise
            app.close()


@contextlib.contextmanager
def served(st: Studio):
    """Build the app for a studio, launch it on a free loopback port and yield its URL;
    closes the server and the store afterwards."""
    from segui.ui import LAUNCH_OPTIONS, build_app
    app = build_app(st)
    port = launch_local(app, **LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
        st.store.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def street(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A random RGB image standing in for a photo in upload tests."""
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require_chromium() -> None:
    """Skip a browser test without Chromium; under CI (where .ci/run installs it) fail."""
    from .canvas_page import chromium_available
    if not chromium_available():
        if in_ci():
            pytest.fail("Chromium not found: .ci/run installs Debian's chromium")
        pytest.skip("Chromium not found (apt-get install chromium); CI fails instead")
