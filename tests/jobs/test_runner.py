"""jobs.runner in this process: success and promotion, a worse model kept out, too few
val images, empty data, a label set changed meanwhile, a class added by name."""
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from jobs import queue, runner
from models import finetune
from models.segmenter import Segmenter

from .conftest import CLASSES, FAST, job_with, png_bytes


def test_job_runs_to_success_changes_weights_lowers_loss_and_promotes(project):
    store, base = project
    job = job_with(store, base)
    assert store.get_job(job.id).status == "queued"
    result = runner.run_job(store, job.id)
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
    runner.run_job(store, job2.id)
    done2 = store.get_job(job2.id)
    assert done2.metrics["base_val_miou"] == pytest.approx(done.metrics["val_miou"])
    assert any("(stored; same val set" in line for line in done2.log_tail)


def test_a_worse_model_is_not_promoted(project, monkeypatch):
    store, base = project
    real = finetune.evaluate_model
    calls = []

    def base_real_then_worse(*a):  # 1st call: the base model; 2nd: the fine-tuned one
        calls.append(1)
        return real(*a) if len(calls) == 1 else {**real(*a), "miou": -1.0}

    monkeypatch.setattr(finetune, "evaluate_model", base_real_then_worse)
    job = job_with(store, base, epochs=1)
    runner.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.metrics["promoted"] is False
    assert done.metrics["not_promoted_because"] == "val mIoU dropped"
    assert store.active_model_version("toy").id == base.id  # user can still promote by hand
    store.activate_model_version(done.result_version_id)
    assert store.active_model_version("toy").id == done.result_version_id


def test_too_few_val_images_keep_the_active_model(project):
    store, base = project
    last_val = store.list_images("toy", split="val")[-1]
    store.set_split(last_val.id, "train")            # 4 val images left
    job = job_with(store, base, epochs=2)
    runner.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.metrics["promoted"] is False
    assert "4 val image(s), at least 5 needed" in done.metrics["not_promoted_because"]
    assert store.active_model_version("toy").id == base.id


def test_empty_data_fails_with_a_clear_message(project):
    store, base = project
    store.create_project("empty", CLASSES)
    v = store.add_model_version("empty", base.weights_dir, activate=True)
    with pytest.raises(queue.JobError, match="submit at least one annotation"):
        queue.enqueue(store, "empty")
    job = store.create_job("empty", finetune.default_params(**FAST), v.id)
    result = runner.run_job(store, job.id)
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
    runner.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "failed" and "label set changed" in done.error
    assert len(store.list_model_versions("toy")) == 1


def test_a_cancel_after_training_keeps_the_active_model(project, monkeypatch):
    """A cancel that lands while the new model is evaluated: the job ends cancelled,
    the new version is stored but never activated (promotion is in finish_job's
    transaction)."""
    store, base = project
    real = finetune.evaluate_model
    calls = []

    def cancel_during_new_eval(*a):
        calls.append(1)
        if len(calls) == 2:
            store.cancel_job(job.id)
        return real(*a)

    monkeypatch.setattr(finetune, "evaluate_model", cancel_during_new_eval)
    job = job_with(store, base, epochs=1)
    result = runner.run_job(store, job.id)
    assert result["status"] == "cancelled" and store.get_job(job.id).status == "cancelled"
    assert store.active_model_version("toy").id == base.id


def test_a_class_added_by_name_is_trained(project):
    store, base = project
    store.add_class("toy", "green thing", [0, 255, 0])
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :, 1] = 220
    info = store.add_image("toy", png_bytes(img), "green.png", split="train")
    store.save_annotation(info.id, np.full((48, 64), 2, np.uint8), "tester", "submitted", base_revision=0)
    job = job_with(store, base, epochs=2)
    runner.run_job(store, job.id)
    done = store.get_job(job.id)
    assert done.status == "succeeded"
    new = Segmenter.from_pretrained(store.get_model_version(done.result_version_id).weights_dir)
    assert new.config.class_names == ["red thing", "blue thing", "green thing"]
    assert "green thing" in done.metrics["per_class_iou"]
    assert any("new classes trained by name: ['green thing']" in l for l in done.log_tail)
    assert done.metrics["lr"] == 3e-3                                     # lr_new_words is off by default
    assert new.config.trained_class_names == ["red thing", "blue thing"]   # the words its weights first learned
    # with lr_new_words, a label set holding a word the model never learned trains at that rate
    on = job_with(store, base, epochs=1, lr_new_words=6e-3)
    runner.run_job(store, on.id)
    assert store.get_job(on.id).metrics["lr"] == 6e-3
    assert any("learning rate 0.006: words the model never learned (1 of 3)" in l for l in store.get_job(on.id).log_tail)


def test_the_val_split_chooses_the_blend_toward_the_base(project):
    """params["blend"]: the job tries base + a * (trained - base) from the largest a down,
    keeps the first that does not lower val mIoU (else the best tried), saves that one
    and reports what it tried."""
    store, base = project
    job = job_with(store, base, blend=[0.0, 1.0, 0.5])
    runner.run_job(store, job.id)
    done = store.get_job(job.id)
    blend, base_miou = done.metrics["blend"], done.metrics["base_val_miou"]
    tried = [tuple(t) for t in blend["tried"]]
    assert [a for a, _ in tried] == [1.0, 0.5, 0.0][: len(tried)]
    passing = [a for a, m in tried if m >= base_miou]
    if passing:    # stopped at the first blend that keeps val mIoU
        assert blend["alpha"] == passing[0] == tried[-1][0]
    else:
        assert len(tried) == 3 and blend["alpha"] == max(tried, key=lambda t: t[1])[0]
    assert done.metrics["val_miou"] == pytest.approx(dict(tried)[blend["alpha"]])
    assert any("kept a=" in line for line in done.log_tail)
