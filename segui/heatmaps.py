"""Word heatmaps on the Label screen: the active model's probability map for a typed
word or a class, as a heat overlay over the photo.

:class:`HeatmapMixin` is the part of :class:`segui.handlers.Studio` that keeps the
pixel embeddings of the last few images (per image, model version and label set: one
forward pass each) and the label sets' class vectors, so that a new word costs one
text encoding and a dot product (``models.heatmap``). A class of the project's label
set is its softmax probability among the label set; any other phrase is shown against
the label set (softmax over the classes plus the phrase, the phrase's share).

The uncertainty map (``U``) is the normalised entropy of the same softmax over the
label set, from the same cached embeddings (no forward pass when the image is cached).
"""
from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from models.heatmap import quantise, uncertainty, word_probability

from .errors import UserError

HEAT_IMAGES = 4            # images whose pixel embeddings are kept (an LRU)
HEAT_PHRASES = 64          # typed phrases whose vectors are kept (an LRU)
PHRASE_MAX_CHARS = 80


def clean_phrase(phrase) -> str:
    """The phrase as the model will read it, or UserError."""
    text = " ".join(str(phrase or "").split())
    if not text:
        raise UserError("type a word or phrase to see its map, e.g. 'sky'")
    if len(text) > PHRASE_MAX_CHARS:
        raise UserError(f"a phrase for the heatmap has at most {PHRASE_MAX_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UserError("the phrase has control characters")
    return text


class HeatmapMixin:
    """Studio's word heatmaps (caches made on first use)."""

    def _heat_caches(self):
        with self._cache_lock:
            if not hasattr(self, "_heat_emb"):
                self._heat_emb: OrderedDict = OrderedDict()       # (image, version, names) -> PixelEmbeddings
                self._heat_words: OrderedDict = OrderedDict()     # (weights, names) / (weights, phrase) -> vectors
                self.heat_stats = {"embed_hits": 0, "embed_misses": 0}
            return self._heat_emb, self._heat_words

    def _heat_lookup(self, cache: OrderedDict, key, make, size: int):
        with self._cache_lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key], True
        with self._once(("heat",) + key):     # one computation per key, even when asked twice at once
            with self._cache_lock:
                if key in cache:
                    return cache[key], True
            value = make()
            with self._cache_lock:
                cache[key] = value
                cache.move_to_end(key)
                while len(cache) > size:
                    cache.popitem(last=False)
        return value, False

    def _heat_inputs(self, image_id: int):
        """(image info, active model version, class names, the image's PixelEmbeddings,
        the label set's Adapter, whether the embeddings were cached): what every map
        of the image needs, one forward pass per image, model version and label set."""
        info = self.store.get_image(int(image_id))
        p = self.store.get_project(info.project_id)
        if not p.classes:
            raise UserError("this project has no classes yet: add some on the Projects screen")
        mv = self.model_version(p.id)
        names = list(p.class_names)
        emb_cache, word_cache = self._heat_caches()

        def embed():
            from models.adapt import PixelEmbeddings

            image = self.store.load_image(info.id)
            e = self.predictors.embed(mv.weights_dir, image, names)   # at predict_size
            return PixelEmbeddings(e.pixels, tuple(image.shape[:2]))    # maps come back at the image's size

        emb, hit = self._heat_lookup(emb_cache, (info.id, mv.id, tuple(names)), embed, HEAT_IMAGES)
        with self._cache_lock:
            self.heat_stats["embed_hits" if hit else "embed_misses"] += 1
        adapter, _ = self._heat_lookup(word_cache, ("set", mv.weights_dir, tuple(names)),
                                       lambda: self.predictors.word_vectors(mv.weights_dir, names),
                                       HEAT_PHRASES + 8)
        return info, mv, names, emb, adapter, hit

    def heatmap(self, image_id: int, phrase: str) -> dict:
        """The map of ``phrase`` over image ``image_id`` with the project's active model:
        ``{"map": (H, W) uint8 (probability * 255), "phrase", "class" (the class it
        is, or None), "min", "max" (probabilities), "cached" (the image's embeddings
        were ready), "ms"}``."""
        t0 = time.perf_counter()
        text = clean_phrase(phrase)
        info, mv, names, emb, adapter, hit = self._heat_inputs(image_id)
        _, word_cache = self._heat_caches()
        same = [k for k, n in enumerate(names) if n.casefold() == text.casefold()]
        if same:
            prob = word_probability(emb, adapter, index=same[0])
        else:
            vec, _ = self._heat_lookup(word_cache, ("phrase", mv.weights_dir, text),
                                       lambda: self.predictors.phrase_vector(mv.weights_dir, text), HEAT_PHRASES + 8)
            prob = word_probability(emb, adapter, vector=vec)
        return {"map": quantise(prob), "phrase": text, "class": names[same[0]] if same else None,
                "min": float(prob.min()), "max": float(prob.max()), "cached": hit,
                "ms": round(1000 * (time.perf_counter() - t0), 1)}

    def word_heatmap(self, image_id: int, phrase: str) -> np.ndarray:
        """(H, W) uint8 0..255 at the image's size: the probability of ``phrase`` under
        the active model, against the project's label set."""
        return self.heatmap(image_id, phrase)["map"]

    def uncertainty_map(self, image_id: int) -> dict:
        """The active model's per-pixel uncertainty over image ``image_id``: the
        normalised entropy of its softmax over the project's label set (0 sure .. 1 all
        classes alike), ``{"map": (H, W) uint8 (entropy * 255), "mean", "max", "cached"
        (the image's embeddings were ready: no forward pass), "ms"}``."""
        t0 = time.perf_counter()
        info, mv, names, emb, adapter, hit = self._heat_inputs(image_id)
        u = uncertainty(emb, adapter)
        return {"map": quantise(u), "mean": float(u.mean()), "max": float(u.max()), "cached": hit,
                "ms": round(1000 * (time.perf_counter() - t0), 1)}
