"""models.adapt: instant adaptation of class vectors and biases on cached pixel embeddings."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.adapt import (
    AdaptSettings, Adapter, InstantAdaptation, embed_image, fit_adapter, sample_examples, word_adapter,
)
from models.decoder import DecoderConfig
from models.image_encoder import ImageEncoderConfig
from models.inference import Predictor
from models.segmenter import Segmenter, SegmenterConfig
from tests.conftest import SHIPPED
from tests.toy import synthetic

TOY_NAMES = ["red paint", "blue paint"]


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    cfg = SegmenterConfig(image_encoder=ImageEncoderConfig(pretrained=False),
                          decoder=DecoderConfig(channels=32, embed_dim=32, attn_dim=16),
                          class_names=TOY_NAMES, ignore_index=255)
    return Predictor(Segmenter(cfg), "cpu")


@pytest.fixture(scope="module")
def shipped_pairs(camvid):
    """The shipped model and 2 CamVid val frames it never saw, cut to 192x256 (fast)."""
    from benchmarks.bench_loop import read_pairs
    from models.data import list_pairs, read_classes

    labels = read_classes(camvid)
    pairs = read_pairs(list_pairs(camvid, "val")[:2])
    crops = [(img[120:312, 100:356], lbl[120:312, 100:356]) for _, _, img, lbl in pairs]
    return Predictor.load(SHIPPED, "cpu"), labels.names, labels.ignore_index, crops


def n_wrong(pred, truth, ignore):
    keep = truth != ignore
    return int((pred[keep] != truth[keep]).sum())


def test_no_examples_gives_the_word_vectors_and_the_base_prediction(shipped_pairs):
    predictor, names, ignore, crops = shipped_pairs
    base = word_adapter(predictor, names)
    fitted = fit_adapter(base, [], AdaptSettings())
    assert torch.equal(fitted.class_vectors, base.class_vectors)
    assert torch.equal(fitted.biases, torch.zeros(len(names)))
    session = InstantAdaptation(predictor, names, ignore)
    session.update()  # nothing corrected yet
    img = crops[0][0]
    ours, theirs = session.predict(img), predictor.predict(img, names)
    assert ours.class_map.shape == theirs.class_map.shape == img.shape[:2]
    same = ours.class_map == theirs.class_map
    assert same.mean() > 0.999  # both refined along the image's edges (models.refine); near-ties may flip
    assert np.abs(ours.confidence[same] - theirs.confidence[same]).max() < 1e-3
    assert ours.uncertainty == pytest.approx(theirs.uncertainty, abs=1e-4)


def test_fitting_on_an_image_cuts_its_wrong_pixels_shipped_model(shipped_pairs):
    predictor, names, ignore, crops = shipped_pairs
    session = InstantAdaptation(predictor, names, ignore, AdaptSettings(l2=0.01, steps=60, lr=0.05))
    embs = [session.embed(img) for img, _ in crops]
    base_wrong = sum(n_wrong(e.base_map, lbl, ignore) for e, (_, lbl) in zip(embs, crops))
    assert base_wrong > 0
    for i, (e, (_, lbl)) in enumerate(zip(embs, crops)):
        session.add(i, e, lbl)
    adapter = session.update()
    assert adapter.images == 2
    after = sum(n_wrong(session.predict(e).class_map, lbl, ignore) for e, (_, lbl) in zip(embs, crops))
    assert after < 0.9 * base_wrong
    assert session.last_update_seconds > 0  # recorded; its speed is a benchmark (bench_instant), not a test


def test_fitting_learns_a_toy_label_set_whose_names_mislead(shipped_pairs):
    """Red areas named "blue", blue areas named "red": the word vectors point the wrong
    way, and two corrected images turn them round (a third, never added, follows)."""
    predictor = shipped_pairs[0]
    names = ["blue paint", "red paint"]  # class 0 is the red part of the toy images
    rng = np.random.default_rng(0)
    images = [synthetic(rng, h=64, w=96) for _ in range(3)]
    session = InstantAdaptation(predictor, names, 255, AdaptSettings(l2=0.0, steps=80, lr=0.1, balance=1.0))
    embs = [session.embed(img) for img, _ in images]
    base_wrong = sum(n_wrong(e.base_map, lbl, 255) for e, (_, lbl) in zip(embs, images))
    for i, (e, (_, lbl)) in enumerate(zip(embs[:2], images[:2])):
        session.add(i, e, lbl)
    session.update()
    after = sum(n_wrong(session.predict(e).class_map, lbl, 255) for e, (_, lbl) in zip(embs, images))
    assert base_wrong > 0.3 * sum(lbl.size for _, lbl in images)
    assert after < 0.2 * base_wrong


def test_sampled_embeddings_give_exactly_the_upsampled_logits(toy):
    img, lbl = synthetic(np.random.default_rng(1), h=37, w=53)  # odd size: not a multiple of the stride
    emb = embed_image(toy, img, TOY_NAMES)
    base = word_adapter(toy, TOY_NAMES)
    ex = sample_examples(emb, lbl, 2, 255, AdaptSettings(pixels_per_class=10**6, balance=0.0, hard_fraction=0.0))
    assert len(ex.labels) == lbl.size
    logits = base.logits(emb)  # (K, H, W)
    from_samples = ex.embeddings.float() @ base.class_vectors.T * base.logit_scale + base.logit_bias
    # examples are grouped by class: compare with the full map in the same order
    order = np.concatenate([np.flatnonzero(lbl.ravel() == c) for c in (0, 1)])
    expected = logits.flatten(1).T[torch.from_numpy(order)]
    assert torch.allclose(from_samples, expected, atol=0.05)  # float16 storage


def test_an_enlarged_input_gives_a_finer_grid_over_the_same_image(toy):
    img, lbl = synthetic(np.random.default_rng(2), h=40, w=64)
    one, two = embed_image(toy, img, TOY_NAMES), embed_image(toy, img, TOY_NAMES, scale=2.0)
    assert one.size == two.size == (40, 64) and two.base_map.shape == (40, 64)
    assert tuple(one.pixels.shape[1:]) == (10, 16) and tuple(two.pixels.shape[1:]) == (20, 32)
    ex = sample_examples(two, lbl, 2, 255)             # sampled at the image's own pixels
    assert 0 < len(ex.labels) <= lbl.size
    with pytest.raises(ValueError, match="scale must be between"):
        embed_image(toy, img, TOY_NAMES, scale=10)


def test_a_predictor_that_enlarges_its_input_predicts_at_the_images_size(toy):
    """Predictor(input_scale=1.5) (the app's --predict-scale): the network sees the image
    enlarged, the logits come back at the image's size, and embed_image follows the
    predictor's scale so the instant layer's maps are the same predictions."""
    from models.inference import MAX_SCALED_PIXELS, effective_scale

    img, _ = synthetic(np.random.default_rng(3), h=40, w=64)
    big = Predictor(toy.trainable, "cpu", input_scale=1.5)
    one, enlarged = toy.logits(img, TOY_NAMES), big.logits(img, TOY_NAMES)
    assert tuple(one.shape) == tuple(enlarged.shape) == (2, 40, 64)
    assert not torch.allclose(one, enlarged, atol=1e-3)          # the network saw something else
    assert big.predict(img, TOY_NAMES).class_map.shape == (40, 64)
    emb = embed_image(big, img, TOY_NAMES)                        # no scale given: the predictor's
    assert tuple(emb.pixels.shape[1:]) == (15, 24) and emb.size == (40, 64)
    assert torch.allclose(word_adapter(big, TOY_NAMES).logits(emb), enlarged, atol=1e-4)
    # an enlargement stops at MAX_SCALED_PIXELS (never below 1); a reduction is kept
    assert effective_scale(1.5, 360, 480) == 1.5
    assert effective_scale(1.5, 2000, 2000) == 1.0 and effective_scale(0.5, 2000, 2000) == 0.5
    assert effective_scale(0.25, 40, 64) == pytest.approx(0.8) and effective_scale(0.5, 20, 20) == 1.0
    assert 1.0 < effective_scale(4.0, 1000, 1000) == pytest.approx((MAX_SCALED_PIXELS / 1e6) ** 0.5)
    with pytest.raises(ValueError, match="input scale must be between"):
        Predictor(toy.trainable, "cpu", input_scale=0)


def test_a_predictor_that_also_sees_the_mirror_gives_the_instant_layer_its_embeddings(toy):
    """Predictor(flip=True) (the app's --predict-flip): embed_image averages the mirrored
    view in as the predictor's logits do, so the instant layer's un-tuned maps are the
    predictor's own maps and a fitted layer starts from them."""
    img, lbl = synthetic(np.random.default_rng(4), h=40, w=64)
    both = Predictor(toy.trainable, "cpu", flip=True)
    emb = embed_image(both, img, TOY_NAMES)
    assert torch.allclose(word_adapter(both, TOY_NAMES).logits(emb), both.logits(img, TOY_NAMES), atol=1e-4)
    one = embed_image(toy, img, TOY_NAMES).pixels
    assert float((one - emb.pixels).abs().max()) > 1e-5          # the mirrored view was averaged in
    # a caller may ask for one view whatever the predictor does (the O tool, whose settings were chosen on one)
    assert torch.equal(embed_image(both, img, TOY_NAMES, flip=False).pixels, one)
    # the mean of two unit vectors: never longer than 1 (shorter where the views disagree)
    assert float(emb.pixels.norm(dim=0).max()) <= 1.0 + 1e-5


def test_examples_are_bounded_per_class_skip_void_and_stand_for_the_image(toy):
    img, lbl = synthetic(np.random.default_rng(2))
    lbl = lbl.copy()
    lbl[:5] = 255  # void rows
    emb = embed_image(toy, img, TOY_NAMES)
    s = AdaptSettings(pixels_per_class=50, balance=0.0, hard_fraction=0.5)
    ex = sample_examples(emb, lbl, 2, 255, s)
    counts = torch.bincount(ex.labels, minlength=2)
    assert counts.tolist() == [50, 50]
    assert float(ex.weights.sum()) == pytest.approx(float((lbl != 255).sum()), rel=1e-4)
    empty = sample_examples(emb, np.full_like(lbl, 255), 2, 255, s)
    assert len(empty.labels) == 0 and fit_adapter(word_adapter(toy, TOY_NAMES), [empty]).images == 0


def test_adapter_round_trips_through_dict_json_and_safetensors(toy, tmp_path):
    from safetensors.torch import load_file, save_file

    base = word_adapter(toy, TOY_NAMES)
    a = Adapter(TOY_NAMES, F.normalize(torch.randn(2, 32), dim=-1), torch.tensor([0.5, -0.25]),
                base.logit_scale, base.logit_bias, images=3, settings=AdaptSettings().to_dict())
    b = Adapter.from_dict(json.loads(json.dumps(a.to_dict())))
    assert b.class_names == a.class_names and b.images == 3 and b.settings == a.settings
    assert torch.allclose(b.class_vectors, a.class_vectors) and torch.equal(b.biases, a.biases)
    tensors, meta = a.to_tensors()
    save_file(tensors, str(tmp_path / "adapter.safetensors"), metadata=meta)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "adapter.safetensors"), framework="pt") as f:
        meta_back = f.metadata()
    c = Adapter.from_tensors(load_file(str(tmp_path / "adapter.safetensors")), meta_back)
    assert torch.equal(c.class_vectors, a.class_vectors) and c.logit_scale == a.logit_scale
    with pytest.raises(ValueError):
        Adapter.from_dict({**a.to_dict(), "format": "pickle"})
    with pytest.raises(ValueError):
        Adapter.from_dict({**a.to_dict(), "biases": [0.0]})


