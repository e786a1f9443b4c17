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

*What changed* (``C``, :meth:`HeatmapMixin.what_changed`) compares two model
versions' predicted class maps of an image: the pixels whose class changed and the
counts per (from, to) class pair, from stored predictions when there are some. With one
model version, an image the instant layer predicted (``segui.adapting``) shows what the
labellers' corrections changed: the model's own prediction against the one shown.
"""
from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from models.heatmap import quantise, uncertainty, word_probability
from storage.models import Action

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


def change_pairs(p, a: np.ndarray, b: np.ndarray):
    """Two (H, W) project-index class maps of project ``p`` -> ``(mask, pairs)``: the
    pixels that differ and ``[(class in a, class in b, pixels), ...]``, most first (an
    index outside the label set reads "void")."""
    mask = a != b
    names = {c.index: c.name for c in p.classes}
    pair = a[mask].astype(np.int32) * 256 + b[mask].astype(np.int32)
    keys, counts = np.unique(pair, return_counts=True)
    pairs = [(names.get(int(k) // 256, "void"), names.get(int(k) % 256, "void"), int(n))
             for k, n in zip(keys, counts)]
    pairs.sort(key=lambda t: (-t[2], t[0], t[1]))
    return mask, pairs


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
        return self._lru_lookup(cache, key, make, size, ("heat",) + key)   # a work lock per key

    def _label_set_inputs(self, image_id: int):
        """(image info, active model version, class names, the label set's un-tuned
        Adapter) for a map of the image."""
        info = self.store.get_image(int(image_id))
        p = self.store.get_project(info.project_id)
        if not p.classes:
            raise UserError("this project has no classes yet: add some on the Projects screen")
        mv = self.model_version(p.id)
        names = list(p.class_names)
        _, word_cache = self._heat_caches()
        adapter, _ = self._heat_lookup(word_cache, ("set", mv.weights_dir, tuple(names)),
                                       lambda: self.predictors.word_vectors(mv.weights_dir, names),
                                       HEAT_PHRASES + 8)
        return info, mv, names, adapter

    def _heat_inputs(self, image_id: int):
        """(image info, active model version, class names, the image's PixelEmbeddings,
        the label set's Adapter, whether the embeddings were cached, corrections): what
        every map of the image needs, one forward pass per image, model version and label
        set. The Adapter is the instant layer's when it has learnt from corrections
        (``corrections`` of them, else 0 and the words' own vectors), as the mask shown is."""
        info, mv, names, adapter = self._label_set_inputs(image_id)
        tuned = self.instant_adapter(info.project_id, mv.id, names)
        if tuned is not None:
            adapter = tuned
        emb_cache, _ = self._heat_caches()

        def embed():
            from models.adapt import PixelEmbeddings

            image = self.store.load_image(info.id)
            e = self.predictors.embed(mv.weights_dir, image, names)   # at predict_size
            return PixelEmbeddings(e.pixels, tuple(image.shape[:2]))    # maps come back at the image's size

        emb, hit = self._heat_lookup(emb_cache, (info.id, mv.id, tuple(names)), embed, HEAT_IMAGES)
        with self._cache_lock:
            self.heat_stats["embed_hits" if hit else "embed_misses"] += 1
        return info, mv, names, emb, adapter, hit, (tuned.images if tuned is not None else 0)

    def heatmap(self, image_id: int, phrase: str) -> dict:
        """The map of ``phrase`` over image ``image_id`` with the project's active model:
        ``{"map": (H, W) uint8 (probability * 255), "phrase", "class" (the class it
        is, or None), "min", "max" (probabilities), "cached" (the image's embeddings
        were ready), "ms"}``."""
        t0 = time.perf_counter()
        text = clean_phrase(phrase)
        info, mv, names, emb, adapter, hit, corrections = self._heat_inputs(image_id)
        _, word_cache = self._heat_caches()
        same = [k for k, n in enumerate(names) if n.casefold() == text.casefold()]
        if same:
            prob = word_probability(emb, adapter, index=same[0])
        else:
            vec, _ = self._heat_lookup(word_cache, ("phrase", mv.weights_dir, text),
                                       lambda: self.predictors.phrase_vector(mv.weights_dir, text), HEAT_PHRASES + 8)
            prob = word_probability(emb, adapter, vector=vec)
        return {"map": quantise(prob), "phrase": text, "class": names[same[0]] if same else None,
                "min": float(prob.min()), "max": float(prob.max()), "cached": hit, "corrections": corrections,
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
        info, mv, names, emb, adapter, hit, corrections = self._heat_inputs(image_id)
        u = uncertainty(emb, adapter)
        return {"map": quantise(u), "mean": float(u.mean()), "max": float(u.max()), "cached": hit,
                "corrections": corrections, "ms": round(1000 * (time.perf_counter() - t0), 1)}

    # ------------------------------------------------------------------ what changed

    def previous_model_version(self, project) -> int | None:
        """The version that was active before the project's active one: the
        ``previous_version_id`` of the newest activity record that activated it (a
        switch by hand or a promoted job), else the version registered just before it
        (the project's versions in id order); None when there is no other version."""
        p = self.store.get_project(project)
        active = self.model_version(p.id)
        known = {m.id for m in self.store.list_model_versions(p.id)}
        for rec in self.store.list_activity(p.id, limit=50, action=Action.MODEL_ACTIVATED.value):
            d = rec.details or {}
            if d.get("version_id") == active.id:
                prev = d.get("previous_version_id")
                if prev in known and prev != active.id:
                    return int(prev)
                break
        earlier = [m for m in sorted(known) if m < active.id]
        return earlier[-1] if earlier else None

    def _version_map(self, image_id: int, version_id: int, image=None):
        """(H, W) project-index class map of ``version_id`` for the image: its stored
        prediction, else predicted now (stored only for the active version, whose
        prediction drives the queue)."""
        pred = self.store.get_prediction(image_id, version_id)
        if pred is not None:
            return pred.class_map, image
        mv = self.store.get_model_version(int(version_id))
        info = self.store.get_image(image_id)
        if mv.project_id != info.project_id:
            raise UserError(f"model version {version_id} belongs to another project")
        p = self.store.get_project(info.project_id)
        if image is None:
            image = self.store.load_image(image_id)
        cm, unc = self._predict_map(mv.weights_dir, image, p)
        if self.model_version(p.id).id == mv.id:
            self.store.save_prediction(image_id, mv.id, cm, unc)
            self._prediction_stored(image_id)           # the model's own (no instant layer)
        return cm, image

    def what_changed(self, image_id: int, version_a: int, version_b: int):
        """The pixels of image ``image_id`` whose predicted class differs between model
        versions ``version_a`` and ``version_b``: ``(mask, pairs)``, an (H, W) bool
        mask and ``[(class in a, class in b, pixels), ...]`` sorted by pixels (most
        first; a class index outside the label set reads "void"). The counts add up
        to ``mask.sum()``."""
        iid = int(image_id)
        info = self.store.get_image(iid)
        for v in (version_a, version_b):
            if self.store.get_model_version(int(v)).project_id != info.project_id:
                raise UserError(f"model version {v} belongs to another project")
        a, image = self._version_map(iid, int(version_a))
        b, _ = self._version_map(iid, int(version_b), image)
        if a.shape != b.shape:
            raise UserError("the two predictions differ in size")
        return change_pairs(self.store.get_project(info.project_id), a, b)

    def changes_since_previous(self, image_id: int, top: int = 5) -> dict:
        """What changed on image ``image_id`` from the previous active model version
        (:meth:`previous_model_version`) to the active one: ``{"map": (H, W) uint8
        (255 changed, 0 not), "from", "to" (version ids; "from" None when the project
        has one version), "changed" (pixels), "share" (of the image), "pairs" (the
        ``top`` (from, to, pixels)), "pair_count", "corrections", "ms"}``.
        ``corrections``: the corrected images the instant layer learnt from when it made
        the active version's prediction of the image (0: the model's own). With one
        version and corrections, the change is the instant layer's: from the active
        model's own prediction (predicted now, not stored) to the one shown."""
        t0 = time.perf_counter()
        info = self.store.get_image(int(image_id))
        mv = self.model_version(info.project_id)
        prev = self.previous_model_version(info.project_id)
        corrections = self.adapted_from(info.id, mv.id)
        if prev is not None:
            mask, pairs = self.what_changed(info.id, prev, mv.id)
        elif corrections:
            p = self.store.get_project(info.project_id)
            shown, image = self._version_map(info.id, mv.id)
            own, _ = self._predict_map(mv.weights_dir, self.store.load_image(info.id) if image is None else image, p)
            mask, pairs = change_pairs(p, own, shown)
        else:
            mask, pairs = np.zeros((info.height, info.width), bool), []
        n = int(mask.sum())
        return {"map": mask.astype(np.uint8) * 255, "from": prev, "to": mv.id, "changed": n,
                "share": n / max(1, mask.size), "pairs": [list(t) for t in pairs[:top]],
                "pair_count": len(pairs), "corrections": corrections,
                "ms": round(1000 * (time.perf_counter() - t0), 1)}
