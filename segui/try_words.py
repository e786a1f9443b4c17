"""The demo's *Try words* view: any image, any words, no project.

:class:`TryWordsMixin` is the part of :class:`segui.handlers.Studio` behind it. An
image dropped on the page is read with a cap on its bytes and decoded by the one
image decoder (``common.images.decode_image``), its width x height checked against
``common.limits.MAX_IMAGE_MEGAPIXELS`` from the header before any pixel is decoded;
a big photo is then scaled down to :data:`TRY_MAX_SIDE` on its long side (what a
projector shows; the model predicts at most ``PREDICT_MAX_PIXELS`` anyway).

The typed words are the label set: the network's pixel embeddings are conditioned on
them (one forward pass per image and word set, cached like the Label screen's:
``segui.heatmaps``), each word's map is its softmax probability among the words
(``models.heatmap.word_probability``), and the segmentation is the argmax, what the
model would predict for a project with those classes. Every pixel goes to one of the
words (a catch-all such as "background" gives the rest somewhere to go), unless the view's
*leave the rest out* is ticked: then the model is also asked for hidden scene words
(``models.open_set``, as a project's *pixels that are none of these classes*) and what they
win is none of the typed words.

The model is the app's default one (``--model``, else the shipped weights).
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from common import limits
from common.colors import default_colors
from common.images import InvalidImageError, decode_image
from common.labels import LabelSetError, validate_class_names
from models.heatmap import label_set_probabilities, quantise

from .errors import UserError
from .heatmaps import HEAT_IMAGES
from .uploads import read_capped

TRY_MAX_WORDS = 8          # small multiples on one screen
TRY_MAX_SIDE = 1024        # px: a bigger image is scaled down to this long side before anything else
TRY_MAX_CHARS = 400        # the typed text as a whole
TRY_CACHED = 2 * HEAT_IMAGES   # image embeddings and word vectors kept (an LRU of both)
TRY_DEMO_IMAGE = "0016E5_08009.jpg"     # in segui/demo/
TRY_DEMO_WORDS = "sky, road, building, tree, car"


def parse_words(text) -> list[str]:
    """Comma-separated words (or phrases) -> the label set they make, or UserError."""
    raw = str(text or "")
    if len(raw) > TRY_MAX_CHARS:
        raise UserError(f"type at most {TRY_MAX_CHARS} characters of words")
    words = [w for w in (" ".join(p.split()) for p in raw.replace("\n", ",").split(",")) if w]
    if not words:
        raise UserError("type some words, separated by commas, e.g. 'sky, road, tree, car'")
    if len(words) > TRY_MAX_WORDS:
        raise UserError(f"at most {TRY_MAX_WORDS} words at a time (you typed {len(words)})")
    try:
        return validate_class_names(words)
    except LabelSetError as e:
        raise UserError(str(e)) from None


def read_try_image(path: str | Path) -> np.ndarray:
    """The dropped image file -> (H, W, 3) uint8, bounded: at most MAX_IMAGE_BYTES
    read, width x height checked from the header before decoding, then scaled down to
    :data:`TRY_MAX_SIDE` on its long side."""
    try:
        with open(path, "rb") as f:
            data = read_capped(f, limits.MAX_IMAGE_BYTES)
    except OSError as e:
        raise UserError(f"the image could not be read ({e.strerror or e})") from None
    if data is None:
        raise UserError(f"the image is over {limits.human(limits.MAX_IMAGE_BYTES)} (SEGUI_MAX_IMAGE_MB)")
    try:
        rgb = decode_image(data, max_megapixels=limits.MAX_IMAGE_MEGAPIXELS).rgb
    except InvalidImageError as e:
        raise UserError(str(e)) from None
    return fit_side(rgb, TRY_MAX_SIDE)


def fit_side(rgb: np.ndarray, side: int) -> np.ndarray:
    """The image scaled down (area filter) so that its long side is at most ``side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    from PIL import Image

    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX), dtype=np.uint8)


