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


def test_loading_bert_draws_no_progress_bar_and_leaves_the_setting(capfd, monkeypatch):
    from transformers.utils import logging as hf_logging

    from models import text_encoder

    monkeypatch.setenv(text_encoder.SENTENCE_CACHE_ENV, "off")
    for enabled in (True, False):
        monkeypatch.setattr(text_encoder, "_SHARED", {})    # a new process: BERT is loaded again
        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
        embedder = SentenceEmbedder(TextEncoderConfig())
        embedder(["road"])
        assert embedder._bert().model is not None
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.is_progress_bar_enabled() == enabled
    hf_logging.enable_progress_bar()


def _fresh_process(monkeypatch, cache_dir):
    """This process as a new one would see it: no BERT loaded, no vectors in memory."""
    from models import text_encoder

    monkeypatch.setattr(text_encoder, "_SHARED", {})
    monkeypatch.setenv(text_encoder.SENTENCE_CACHE_ENV, str(cache_dir))


def test_sentence_vectors_kept_on_disk_spare_the_next_process_bert(monkeypatch, tmp_path):
    _fresh_process(monkeypatch, tmp_path)
    first = SentenceEmbedder(TextEncoderConfig())
    road = first(["a photo of a road.", "zebra crossing"])
    files = list(tmp_path.glob("*.safetensors"))
    assert [f.stem for f in files] == [first.identity]

    _fresh_process(monkeypatch, tmp_path)
    second = SentenceEmbedder(TextEncoderConfig())
    assert torch.equal(second(["zebra crossing", "a photo of a road."]), road.flip(0))
    assert second._bert().model is None        # read from the file: BERT never loaded
    second(["lamp post"])                      # a new sentence: BERT, and the file grows
    assert second._bert().model is not None
    from models.text_encoder import read_sentence_file
    assert set(read_sentence_file(files[0])[0]) == {"a photo of a road.", "zebra crossing", "lamp post"}


def test_the_disk_cache_is_bounded_and_skips_a_sentence_with_a_line_break(monkeypatch, tmp_path):
    from models import text_encoder
    from models.text_encoder import read_sentence_file

    monkeypatch.setattr(text_encoder, "MAX_SENTENCES_ON_DISK", 3)
    _fresh_process(monkeypatch, tmp_path)
    SentenceEmbedder(TextEncoderConfig())(["road", "sky", "car"])
    _fresh_process(monkeypatch, tmp_path)
    embedder = SentenceEmbedder(TextEncoderConfig())
    embedder(["tree", "two\nlines"])
    assert embedder(["two\nlines"]).shape == (1, 384)           # served from memory all the same
    kept, _ = read_sentence_file(tmp_path / f"{embedder.identity}.safetensors")
    assert "tree" in kept and "two\nlines" not in kept and len(kept) == 3   # the newest first, then 2 of 3 others


def test_vectors_another_bert_made_or_a_damaged_file_are_not_used(monkeypatch, tmp_path):
    from models.text_encoder import write_sentence_file

    _fresh_process(monkeypatch, tmp_path)
    truth = SentenceEmbedder(TextEncoderConfig())(["road"])[0]
    identity = SentenceEmbedder(TextEncoderConfig()).identity
    (tmp_path / f"{identity}.safetensors").write_bytes(b"not a safetensors file")
    other = tmp_path / "other" / "sentences.safetensors"
    other.parent.mkdir()
    write_sentence_file(other, {"road": torch.zeros(384)}, identity="another BERT")

    _fresh_process(monkeypatch, tmp_path)
    embedder = SentenceEmbedder(TextEncoderConfig())
    embedder.add_vector_file(other)
    assert torch.allclose(embedder(["road"])[0], truth, atol=1e-6)
    assert embedder._bert().model is not None   # neither file was trusted: BERT ran


def test_the_identity_is_the_berts_files_not_its_path(tmp_path):
    from models.text_encoder import bert_identity, default_bert_path

    src = default_bert_path()
    for f in src.iterdir():
        if f.is_file():
            (tmp_path / f.name).symlink_to(f)
    assert bert_identity(tmp_path, 32) == bert_identity(src, 32)
    assert bert_identity(src, 16) != bert_identity(src, 32)
    (tmp_path / "vocab.txt").unlink()
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert bert_identity(tmp_path, 32) != bert_identity(src, 32)


def test_the_shipped_models_words_need_no_bert(monkeypatch, tmp_path):
    """weights/camvid carries its words' vectors, made by this BERT (after a dependency
    bump the id differs: the message says how to rewrite it) and equal to its own."""
    from models.segmenter import Segmenter
    from models.text_encoder import read_sentence_file

    from tests.conftest import SHIPPED

    vectors, made_by = read_sentence_file(SHIPPED / "sentences.safetensors")
    _fresh_process(monkeypatch, tmp_path)
    model = Segmenter.from_pretrained(SHIPPED)
    assert made_by == model.text_encoder.embedder.identity, (
        "weights/camvid/sentences.safetensors was made by another BERT or release: rewrite it with "
        "python -c \"from models.segmenter import Segmenter; m = Segmenter.from_pretrained('weights/camvid'); "
        "m.class_embeddings(); m.text_encoder.save_vectors('weights/camvid/sentences.safetensors', m.config.class_names)\"")
    emb = model.class_embeddings()
    assert emb.shape[0] == len(model.config.class_names)
    assert model.text_encoder.embedder._bert().model is None
    fresh = SentenceEmbedder(TextEncoderConfig())
    fresh.cache.clear()
    monkeypatch.setattr("models.text_encoder._SHARED", {})
    monkeypatch.setenv("SEGSTUDIO_SENTENCE_CACHE", "off")
    names = sorted(vectors)
    assert torch.allclose(fresh(names), torch.stack([vectors[n] for n in names]), atol=1e-5)


def test_a_saved_model_folder_carries_its_words(monkeypatch, tmp_path):
    from models.segmenter import Segmenter
    from models.text_encoder import SENTENCES_NAME, read_sentence_file

    from tests.conftest import SHIPPED

    model = Segmenter.from_pretrained(SHIPPED)
    model.config.class_names = ["road", "zebra crossing"]
    model.class_embeddings()
    model.save_pretrained(tmp_path / "v2")
    vectors, _ = read_sentence_file(tmp_path / "v2" / SENTENCES_NAME)
    assert set(vectors) == {t.format(w) for w in ("road", "zebra crossing") for t in model.text_encoder.config.templates}
