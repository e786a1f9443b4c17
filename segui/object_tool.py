"""Click-to-object (``O`` on the canvas): an object's mask from positive and negative
clicks, grown over the active model's pixel embeddings (``models.click_object``).

:class:`ObjectToolMixin` is the part of :class:`segui.handlers.Studio` that answers the
canvas's ``click_object`` server function. It makes the image's pixel embeddings once
per image, model version and label set, with the network seeing the image enlarged
(:func:`object_scale`: twice its size for a 480x360 frame, so the stride-4 grid is 2 px of
the image; the word heatmaps keep their own, plain ones), adds the label set's class
probabilities on the same grid and the image itself (each click's mask is snapped to its edges), and
keeps, per image, the mask after each prefix of the clicks so that a new click costs one
step. An image larger than the predictions' size (``predict_size``, about a megapixel)
is worked on at that size, as its prediction is, and the mask scaled back up: a
12-megapixel photo's click costs what a 1-megapixel one's does. Nothing is stored: the
page paints the mask with the chosen class as one undoable step, and saving goes
through ``save_edits`` as any edit does.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

import numpy as np
from PIL import Image

from models.click_object import MAX_CLICKS, ObjectFeatures, ObjectSettings, object_from_clicks

from .errors import UserError
from .imageops import resize_nearest
from .predicting import PREDICT_MAX_PIXELS, predict_size

OBJECT_IMAGES = 4            # images whose click features and click states are kept (an LRU)
OBJECT_STATES = 256          # click prefixes kept per image
SETTINGS = ObjectSettings()  # chosen on CamVid train (BENCHMARKS.md, "Clicks to an object")
INPUT_SCALE = 2.0            # the network sees the image twice its size for the tool's embeddings (chosen on train)


def object_scale(height: int, width: int) -> float:
    """How much the image (at ``predict_size``) is enlarged for the O tool's embeddings:
    INPUT_SCALE (a grid of 2 px instead of 4: thin and small objects are found with fewer
    clicks), less for a large image so that the network sees at most PREDICT_MAX_PIXELS, never
    below 1 (the features are made once per image, when the tool is picked)."""
    room = (PREDICT_MAX_PIXELS / max(1, height * width)) ** 0.5
    return float(max(1.0, min(INPUT_SCALE, room)))


def parse_clicks(raw, width: int, height: int) -> list[tuple[int, int, bool]]:
    """The page's clicks ``[[x, y, 1 | 0], ...]`` (1 positive) -> [(x, y, positive)], or
    UserError: a list of at most MAX_CLICKS points inside the image, a positive first."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise UserError("click on the object first (left click: part of it)")
    if len(raw) > MAX_CLICKS:
        raise UserError(f"at most {MAX_CLICKS} clicks per object: commit it (Enter) and go on with another")
    out = []
    for c in raw:
        try:
            x, y, p = c
            x, y = int(x), int(y)
        except (TypeError, ValueError):
            raise UserError("a click is [x, y, positive]") from None
        if not (0 <= x < width and 0 <= y < height):
            raise UserError(f"click ({x}, {y}) is outside the {width}x{height} image")
        out.append((x, y, bool(p)))
    if not any(p for _, _, p in out):
        raise UserError("the object needs a positive click (left click on it)")
    return out


class ObjectToolMixin:
    """Studio's click-to-object tool (caches made on first use)."""

    def _object_cache(self) -> OrderedDict:
        with self._cache_lock:
            if not hasattr(self, "_objects"):
                self._objects: OrderedDict = OrderedDict()   # (image, version, names) -> (features, states)
            return self._objects

    def _object_inputs(self, image_id: int):
        """(features, click states, whether they were cached) for the image: made once,
        even when the page's warm-up and its first click ask at the same time."""
        info, mv, names, adapter = self._label_set_inputs(image_id)
        key = (info.id, mv.id, tuple(names))

        def make():
            image = self.store.load_image(info.id)
            h, w = predict_size(*image.shape[:2])
            # one view: the tool's settings were chosen on it (and the mirror would double its 2x pass)
            emb = self.predictors.embed(mv.weights_dir, image, names, scale=object_scale(h, w), flip=False)
            if (h, w) != image.shape[:2]:     # a big photo: worked on at the predictions' size
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR, reducing_gap=2.0))
            feat = ObjectFeatures.from_embeddings(replace(emb, size=(h, w)), adapter, image=image)
            return feat, OrderedDict()

        (feat, states), hit = self._lru_lookup(self._object_cache(), key, make, OBJECT_IMAGES, ("object",) + key)
        return feat, states, hit

    def warm_object(self, image_id: int) -> dict:
        """Make the image's click features ready (the page asks when the O tool is
        picked), so that the first click costs what the others do."""
        t0 = time.perf_counter()
        _, _, hit = self._object_inputs(int(image_id))
        return {"cached": hit, "ms": round(1000 * (time.perf_counter() - t0), 1)}

    def click_object(self, image_id: int, clicks) -> dict:
        """The object the clicks describe on image ``image_id`` under its project's
        active model: ``{"mask": (H, W) bool, "pixels", "clicks", "cached" (the image's
        embeddings were ready), "ms"}``. ``clicks``: ``[[x, y, 1 | 0], ...]`` in click
        order (1 = part of the object, 0 = not)."""
        t0 = time.perf_counter()
        info = self.store.get_image(int(image_id))
        cl = parse_clicks(clicks, info.width, info.height)
        feat, states, hit = self._object_inputs(info.id)
        if feat.size != predict_size(info.height, info.width):
            raise UserError("the image's size changed: open it again")
        h, w = feat.size
        small = [(min(x * w // info.width, w - 1), min(y * h // info.height, h - 1), p) for x, y, p in cl]
        mask = object_from_clicks(feat, small, SETTINGS, _BoundedStates(states, self._cache_lock))
        if (h, w) != (info.height, info.width):
            mask = resize_nearest(mask, info.height, info.width)
            for x, y, p in cl:            # each click keeps its state, as at full size
                mask[y, x] = p
        return {"mask": mask, "pixels": int(np.count_nonzero(mask)), "clicks": len(cl), "cached": hit,
                "ms": round(1000 * (time.perf_counter() - t0), 1)}


class _BoundedStates:
    """The click-prefix cache as ``object_from_clicks`` wants it (get / set), bounded,
    each access under the studio's cache lock (two requests may click the same image)."""

    def __init__(self, od: OrderedDict, lock):
        self.od = od
        self.lock = lock

    def get(self, key):
        with self.lock:
            return self.od.get(key)

    def __setitem__(self, key, value):
        with self.lock:
            self.od[key] = value
            while len(self.od) > OBJECT_STATES:
                self.od.popitem(last=False)
