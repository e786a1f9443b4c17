"""Fine-tuning jobs: state machine, cancel, crash recovery, promote-if-better, DDP (gloo)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models import finetune
from models.decoder import DecoderConfig
from models.image_encoder import ImageEncoderConfig
from models.segmenter import Segmenter, SegmenterConfig
from storage import Store

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = [{"name": "red thing", "color": [255, 0, 0]}, {"name": "blue thing", "color": [0, 0, 255]}]
FAST = {"epochs": 4, "max_minutes": None, "batch_size": 4, "crop": [48, 64], "scale": [0.8, 1.25],
        "lr": 3e-3, "device": "cpu"}


def synthetic(rng, h=48, w=64):
    """Left part red (class 0), right part blue (class 1), at a random split, with noise."""
    cut = int(rng.integers(16, 48))
    img = np.zeros((h, w, 3), np.float32)
    img[:, :cut, 0] = 200
    img[:, cut:, 2] = 200
    img += rng.normal(0, 25, img.shape)
    cm = np.zeros((h, w), np.uint8)
    cm[:, cut:] = 1
    return np.clip(img, 0, 255).astype(np.uint8), cm


def png_bytes(img):
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def project(tmp_path):
    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    Segmenter(SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=False),
        decoder=DecoderConfig(channels=16, embed_dim=16, attn_dim=8),
        class_names=["red thing", "blue thing"], ignore_index=255)).save_pretrained(base_dir)
    store = Store(None, tmp_path / "data")
    store.create_project("toy", CLASSES, ignore_index=255)
    base = store.add_model_version("toy", str(base_dir), activate=True, metrics={"val_miou": 0.0})
    rng = np.random.default_rng(0)
    for i in range(13):   # 8 train, 5 val: the fewest a job promotes on (MIN_VAL_TO_PROMOTE)
        img, cm = synthetic(rng)
        info = store.add_image("toy", png_bytes(img), f"img{i}.png", split="train" if i < 8 else "val")
        store.save_annotation(info.id, cm, "tester", "submitted", base_revision=0)
    yield store, base
    store.close()


def job_with(store, base, **params):
    return store.create_job("toy", finetune.default_params(**{**FAST, **params}), base.id)


def test_job_runs_to_success_changes_weights_lowers_loss_and_promotes(project):
    store, base = project
    job = job_with(store, base)
    assert store.get_job(job.id).status == "queued"
    result = finetune.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.progress == 1.0
    assert done.result_version_id == result["version_id"]
    losses = done.metrics["losses"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    new = store.get_model_version(done.result_version_id)
    assert new.parent_id == base.id and os.path.isdir(new.weights_dir)
    assert not any(p.endswith(".partial") for p in os.listdir(os.path.dirname(new.weights_dir)))
    before = load_file(os.path.join(base.weights_dir, "model.safetensors"))
    after = load_file(os.path.join(new.weights_dir, "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert done.metrics["val_miou"] >= done.metrics["base_val_miou"]
    assert done.metrics["promoted"] is True
    assert store.active_model_version("toy").id == new.id
    assert any("promoted" in line for line in done.log_tail)
    # the next job reuses the stored val mIoU of the version it starts from
    job2 = job_with(store, store.active_model_version("toy"), epochs=1)
    finetune.run_job(store, job2.id)
    done2 = store.get_job(job2.id)
    assert done2.metrics["base_val_miou"] == pytest.approx(done.metrics["val_miou"])
    assert any("(stored; same val set" in line for line in done2.log_tail)


def test_a_worse_model_is_not_promoted(project, monkeypatch):
    store, base = project
    real = finetune._evaluate_model
    calls = []

    def base_real_then_worse(*a):  # 1st call: the base model; 2nd: the fine-tuned one
        calls.append(1)
        return real(*a) if len(calls) == 1 else {**real(*a), "miou": -1.0}

    monkeypatch.setattr(finetune, "_evaluate_model", base_real_then_worse)
    job = job_with(store, base, epochs=1)
    finetune.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.metrics["promoted"] is False
    assert store.active_model_version("toy").id == base.id  # user can still promote by hand
    store.activate_model_version(done.result_version_id)
    assert store.active_model_version("toy").id == done.result_version_id


def test_empty_data_fails_with_a_clear_message(tmp_path, project):
    store, base = project
    store.create_project("empty", CLASSES)
    v = store.add_model_version("empty", base.weights_dir, activate=True)
    with pytest.raises(finetune.JobError, match="submit at least one annotation"):
        finetune.start_job(store, "empty")
    job = store.create_job("empty", finetune.default_params(**FAST), v.id)
    result = finetune.run_job(store, job.id)
    assert result["status"] == "failed"
    done = store.get_job(job.id)
    assert done.status == "failed" and "nothing to train on" in done.error
    assert store.active_model_version("empty").id == v.id


def test_label_set_changed_during_the_job_is_refused(project, monkeypatch):
    store, base = project
    real = finetune.train_model

    def rename_meanwhile(*a, **kw):
        store.rename_class("toy", 1, "azure thing")
        return real(*a, **kw)

    monkeypatch.setattr(finetune, "train_model", rename_meanwhile)
    job = job_with(store, base, epochs=1)
    finetune.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "failed" and "label set changed" in done.error
    assert len(store.list_model_versions("toy")) == 1


def test_a_class_added_by_name_is_trained(project):
    store, base = project
    store.add_class("toy", "green thing", [0, 255, 0])
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :, 1] = 220
    info = store.add_image("toy", png_bytes(img), "green.png", split="train")
    store.save_annotation(info.id, np.full((48, 64), 2, np.uint8), "tester", "submitted", base_revision=0)
    job = job_with(store, base, epochs=2)
    finetune.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded"
    new = Segmenter.from_pretrained(store.get_model_version(done.result_version_id).weights_dir)
    assert new.config.class_names == ["red thing", "blue thing", "green thing"]
    assert "green thing" in done.metrics["per_class_iou"]
    assert any("new classes trained by name: ['green thing']" in l for l in done.log_tail)


def wait_for(cond, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.3)
    return False


def test_cancel_stops_a_running_worker_process(project):
    store, base = project
    job = finetune.start_job(store, "toy", {**FAST, "epochs": 500})
    assert wait_for(lambda: store.get_job(job.id).step > 0), store.get_job(job.id)
    finetune.cancel_job(store, job.id)
    proc = finetune._WORKERS[(store.url, job.id)]
    assert store.url not in " ".join(proc.args)  # the URL travels in the environment
    assert proc.wait(timeout=60) == 0
    assert store.get_job(job.id).status == "cancelled"
    assert store.active_model_version("toy").id == base.id
    assert len(store.list_model_versions("toy")) == 1


def test_a_killed_worker_is_marked_failed_and_the_active_model_is_untouched(project):
    store, base = project
    job = finetune.start_job(store, "toy", {**FAST, "epochs": 500})
    assert wait_for(lambda: store.get_job(job.id).step > 0)
    proc = finetune._WORKERS[(store.url, job.id)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert finetune.reap_dead_jobs(store, "toy") == [job.id]
    done = store.get_job(job.id)
    assert done.status == "failed" and "-9" in done.error
    assert store.active_model_version("toy").id == base.id
    models_dir = os.path.join(store.data_dir, "models")
    assert not os.path.isdir(models_dir) or os.listdir(os.path.join(models_dir, "toy")) == []
    # a new job can start after the crash
    assert store.create_job("toy", {}, base.id).status == "queued"


def test_torchrun_with_two_gloo_ranks_ends_with_identical_weights(project):
    store, base = project
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "models.finetune", "--db", store.url, "--data-dir", str(store.data_dir), "--project", "toy",
           "--epochs", "2", "--batch-size", "2", "--device", "cpu"]
    # crop / scale of the job come from default_params; keep them small through the job params
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    job = store.list_jobs("toy")[0]
    assert job.status == "succeeded", job.error
    assert job.metrics["world_size"] == 2
    assert job.metrics["ranks_identical_weights"] is True


def test_finetune_panel_handlers_start_show_progress_and_cancel(project):
    from segui import finetune_panel as panel
    store, base = project
    assert panel.status(store, "toy")[0] == "No fine-tuning job yet."
    with pytest.raises(panel.PanelError, match="pick a project"):
        panel.start(store, "", 1, 1)
    assert "queued" in panel.start(store, "toy", 500, None)
    with pytest.raises(panel.PanelError, match="already has job"):
        panel.start(store, "toy", 1, None)
    assert wait_for(lambda: len(panel.status(store, "toy")[2]) >= 2)
    line, pct, curve, log = panel.status(store, "toy")
    assert "running" in line and 0 <= pct < 100 and list(curve.columns) == ["step", "loss"]
    assert "train / 5 val images" in log
    assert "cancelled" in panel.cancel(store, "toy")
    assert "cancelled" in panel.status(store, "toy")[0]
    with pytest.raises(panel.PanelError, match="no queued or running job"):
        panel.cancel(store, "toy")
    job = store.list_jobs("toy")[0]
    assert finetune._WORKERS[(store.url, job.id)].wait(timeout=60) == 0
    assert store.active_model_version("toy").id == base.id


def test_frozen_encoder_blocks_keep_their_weights_and_the_rest_trains():
    from models.train import SplitData, TrainConfig, train_model
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=False),
        decoder=DecoderConfig(channels=16, embed_dim=16, attn_dim=8),
        class_names=["red thing", "blue thing"], ignore_index=255))
    rng = np.random.default_rng(1)
    data = [synthetic(rng) for _ in range(4)]
    enc = model.image_encoder
    frozen_before = {k: v.clone() for k, v in enc._blocks[:3].state_dict().items() if "weight" in k}
    free_before = {k: v.clone() for k, v in enc._blocks[3:].state_dict().items() if "weight" in k}
    dec_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    cfg = TrainConfig(epochs=3, batch_size=4, crop=(48, 64), scale=(0.8, 1.25), lr=3e-3, warmup_steps=1,
                      device="cpu", freeze_blocks=3)
    train_model(model, SplitData([d[0] for d in data], [d[1] for d in data]), None, cfg, show_progress=False)
    frozen_after = enc._blocks[:3].state_dict()
    free_after = enc._blocks[3:].state_dict()
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert any(not torch.equal(free_before[k], free_after[k]) for k in free_before)
    assert any(not torch.equal(v, model.decoder.state_dict()[k]) for k, v in dec_before.items())
    assert all(p.requires_grad for p in enc._blocks.parameters())  # frozen only while training


def test_too_few_val_images_keep_the_active_model(project):
    store, base = project
    last_val = store.list_images("toy", split="val")[-1]
    store.set_split(last_val.id, "train")            # 4 val images left
    job = job_with(store, base, epochs=2)
    finetune.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.metrics["promoted"] is False
    assert "4 val image(s), at least 5 needed" in done.metrics["not_promoted_because"]
    assert store.active_model_version("toy").id == base.id
