"""A toy project for fine-tuning jobs: a tiny untrained model (no ImageNet weights,
16-channel decoder) and 48x64 images, half red (class 0) half blue (class 1): 8 train
and 5 val images, the fewest a job promotes on. Jobs run in a second or two."""
import io
import os
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import torch

from models import finetune
from models.decoder import DecoderConfig
from models.image_encoder import ImageEncoderConfig
from models.segmenter import Segmenter, SegmenterConfig
from storage import Store
from ..toy import synthetic

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("STORAGE_TEST_PG_URL")
CLASSES = [{"name": "red thing", "color": [255, 0, 0]}, {"name": "blue thing", "color": [0, 0, 255]}]
FAST = {"epochs": 4, "max_minutes": None, "batch_size": 4, "crop": [48, 64], "scale": [0.8, 1.25],
        "lr": 3e-3, "device": "cpu"}
LONG = {**FAST, "epochs": 500}    # runs until cancelled or killed


def png_bytes(img):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def tiny_model_dir(path: Path) -> Path:
    torch.manual_seed(0)
    Segmenter(SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=False),
        decoder=DecoderConfig(channels=16, embed_dim=16, attn_dim=8),
        class_names=["red thing", "blue thing"], ignore_index=255)).save_pretrained(path)
    return path


def populate(store: Store, name: str, base_dir: Path, n_train: int = 8, n_val: int = 5):
    """A project with an active base version and submitted train / val annotations."""
    store.create_project(name, CLASSES, ignore_index=255)
    base = store.add_model_version(name, str(base_dir), activate=True, metrics={"val_miou": 0.0})
    rng = np.random.default_rng(0)
    for i in range(n_train + n_val):
        img, cm = synthetic(rng)
        info = store.add_image(name, png_bytes(img), f"img{i}.png", split="train" if i < n_train else "val")
        store.save_annotation(info.id, cm, "tester", "submitted", base_revision=0)
    return base


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture
def project(tmp_path, base_dir):
    """(store, base version) of the project "toy" on SQLite in tmp_path/data."""
    store = Store(None, tmp_path / "data")
    base = populate(store, "toy", base_dir)
    yield store, base
    store.close()


@pytest.fixture
def pg_url():
    """A fresh schema on the PostgreSQL server of STORAGE_TEST_PG_URL (as tests/storage does)."""
    if not PG_URL:
        pytest.skip("STORAGE_TEST_PG_URL is not set (.ci/run sets it): PostgreSQL tests skipped")
    from sqlalchemy import create_engine, text
    schema = f"j_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def job_with(store, base, project="toy", **params):
    return store.create_job(project, finetune.default_params(**{**FAST, **params}), base.id)


def wait_for(cond, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def training_pid(store, job_id) -> int | None:
    """The pid of the job's training process, from the worker's log line."""
    for line in store.get_job(job_id).log_tail:
        if "training process pid" in line:
            return int(line.split("training process pid ")[1].split()[0])
    return None


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
