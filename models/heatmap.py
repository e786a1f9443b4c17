"""Word heatmaps: the model's probability map for any word or phrase over one image.

The model scores a pixel against a class by ``exp(logit_scale) * cos(pixel, class
vector) + bias``. Once an image's pixel embeddings are known
(:func:`models.adapt.embed_image`, one forward pass), the map of a word costs one
text encoding and a dot product: :func:`word_probability`.

A word of the label set gets its softmax probability among the label set (what the
model's own logits give); a phrase outside it is shown *against* the label set: the
softmax over the label set's classes plus the phrase, the phrase's share. The pixel
embeddings stay those of the label set (the decoder is conditioned on it), so the
map is what the labeller's model sees with its label set, asked one more word.

The uncertainty map (:func:`uncertainty`) comes from the same embeddings: the
normalised entropy of the softmax over the label set, ``-sum p log p / log K`` in
[0, 1] (0: one class has it all, 1: all K equally likely). Entropy rather than
1 - margin because it sees every class, not only the best two: a pixel torn
between three classes reads hotter than one torn between two.
"""
from __future__ import annotations

import numpy as np
import torch

from .adapt import Adapter, PixelEmbeddings


@torch.inference_mode()
def phrase_vector(predictor, phrase: str) -> torch.Tensor:
    """(E,) the model's unit class vector for ``phrase`` (one BERT pass over its
    template sentences, then the projection), float32 on CPU."""
    model = predictor.model
    bert = model.text_encoder.embedder(model.text_encoder.sentences(phrase)).mean(0, keepdim=True)
    return model.text_encoder(bert.to(next(model.text_encoder.parameters()).device).float())[0].float().cpu()


@torch.inference_mode()
def word_probability(emb: PixelEmbeddings, adapter: Adapter, index: int | None = None,
                     vector: torch.Tensor | None = None) -> np.ndarray:
    """(H, W) float32 in [0, 1] at ``emb.size``: the softmax probability of class
    ``index`` of ``adapter``'s label set, or of an extra class with unit ``vector``
    (bias 0 on top of the model's) competing with the whole label set."""
    if (index is None) == (vector is None):
        raise ValueError("give either a class index or a phrase vector")
    ad = adapter
    if vector is not None:
        ad = Adapter(adapter.class_names + ["\x00phrase"], torch.cat([adapter.class_vectors, vector.view(1, -1)]),
                     torch.cat([adapter.biases, torch.zeros(1)]), adapter.logit_scale, adapter.logit_bias)
        index = len(adapter.class_names)
    elif not 0 <= index < len(adapter.class_names):
        raise IndexError(f"class index {index} outside the label set of {len(adapter.class_names)}")
    return ad.logits(emb).softmax(0)[index].numpy().astype(np.float32)


@torch.inference_mode()
def label_set_probabilities(emb: PixelEmbeddings, adapter: Adapter) -> np.ndarray:
    """(K, H, W) float32 at ``emb.size``: the softmax over ``adapter``'s label set, every
    class's map from one dot product (what :func:`word_probability` gives class by class)."""
    return adapter.logits(emb).softmax(0).numpy().astype(np.float32)


def normalised_entropy(probs: torch.Tensor) -> np.ndarray:
    """(K, H, W) softmax probabilities -> (H, W) float32 entropy / log K in [0, 1]."""
    k = probs.shape[0]
    if k < 2:
        return np.zeros(tuple(probs.shape[1:]), np.float32)
    p = probs.float()
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum(0) / float(np.log(k))
    return ent.clamp(0, 1).numpy().astype(np.float32)


@torch.inference_mode()
def entropy_from_logits(logits: torch.Tensor) -> np.ndarray:
    """(K, H, W) logits -> (H, W) float32 normalised entropy of their softmax, as
    ``logsumexp(z) - sum(softmax(z) * z)`` (no log of tiny probabilities; 2-5x
    faster than :func:`normalised_entropy` of the softmax on a 480x360 map)."""
    k = logits.shape[0]
    if k < 2:
        return np.zeros(tuple(logits.shape[1:]), np.float32)
    z = logits.float()
    ent = torch.logsumexp(z, 0) - torch.einsum("khw,khw->hw", z.softmax(0), z)
    return (ent / float(np.log(k))).clamp_(0, 1).numpy().astype(np.float32)


@torch.inference_mode()
def uncertainty(emb: PixelEmbeddings, adapter: Adapter) -> np.ndarray:
    """(H, W) float32 in [0, 1] at ``emb.size``: the normalised entropy of the
    model's softmax over ``adapter``'s label set (a dot product, no forward pass)."""
    return entropy_from_logits(adapter.logits(emb))


def quantise(prob: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 0..255 (the colour bar's scale stays 0..1)."""
    return np.clip(np.rint(np.asarray(prob, np.float32) * 255.0), 0, 255).astype(np.uint8)
