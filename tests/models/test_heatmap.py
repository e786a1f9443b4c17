"""models.heatmap: a word's probability map from cached pixel embeddings equals the
model's own softmax for a class, and a phrase is scored against the label set."""
import numpy as np
import pytest
import torch
from PIL import Image

from models.adapt import embed_image, word_adapter
from models.heatmap import label_set_probabilities, phrase_vector, quantise, word_probability
from models.inference import Predictor
from segui.projects import DEMO_DIR
from tests.conftest import SHIPPED


@pytest.fixture(scope="module")
def shipped_small():
    """The shipped CamVid model and a demo street frame cut down to 96x128 (fast)."""
    predictor = Predictor.load(SHIPPED, "cpu")
    frame = sorted(DEMO_DIR.glob("*.jpg"))[0]
    image = np.asarray(Image.open(frame).convert("RGB").resize((128, 96)))
    return predictor, list(predictor.class_names), image


def test_a_class_map_is_the_models_softmax_for_that_class(shipped_small):
    predictor, names, image = shipped_small
    emb = embed_image(predictor, image, names, with_base_map=False)
    adapter = word_adapter(predictor, names)
    probs = predictor.logits(image, names).softmax(0).numpy()
    for k in (names.index("sky"), names.index("road"), len(names) - 1):
        got = word_probability(emb, adapter, index=k)
        assert got.shape == image.shape[:2] and got.dtype == np.float32
        np.testing.assert_allclose(got, probs[k], atol=2e-3)


def test_the_label_sets_maps_at_once_are_each_classs_map(shipped_small):
    """label_set_probabilities (the Try words view: every word's map from one dot
    product) is word_probability class by class, and the model's own softmax."""
    predictor, names, image = shipped_small
    words = ["sky", "road", "car"]          # a label set of its own: the embeddings are conditioned on it
    emb = embed_image(predictor, image, words, with_base_map=False)
    adapter = word_adapter(predictor, words)
    probs = label_set_probabilities(emb, adapter)
    assert probs.shape == (3, *image.shape[:2]) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    for k in range(3):
        np.testing.assert_allclose(probs[k], word_probability(emb, adapter, index=k), atol=1e-6)
    np.testing.assert_allclose(probs, predictor.logits(image, words).softmax(0).numpy(), atol=2e-3)


def test_a_phrase_is_scored_against_the_label_set(shipped_small):
    predictor, names, image = shipped_small
    emb = embed_image(predictor, image, names, with_base_map=False)
    adapter = word_adapter(predictor, names)
    vec = phrase_vector(predictor, "white van")
    assert vec.shape == (adapter.class_vectors.shape[1],)
    assert abs(float(vec.norm()) - 1) < 1e-4
    got = word_probability(emb, adapter, vector=vec)
    # the same as a label set with the phrase as one more class (cosine logits, softmax)
    low = torch.einsum("ehw,ke->khw", emb.pixels, torch.cat([adapter.class_vectors, vec[None]]))
    low = low * adapter.logit_scale + adapter.logit_bias
    full = torch.nn.functional.interpolate(low[None], size=emb.size, mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(got, full.softmax(0)[-1].numpy(), atol=1e-5)
    assert 0 <= got.min() and got.max() <= 1
    # a class's own name as a "phrase" splits its pixels with the class: at most half
    twin = word_probability(emb, adapter, vector=adapter.class_vectors[names.index("sky")])
    assert twin.max() <= 0.5 + 1e-4


def test_bad_requests_and_quantising(shipped_small):
    predictor, names, image = shipped_small
    emb = embed_image(predictor, image[:32, :32], names, with_base_map=False)
    adapter = word_adapter(predictor, names)
    with pytest.raises(ValueError):
        word_probability(emb, adapter)
    with pytest.raises(IndexError):
        word_probability(emb, adapter, index=len(names))
    assert quantise(np.array([0.0, 0.5, 1.0, 1.2])).tolist() == [0, 128, 255, 255]


def test_normalised_entropy_is_one_for_a_uniform_softmax_and_zero_for_a_one_hot():
    from models.heatmap import normalised_entropy
    uniform = torch.full((5, 3, 4), 0.2)
    np.testing.assert_allclose(normalised_entropy(uniform), 1.0, atol=1e-6)
    one_hot = torch.zeros(5, 3, 4)
    one_hot[2] = 1
    np.testing.assert_allclose(normalised_entropy(one_hot), 0.0, atol=1e-6)
    half = torch.zeros(4, 1, 1)
    half[:2] = 0.5                                   # two of four classes: log 2 / log 4
    assert abs(float(normalised_entropy(half)[0, 0]) - 0.5) < 1e-6
    assert normalised_entropy(torch.ones(1, 2, 2)).tolist() == [[0, 0], [0, 0]]   # one class: sure
    # the fast form from logits: the same numbers, uniform logits 1, a far-ahead class 0
    from models.heatmap import entropy_from_logits
    z = torch.randn(12, 9, 7) * 4
    np.testing.assert_allclose(entropy_from_logits(z), normalised_entropy(z.softmax(0)), atol=1e-5)
    np.testing.assert_allclose(entropy_from_logits(torch.zeros(5, 2, 3)), 1.0, atol=1e-6)
    far = torch.zeros(5, 2, 3)
    far[1] = 100
    np.testing.assert_allclose(entropy_from_logits(far), 0.0, atol=1e-6)


def test_uncertainty_is_the_entropy_of_the_models_softmax(shipped_small):
    from models.heatmap import uncertainty
    predictor, names, image = shipped_small
    emb = embed_image(predictor, image, names, with_base_map=False)
    got = uncertainty(emb, word_adapter(predictor, names))
    assert got.shape == image.shape[:2] and got.dtype == np.float32
    assert 0 <= got.min() and got.max() <= 1
    p = predictor.logits(image, names).softmax(0).double().numpy()
    want = -(p * np.log(np.clip(p, 1e-12, None))).sum(0) / np.log(len(names))
    np.testing.assert_allclose(got, want, atol=1e-2)
    assert abs(float(got.mean()) - float(want.mean())) < 2e-3
