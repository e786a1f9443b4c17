import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAMVID = Path(os.environ.get("CAMVID_DIR", REPO.parent / "shared" / "datasets" / "camvid"))
SHIPPED = REPO / "weights" / "camvid"

# BERT's sentence vectors are kept between processes (models/text_encoder.py): the suite's
# own folder, shared by its workers and the apps and jobs they start, not the user's cache
os.environ.setdefault("SEGSTUDIO_SENTENCE_CACHE", str(Path(tempfile.gettempdir()) / f"segstudio-test-sentences-{os.getuid()}"))


@pytest.fixture(scope="session")
def camvid() -> Path:
    if not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (set CAMVID_DIR)")
    return CAMVID