def test_session_replaces_a_resubmitted_image_and_drops_the_oldest(toy):
    rng = np.random.default_rng(3)
    session = InstantAdaptation(toy, TOY_NAMES, 255, AdaptSettings(max_images=2))
    imgs = [synthetic(rng) for _ in range(3)]
    for key, (img, lbl) in zip("aab", imgs):
        session.add(key, img, lbl)
    assert list(session.examples) == ["a", "b"]
    session.add("c", *imgs[0])
    assert list(session.examples) == ["b", "c"]
    session.remove("b")
    assert session.update().images == 1


def test_keep_gate_keeps_the_base_class_where_the_base_was_sure_and_round_trips(toy):
    rng = np.random.default_rng(4)
    img, lbl = synthetic(rng)
    emb = embed_image(toy, img, TOY_NAMES)
    base = word_adapter(toy, TOY_NAMES)
    top, idx = base.logits(emb).softmax(0).max(0)
    keep = float(top.median())                                         # (an untrained toy is never very sure)
    sure = (top >= keep).numpy()
    assert 0 < sure.mean() < 1                                        # both kinds of pixel are there
    flipped = np.where(emb.base_map == 0, 1, 0).astype(np.uint8)   # every pixel against the base
    ex = sample_examples(emb, flipped, 2, 255, AdaptSettings())
    free = fit_adapter(base, [ex], AdaptSettings(steps=80, lr=0.1, l2=0.0))
    gated = fit_adapter(base, [ex], AdaptSettings(steps=80, lr=0.1, l2=0.0, keep=keep))
    assert free.keep == 0 and gated.keep == keep
    unfree = free.predict(emb).class_map
    assert (unfree[sure] != idx.numpy()[sure]).any()                   # the adapter alone moves sure pixels
    got = gated.predict(emb).class_map
    np.testing.assert_array_equal(got, np.where(sure, idx.numpy(), unfree))
    back = Adapter.from_dict(json.loads(json.dumps(gated.to_dict())))
    assert back.keep == keep
    np.testing.assert_array_equal(back.predict(emb).class_map, got)