class TryWordsMixin:
    """Studio's demo view: words over an image without a project."""

    def _try_cache(self) -> OrderedDict:
        with self._cache_lock:
            if not hasattr(self, "_try_emb"):
                # ("emb", digest, weights, names) -> PixelEmbeddings; ("set", weights, names) -> Adapter
                self._try_emb: OrderedDict = OrderedDict()
                self.try_stats = {"embed_hits": 0, "embed_misses": 0}
            return self._try_emb

    def _try_lookup(self, key: tuple, make):
        """``(value, cached)`` from the view's LRU (:data:`TRY_CACHED` entries), made by
        ``make()`` when missing. One lock for all of the view's work, not one per key
        (as the Label screen's caches have: its keys are the store's images, these are
        whatever people type, so per-key locks would pile up)."""
        return self._lru_lookup(self._try_cache(), key, make, TRY_CACHED, ("try words",))

    def try_words(self, image: np.ndarray, words, others_unlabelled: bool = False) -> dict:
        """Each word's probability map over ``image`` and the segmentation the words make
        together, with the app's default model: ``{"words", "colors" ('#rrggbb' per
        word), "maps" ((H, W) uint8 probability * 255, one per word), "class_map"
        ((H, W) uint8: the winning word's position; ``len(words)``: none of them),
        "shares" (of the pixels each word wins), "none" (the share none of them wins),
        "hidden" (the scene words also asked for), "peaks" (each word's highest
        probability), "size" (H, W), "cached" (the image's embeddings for these words
        were ready), "ms"}``. ``others_unlabelled``: the model is also asked for the
        hidden scene words of ``models.open_set`` (those not close to any typed word), so
        a pixel that is none of the words is left out of the segmentation and the maps
        are each word's probability among the typed and the hidden words."""
        t0 = time.perf_counter()
        names = parse_words(words) if isinstance(words, str) else validate_class_names(words)
        image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError("the image must be RGB")
        image = fit_side(image, TRY_MAX_SIDE)
        weights = str(self.default_model_dir)
        digest = hashlib.blake2b(image.tobytes(), digest_size=16, key=repr(image.shape).encode()).hexdigest()
        hidden = self.predictors.hidden_words(weights, names) if others_unlabelled else []
        asked = names + hidden

        def embed():
            from models.adapt import PixelEmbeddings

            e = self.predictors.embed(weights, image, asked)
            return PixelEmbeddings(e.pixels, tuple(image.shape[:2]))

        emb, hit = self._try_lookup(("emb", digest, weights, tuple(asked)), embed)
        adapter, _ = self._try_lookup(("set", weights, tuple(asked)),
                                      lambda: self.predictors.word_vectors(weights, asked))
        with self._cache_lock:
            self.try_stats["embed_hits" if hit else "embed_misses"] += 1
        k = len(names)
        probs = label_set_probabilities(emb, adapter)
        class_map = np.minimum(probs.argmax(0), k).astype(np.uint8)     # k: a hidden word won, none of them
        counts = np.bincount(class_map.ravel(), minlength=k + 1) / class_map.size
        probs = probs[:k]
        return {"words": names, "colors": default_colors(names), "maps": [quantise(p) for p in probs],
                "class_map": class_map, "shares": [float(s) for s in counts[:k]], "none": float(counts[k]),
                "rest_out": bool(others_unlabelled), "hidden": hidden, "peaks": [float(p.max()) for p in probs], "size": tuple(image.shape[:2]),
                "image": image, "cached": hit, "ms": round(1000 * (time.perf_counter() - t0), 1)}

    def try_words_file(self, path: str | Path, words, others_unlabelled: bool = False) -> dict:
        """:meth:`try_words` on a dropped image file (read and decoded within the limits)."""
        if not path:
            raise UserError("drop an image first (or press 'Demo street image')")
        names = parse_words(words)          # a typing mistake is said before the image is decoded
        return self.try_words(read_try_image(path), names, others_unlabelled=bool(others_unlabelled))

    def try_words_demo(self) -> tuple[np.ndarray, str]:
        """A street image of the demo folder and words to try on it."""
        from .projects import DEMO_DIR

        return read_try_image(DEMO_DIR / TRY_DEMO_IMAGE), TRY_DEMO_WORDS
