"""The pretrained parts are really loaded: ImageNet CNN and BERT."""
import torch
import torch.nn.functional as F
from skimage import data

from models.image_encoder import EfficientNetLite0
from models.text_encoder import SentenceEmbedder, TextEncoderConfig


def test_imagenet_weights_classify_chelsea_as_a_cat():
    enc = EfficientNetLite0().eval()
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        cls = enc.classify(enc.normalize(img)).argmax(1).item()
    assert 281 <= cls <= 285, f"ImageNet class {cls} is not a cat: the weights did not load"


def test_encoder_declares_its_scales():
    enc = EfficientNetLite0(None)
    with torch.no_grad():
        feats = enc.eval()(torch.rand(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == enc.out_channels == [24, 40, 112, 320]
    assert [f.shape[-1] for f in feats] == [96 // s for s in enc.strides]


def test_bert_puts_car_nearer_automobile_than_sky():
    emb = SentenceEmbedder(TextEncoderConfig())
    car, auto, sky = emb(["car", "automobile", "sky"])
    assert torch.dot(car, auto) > torch.dot(car, sky) + 0.1
    assert torch.allclose(emb(["car"])[0], car)  # served from the cache
    assert "car" in emb.cache


def test_any_local_bert_folder_can_be_chosen(tmp_path):
    from models.text_encoder import default_bert_path
    chosen = SentenceEmbedder(TextEncoderConfig(model_path=str(default_bert_path())))
    assert torch.allclose(chosen(["road"]), SentenceEmbedder(TextEncoderConfig())(["road"]), atol=1e-6)
    missing = SentenceEmbedder(TextEncoderConfig(model_path=str(tmp_path)))
    import pytest
    with pytest.raises(FileNotFoundError, match="no transformers model"):
        missing(["road"])


def test_loading_bert_draws_no_progress_bar_and_leaves_the_setting(capfd):
    from transformers.utils import logging as hf_logging

    for enabled in (True, False):
        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
        SentenceEmbedder(TextEncoderConfig())(["road"])
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.is_progress_bar_enabled() == enabled
    hf_logging.enable_progress_bar()
