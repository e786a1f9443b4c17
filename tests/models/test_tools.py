"""Metrics, dataset reading, and the evaluate / predict / train command-line tools."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from models.data import DatasetError, load_image, load_split
from models.metrics import confusion_matrix, scores
from models.train import remove_classes
from models.data import LabelSet

from ..conftest import REPO, SHIPPED


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "2"})


def test_metrics_equal_a_hand_computed_confusion_matrix():
    truth = np.array([[0, 0, 1, 1], [2, 2, 9, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]])
    conf = confusion_matrix(pred, truth, 3, ignore_index=9)
    # rows = truth, columns = prediction; the void pixel (9) is not counted
    assert conf.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    s = scores(conf, ["a", "b", "c"])
    # IoU a: 1/(2+2-1)=1/3, b: 2/(3+3-2)=1/2, c: 1/(2+2-1)=1/3
    assert s["per_class_iou"] == pytest.approx({"a": 1 / 3, "b": 1 / 2, "c": 1 / 3})
    assert s["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 7)


def test_a_class_absent_everywhere_is_left_out_of_the_mean():
    conf = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 3, 255)
    s = scores(conf)
    assert s["per_class_iou"]["2"] is None and s["miou"] == 1.0


def test_removed_classes_become_void_and_later_indices_shift():
    ls = LabelSet(["a", "b", "c"], [[1, 1, 1]] * 3, 11)
    new, (lbl,) = remove_classes(ls, [np.array([[0, 1, 2, 11]], np.uint8)], ["b"])
    assert new.names == ["a", "c"] and lbl.tolist() == [[0, 11, 1, 11]]


def test_unreadable_image_and_mismatched_label_are_clear_errors(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="cannot read image"):
        load_image(bad)
    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(root / "images" / "train" / "a.png")
    Image.new("L", (41, 30)).save(root / "labels" / "train" / "a.png")
    with pytest.raises(DatasetError, match="41x30 but its image is 40x30"):
        load_split(root, "train")


def test_evaluate_prints_valid_json_on_real_val_images(camvid):
    out = run("models.evaluate", "--model", str(SHIPPED), "--data", str(camvid), "--split", "val",
              "--limit", "4", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["per_class_iou"]) == set(json.loads((camvid / "classes.json").read_text())["classes"][i]["name"] for i in range(11))
    assert 0 <= result["miou"] <= 1 and 0 <= result["pixel_accuracy"] <= 1
    assert result["images_per_second"] > 0 and result["num_images"] == 4
    # the shipped model is a real one: far above chance on real street scenes
    assert result["pixel_accuracy"] > 0.8 and result["miou"] > 0.45


def test_train_stops_after_max_steps(camvid, tmp_path):
    """--max-steps: the run ends after that many steps whatever the clock says (2 images,
    batch 1: 2 steps an epoch, so 3 steps end it in epoch 2 of 5), and says so in its history."""
    out = run("models.train", "--data", str(camvid), "--out", str(tmp_path / "m"), "--epochs", "5", "--max-steps", "3",
              "--train-limit", "2", "--val-split", "none", "--batch-size", "1", "--crop", "64x64",
              "--freeze-blocks", "16", "--device", "cpu", "--threads", "2")
    assert out.returncode == 0, out.stderr
    hist = json.loads((tmp_path / "m" / "history.json").read_text())
    assert hist["config"]["max_steps"] == 3
    assert [h["epoch"] for h in hist["history"]] == [1, 2]
    # piped into a log: one line an epoch, no training progress bar ("epoch 1/5" is the bar's)
    log = out.stdout + out.stderr
    assert re.search(r"^epoch 1: loss [0-9.]+", log, re.M) and "epoch 1/5" not in log


def test_evaluate_with_other_wordings_and_bad_class_lists(camvid):
    out = run("models.evaluate", "--model", str(SHIPPED), "--data", str(camvid), "--limit", "2",
              "--classes", "sky,building,pole,road,pavement,tree,sign symbol,fence,car,pedestrian", "--device", "cpu")
    assert out.returncode == 2 and "10 names" in out.stderr
    out = run("models.evaluate", "--model", str(SHIPPED), "--data", str(camvid), "--limit", "2", "--device", "cpu",
              "--classes", "sky,sky,pole,road,pavement,tree,sign symbol,fence,car,pedestrian,bicyclist")
    assert out.returncode == 2 and "duplicate class name" in out.stderr


def test_predict_writes_class_and_overlay_pngs(camvid, tmp_path):
    src = sorted((camvid / "images" / "val").iterdir())[0]
    out = run("models.predict", "--model", str(SHIPPED), str(src), "--out", str(tmp_path / "p"), "--device", "cpu")
    assert out.returncode == 0, out.stderr
    classes = np.array(Image.open(tmp_path / "p" / f"{src.stem}_classes.png"))
    overlay = Image.open(tmp_path / "p" / f"{src.stem}_overlay.png")
    assert classes.shape == (360, 480) and classes.max() <= 10
    assert overlay.size == (480, 360) and overlay.mode == "RGB"
    truth = np.array(Image.open(camvid / "labels" / "val" / f"{src.stem}.png"))
    keep = truth != 11
    assert (classes[keep] == truth[keep]).mean() > 0.75


def test_predict_with_an_unreadable_image_writes_nothing(camvid, tmp_path):
    good = sorted((camvid / "images" / "val").iterdir())[0]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = run("models.predict", "--model", str(SHIPPED), str(good), str(bad), "--out", str(tmp_path / "p"), "--device", "cpu")
    assert out.returncode == 2 and "broken.png" in out.stderr
    assert not (tmp_path / "p").exists()


def test_a_folder_with_a_pickle_is_refused_by_the_tools(camvid, tmp_path):
    shutil.copytree(SHIPPED, tmp_path / "m")
    (tmp_path / "m" / "extra.pkl").write_bytes(b"\x80\x04")
    out = run("models.evaluate", "--model", str(tmp_path / "m"), "--data", str(camvid), "--limit", "1")
    assert out.returncode == 2 and "pickle" in out.stderr


def test_shipped_model_is_fp16_and_small():
    from safetensors import safe_open
    size = os.path.getsize(SHIPPED / "model.safetensors")
    assert size <= 25 * 1024 * 1024
    with safe_open(str(SHIPPED / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_tensor(k).dtype) for k in list(f.keys())[:20]}
    assert "torch.float16" in dtypes


@pytest.mark.slow   # real training
def test_train_runs_a_short_epoch_and_keeps_the_best_checkpoint(camvid, tmp_path):
    out = run("models.train", "--data", str(camvid), "--out", str(tmp_path / "r"), "--epochs", "1",
              "--train-limit", "4", "--val-limit", "2", "--batch-size", "2", "--crop", "96x128",
              "--device", "cpu", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["metrics"]["epoch"] == 1 and 0 <= cfg["metrics"]["val_miou"] <= 1
    hist = json.loads((tmp_path / "r" / "history.json").read_text())["history"]
    assert len(hist) == 1 and "miou" in hist[0]
