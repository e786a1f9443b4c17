"""The canvas's pure JavaScript logic (segui/canvas/core.js, nav.js, input.js) under node's built-in
test runner: tests/js/*.test.js. Part of the README's test command."""
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import in_ci

REPO = Path(__file__).resolve().parents[2]


def test_canvas_core_js_under_node():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        if in_ci():
            pytest.fail("node not found: .ci/run installs Debian's nodejs")
        pytest.skip("node not found (apt-get install nodejs); CI fails instead")
    r = subprocess.run([node, "--test", str(REPO / "tests" / "js")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass " in r.stdout
