"""The fourth round of the second reviewer (benchmarks/tune_second_reviewer_fourth.py): the
disagreement components, the queue weightings and the half-size model input, on hand-made
probabilities where the answer is known. No model is loaded."""

import sys
from pathlib import Path

import numpy as np
import pytest

from models.review import Evidence, queue_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_second_reviewer as bench  # noqa: E402
import tune_second_reviewer_fourth as fourth  # noqa: E402

H, W, K, VOID = 60, 80, 3, 255


def probs_for(pred: np.ndarray, conf: float = 0.98, k: int = K) -> np.ndarray:
    p = np.full((k,) + pred.shape, (1.0 - conf) / (k - 1), dtype=np.float32)
    np.put_along_axis(p, pred[None].astype(np.intp), conf, axis=0)
    return p


def test_an_erased_object_is_one_pair_component_and_a_seam_erodes_away():
    label = np.zeros((H, W), np.uint8)
    label[:, W // 2:] = 1
    pred = label.copy()
    pred[10:20, 10:20] = 2  # an object the annotation erased into 0 (100 px, inside the 0 half)
    pred[:, W // 2: W // 2 + 2] = 0  # the model's edge 2 px right of the annotation's: a 2 px seam
    got = fourth.disagreement_components(probs_for(pred), label, VOID, K, "pair")
    top, cls, ev = got[(0, "ind")]
    assert sorted(zip(top.tolist(), cls.tolist(), ev.tolist())) == [(0, 2, 100.0), (1, 0, 2.0 * H)]
    # eroded by 1 px: the 2 px seam is gone, the object keeps its 8 x 8 core
    top, cls, ev = got[(1, "ind")]
    assert list(zip(top.tolist(), cls.tolist(), ev.tolist())) == [(0, 2, 64.0)]
    # the model is 0.98 sure: every pixel is strong, and soft = log(0.98 / 0.01) / log 100 ~ 1
    assert sorted(got[(0, "strong")][2].tolist()) == [100.0, 120.0]
    assert sorted(got[(0, "soft")][2].tolist()) == pytest.approx([100 * np.log(98) / np.log(100),
                                                                 120 * np.log(98) / np.log(100)], rel=1e-3)
    # a sure model on a right annotation: nothing
    assert all(v[2].size == 0 for v in fourth.disagreement_components(probs_for(label), label, VOID, K, "pair").values())
    # void never counts
    void = label.copy()
    void[10:20, 10:20] = VOID
    assert fourth.disagreement_components(probs_for(pred), void, VOID, K, "pair")[(1, "ind")][2].size == 0


def test_label_grouping_joins_an_object_the_model_splits_between_two_classes():
    label = np.zeros((H, W), np.uint8)
    true = label.copy()
    true[10:30, 10:30] = 1  # relabelled 0 in the annotation; the model says 1 on top, 2 below
    pred = true.copy()
    pred[20:30, 10:30] = 2
    p = probs_for(pred)
    by_pair = fourth.disagreement_components(p, label, VOID, K, "pair")[(0, "ind")]
    by_label = fourth.disagreement_components(p, label, VOID, K, "label")[(0, "ind")]
    assert sorted(by_pair[2].tolist()) == [200.0, 200.0]
    assert by_label[2].tolist() == [400.0] and by_label[0].tolist() == [0]


def ev(pairs_evidence, n=1000):
    top, cls, e = (np.array(x) for x in zip(*pairs_evidence))
    return Evidence(n, top.astype(np.intp), cls.astype(np.intp), e.astype(float))


def test_relative_weights_put_an_unusually_strong_entry_of_a_common_pair_above_its_usual_size():
    # ten annotations with the usual 100 px confusion (1 labelled, 2 predicted); one with 400 px of it;
    # one with a rare pair (0, 2) of 100 px
    evs = [ev([(1, 2, 100.0)]) for _ in range(10)] + [ev([(1, 2, 400.0)]), ev([(0, 2, 100.0)])]
    rel = fourth.relpair_scores(evs, K, with_log=False)
    # the mean of the pair over the other 11 annotations: 1000 / 11 for the 400 px one, 1300 / 11 for the others
    assert rel[10] == pytest.approx(400 * 400 / (400 + 1000 / 11) / 1000)
    assert rel[0] == pytest.approx(100 * 100 / (100 + 1300 / 11) / 1000)
    assert rel[10] > rel[11] > rel[0]
    ranks = fourth.rank_scores(evs, K)
    assert ranks[10] == pytest.approx(400 / 1000)  # stronger than every other annotation's (1, 2)
    # of the other 11, only the one without the pair is weaker (none counts as 0)
    assert ranks[0] == pytest.approx(100 * (1 / 11) / 1000)
    assert ranks[11] == pytest.approx(100 / 1000)
    freq = fourth.freq_scores(evs, K)
    assert freq[11] == pytest.approx(100 / 1000) and freq[0] == pytest.approx(100 * (1 / 11) / 1000)  # 10 of 11 have it
    # the app's order (queue statistics) is one of the orders, unchanged
    assert fourth.ORDERS["queue"](evs, K) == queue_scores(evs, K)


class FakePredictor:
    """Logits that say which size the model saw: class 1 wins where the input's red channel is high."""

    def __init__(self):
        self.seen = []

    def logits(self, image, names):
        import torch
        self.seen.append(image.shape[:2])
        red = torch.from_numpy(image[..., 0].astype(np.float32) / 255.0)
        return torch.stack([1 - red, red] + [torch.zeros_like(red)] * (len(names) - 2))


def test_scaled_logits_show_the_model_a_smaller_image_and_come_back_at_full_size():
    pytest.importorskip("torch")
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:, 0] = 255
    fake = FakePredictor()
    full = bench._scaled_logits(fake, img, ["a", "b", "c"], 1.0)
    half = bench._scaled_logits(fake, img, ["a", "b", "c"], 0.5)
    assert fake.seen == [(40, 60), (20, 30)]
    assert tuple(full.shape) == tuple(half.shape) == (3, 40, 60)
    assert (half.argmax(0).numpy()[:, 33:] == 1).all() and (half.argmax(0).numpy()[:, :27] == 0).all()


def test_the_weakenings_tried_for_the_proxy():
    img = (np.arange(40 * 60 * 3) % 251).astype(np.uint8).reshape(40, 60, 3)
    assert fourth.perturb(img, "none") is img
    assert fourth.perturb(img, "half").shape == (20, 30, 3)
    dark = fourth.perturb(img, "dark")
    assert dark.shape == img.shape and dark.dtype == np.uint8 and dark.mean() < img.mean()
    assert fourth.perturb(img, "combo").shape == img.shape
    with pytest.raises(ValueError):
        fourth.perturb(img, "sepia")


def test_prefixes_restrict_the_split_to_one_drive_and_key_the_cache(tmp_path, monkeypatch):
    """--prefixes (base A's unseen drive): only those images are predicted, and the drive's
    cache is reused for the drive but not for the whole split; an unknown drive is an error."""
    pytest.importorskip("torch")
    import json

    from PIL import Image

    from models import inference

    data = tmp_path / "data"
    for sub in ("images/train", "labels/train"):
        (data / sub).mkdir(parents=True)
    (data / "classes.json").write_text(json.dumps(
        {"classes": [{"index": i, "name": n} for i, n in enumerate("abc")], "ignore_index": VOID}))
    names = ["0001TP_a", "0001TP_b", "0006R0_a"]
    for i, n in enumerate(names):
        img = np.zeros((40, 60, 3), np.uint8)
        img[:, 30:, 0] = 255 if i != 1 else 0
        Image.fromarray(img).save(data / "images/train" / f"{n}.png")
        Image.fromarray(np.zeros((40, 60), np.uint8)).save(data / "labels/train" / f"{n}.png")
    fake = FakePredictor()
    fake.device_name = "cpu"
    monkeypatch.setattr(inference.Predictor, "load", classmethod(lambda cls, *a, **k: fake))
    cache = tmp_path / "cache.npz"

    _, got, labels, preds, _, _ = bench.predict_split(data, "train", tmp_path, None, 1, cache, ["0001TP"])
    assert got == ["0001TP_a", "0001TP_b"] and len(labels) == len(preds) == 2
    assert (preds[0][:, 33:] == 1).all() and (preds[1] == 0).all()
    seen = len(fake.seen)
    _, again, *_ = bench.predict_split(data, "train", tmp_path, None, 1, cache, ["0001TP"])
    assert again == got and len(fake.seen) == seen            # the drive's cache is reused ...
    _, whole, *_ = bench.predict_split(data, "train", tmp_path, None, 1, cache)
    assert whole == names and len(fake.seen) > seen           # ... but not for the whole split
    with pytest.raises(Exception, match="0009XX"):
        bench.predict_split(data, "train", tmp_path, None, 1, None, ["0009XX"])
