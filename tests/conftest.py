import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAMVID = Path(os.environ.get("CAMVID_DIR", REPO.parent / "shared" / "datasets" / "camvid"))
SHIPPED = REPO / "weights" / "camvid"


@pytest.fixture(scope="session")
def camvid() -> Path:
    if not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (set CAMVID_DIR)")
    return CAMVID
