"""models.click_head: the click-conditioned head's contract (shapes, inputs from clicks,
weights as safetensors only), and the shipped weights on a real CamVid image."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.click_head import (DEFAULT_HEAD_DIR, ClickHead, HeadConfig, HeadFeatures, click_discs,
                               head_from_clicks, load_head, similarity_maps)

ROOT = Path(__file__).resolve().parents[2]


def random_inputs(H=37, W=50, E=6, K=3, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    emb = rng.normal(size=(E, (H + 3) // 4, (W + 3) // 4)).astype(np.float32)
    probs = rng.random((K, *emb.shape[1:])).astype(np.float32)
    return image, emb, probs / probs.sum(0, keepdims=True)


def test_output_is_one_logit_per_stride2_cell_for_odd_sizes():
    head = ClickHead(HeadConfig(emb_dim=6, proj=3, fine=4, width=8, dilations=(1, 2))).eval()
    image, emb, probs = random_inputs()
    feat = HeadFeatures(head, image, emb, probs)
    assert feat.size2 == (19, 25)
    lg = feat.logits([(3, 4, True), (40, 30, False)], None)
    assert lg.shape == (19, 25) and torch.isfinite(lg).all()
    m = head_from_clicks(feat, [(3, 4, True)])
    assert m.shape == (37, 50) and m.dtype == bool
    # no positive click: nothing; a click outside the image: refused
    assert not head_from_clicks(feat, [(3, 4, False)]).any()
    with pytest.raises(ValueError, match="outside"):
        head_from_clicks(feat, [(50, 4, True)])
    # the prefix cache: one state per prefix, a replay from it gives the same mask
    states: dict = {}
    a = head_from_clicks(feat, [(3, 4, True), (40, 30, False)], states)
    assert len(states) == 2
    np.testing.assert_array_equal(head_from_clicks(feat, [(3, 4, True), (40, 30, False)], states), a)


def test_the_previous_mask_and_the_clicks_reach_the_output():
    torch.manual_seed(0)
    head = ClickHead(HeadConfig(emb_dim=6, proj=3, fine=4, width=8, dilations=(1,))).eval()
    image, emb, probs = random_inputs()
    feat = HeadFeatures(head, image, emb, probs)
    cl = [(10, 10, True)]
    empty = feat.logits(cl, np.zeros((37, 50), bool))
    full = feat.logits(cl, np.ones((37, 50), bool))
    assert not torch.allclose(empty, full)
    assert not torch.allclose(empty, feat.logits([(10, 10, True), (30, 20, False)], np.zeros((37, 50), bool)))


def test_click_discs_and_similarity_maps():
    d = click_discs([(8, 8, True), (30, 2, False)], (10, 20), 2.0, radius=4.0)
    assert d.shape == (2, 10, 20)
    assert d[0, 4, 4] == 1 and d[0, 4, 8] == 0 and d[1, 4, 4] == 0    # stride-2 cell of (8, 8); radius 2 cells
    assert d[1, 1, 15] == 1 and d[0].sum() == np.count_nonzero(d[0])
    emb = np.zeros((2, 4, 4), np.float32)
    emb[0] = 1.0
    emb[1, :, 2:] = 1.0
    emb[0, :, 2:] = 0.0                           # left half (1, 0), right half (0, 1)
    probs = np.stack([emb[0], emb[1]])
    s = similarity_maps(emb, probs, [(1, 1, True)], (16, 16))   # a click in the left half
    np.testing.assert_allclose(s[0, :, :2], 1.0, atol=1e-6)
    np.testing.assert_allclose(s[0, :, 2:], 0.0, atol=1e-6)
    assert (s[1] == -1).all() and (s[3] == 0).all()             # no negative click
    np.testing.assert_allclose(s[2, :, :2], 1.0, atol=1e-6)
    s2 = similarity_maps(emb, None, [(1, 1, True), (14, 14, False)], (16, 16))
    np.testing.assert_allclose(s2[1, :, 2:], 1.0, atol=1e-6)
    assert (s2[2:] == 0).all()                                  # no class probabilities


def test_weights_are_safetensors_and_load_back_exactly(tmp_path):
    torch.manual_seed(1)
    cfg = HeadConfig(emb_dim=6, proj=3, fine=4, width=8, dilations=(1, 2))
    head = ClickHead(cfg).eval()
    head.save(tmp_path / "h", {"note": "test"})
    raw = (tmp_path / "h" / "model.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])    # safetensors: length + JSON header
    assert "out.weight" in header and not raw.startswith(b"\x80")        # not a pickle
    assert json.loads((tmp_path / "h" / "config.json").read_text())["head"]["dilations"] == [1, 2]
    back = ClickHead.load(tmp_path / "h")
    image, emb, probs = random_inputs()
    a = HeadFeatures(head, image, emb, probs).logits([(5, 5, True)], None)
    b = HeadFeatures(back, image, emb, probs).logits([(5, 5, True)], None)
    torch.testing.assert_close(a, b)
    # a pickle beside the config is not a head
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "config.json").write_text((tmp_path / "h" / "config.json").read_text())
    torch.save(head.state_dict(), tmp_path / "p" / "model.pt")
    with pytest.raises(FileNotFoundError):
        ClickHead.load(tmp_path / "p")
    assert load_head(tmp_path / "p") is None and load_head(tmp_path / "nothing") is None


@pytest.fixture(scope="module")
def demo_features():
    """The shipped head on a demo CamVid image with the shipped model's embeddings."""
    from models.adapt import embed_image, word_adapter
    from models.click_object import ObjectFeatures
    from models.inference import Predictor

    head = load_head()
    assert head is not None, f"the trained head is missing from {DEFAULT_HEAD_DIR}"
    meta = json.loads((ROOT / "segui" / "demo" / "classes.json").read_text())
    names = [c["name"] if isinstance(c, dict) else c for c in meta["classes"]]
    image = np.asarray(Image.open(ROOT / "segui" / "demo" / "0016E5_07959.jpg").convert("RGB"))
    pred = Predictor.load(device="cpu")
    grow = ObjectFeatures.from_embeddings(embed_image(pred, image, names, with_base_map=False),
                                          word_adapter(pred, names))
    return HeadFeatures(head, image, grow.grid.reshape(grow.e, grow.h, grow.w),
                        grow.probs.reshape(-1, grow.h, grow.w)), image


def test_the_shipped_head_keeps_clicked_pixels_on_their_side(demo_features):
    feat, image = demo_features
    H, W = image.shape[:2]
    x, y = W // 2, H - 20                       # the road, bottom centre
    m = head_from_clicks(feat, [(x, y, True)])
    assert m[y, x] and 0.05 * H * W < m.sum() < 0.7 * H * W
    assert not m[:20].any()                     # not the sky
    from scipy import ndimage
    deep = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1] >= 8   # well inside the mask
    ys, xs = np.nonzero(deep)
    k = int(np.argmax(np.abs(xs - x)))          # of those, the farthest from the click sideways
    m2 = head_from_clicks(feat, [(x, y, True), (int(xs[k]), int(ys[k]), False)])
    assert m2[y, x] and not m2[ys[k], xs[k]] and m2.sum() < m.sum()
