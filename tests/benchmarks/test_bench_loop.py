"""Pure pieces of the loop benchmark (`benchmarks.bench_loop`, issue 10): wrong regions
as a second effort measure, queue order, the pool and val images of --pool-split val."""
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.bench_loop import correction_effort, queue_pick, wrong_regions
from common.splits import auto_split_file


def test_wrong_regions_counts_8_connected_regions_of_at_least_20_pixels():
    truth = np.zeros((40, 40), np.uint8)
    pred = truth.copy()
    pred[0:5, 0:5] = 1          # 25 px: counts
    pred[10:14, 10:14] = 2      # 16 px: too small
    pred[20:25, 20:24] = 1      # 20 px ...
    pred[25:30, 24:28] = 2      # ... touching it at a corner (8-connected): one region of 40 px
    pred[35:40, 0:10] = 1       # 50 px, but half of it void in the truth: 25 labelled wrong px
    truth[35:40, 0:5] = 255
    assert wrong_regions(pred, truth, 255) == 3
    assert wrong_regions(pred, truth, 255, min_pixels=16) == 4
    assert wrong_regions(truth, truth, 255) == 0
    labelled = (truth != 255).sum()
    assert correction_effort(pred, truth, 255) == (25 + 16 + 20 + 20 + 25) / labelled


def test_queue_pick_takes_the_most_uncertain_first():
    preds = [SimpleNamespace(uncertainty=u) for u in (0.1, 0.5, 0.3, 0.5, 0.05)]
    assert queue_pick(list("abcde"), preds, 3) == [1, 3, 2]


def test_pool_split_val_draws_the_pool_and_val_from_the_sequences_val_images(tmp_path):
    from PIL import Image

    from benchmarks.bench_loop import pool_and_val
    for split, n in (("train", 6), ("val", 30)):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (32, 24), (i, 7 * i % 256, 3)).save(tmp_path / "images" / split / f"SEQ_{split}{i:03d}.png")
            Image.new("L", (32, 24), i % 3).save(tmp_path / "labels" / split / f"SEQ_{split}{i:03d}.png")
    args = SimpleNamespace(data=str(tmp_path), sequence="SEQ", seed=0, val="auto", val_limit=None, pool_split="val")
    pool, val, source = pool_and_val(args)
    names = [p[0] for p in pool] + [v[0] for v in val]
    assert sorted(names) == sorted(f"SEQ_val{i:03d}" for i in range(30))      # every val image, once
    assert all(auto_split_file(v[1]) == "val" for v in val) and val
    assert all(auto_split_file(p[1]) == "train" for p in pool) and "SEQ val images" in source
    with pytest.raises(SystemExit, match="--val auto"):
        pool_and_val(SimpleNamespace(**{**vars(args), "val": "split"}))


def test_label_set_merges_camvid_classes_under_new_names_and_voids_the_rest():
    from benchmarks.bench_loop import merged_label_set
    from models.data import LabelSet

    camvid = LabelSet(["sky", "pole", "road", "sign symbol"], [[0, 0, 0]] * 4, 11)
    ls, lut = merged_label_set(camvid, "thin thing=pole+sign symbol;background=*")
    assert ls.names == ["thin thing", "background"] and ls.ignore_index == 11 and len(ls.colors) == 2
    label = np.array([[0, 1, 2, 3, 11]], np.uint8)
    assert lut[label].tolist() == [[1, 0, 1, 0, 11]]
    ls, lut = merged_label_set(camvid, "pole=pole;road=road")  # unnamed classes become void
    assert lut[label].tolist() == [[11, 0, 1, 11, 11]]
    assert merged_label_set(camvid, None) == (camvid, None)
    with pytest.raises(SystemExit, match="does not have"):
        merged_label_set(camvid, "x=lamp;y=*")
    with pytest.raises(SystemExit, match="expected"):
        merged_label_set(camvid, "nonsense")
