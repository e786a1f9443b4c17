"""The Label screen's server-side tools: superpixels, snap, clean-up, text prompts.

:class:`ToolsMixin` is the part of :class:`segui.handlers.Studio` that runs
``segui.smart_tools`` on the open image (superpixels cached per image, thin classes
per label set) and segments a typed phrase with the text encoder.
"""
from __future__ import annotations

import time

import numpy as np

from storage import ProjectInfo

from . import smart_tools
from .access import Act, Forbidden, Principal
from .errors import UserError
from .labelling import Loaded

THIN_SAMPLE = 12                   # maps thin_classes measures (an image's annotation, else its prediction)
THIN_REFRESH_S = 30.0
SEGMENTS_KEEP = 16                 # superpixel maps kept (the open images and those prepared ahead) ...
SEGMENTS_KEEP_BYTES = 96 << 20     # ... and at most this much of them: four 12-megapixel photos' maps


class ToolsMixin:
    """Studio's smart tools on the open image."""

    def segments(self, image_id: int, image: np.ndarray) -> np.ndarray:
        with self._once(("segments", image_id)):
            with self._cache_lock:
                seg = self._segments.get(image_id)
                if seg is not None and seg.shape == image.shape[:2]:
                    self._segments.move_to_end(image_id)
                    return seg
            seg = smart_tools.superpixels(image)
            if seg.size and seg.max() <= 0xFFFF:   # (the page's format's limit too): half of int32's bytes
                seg = seg.astype(np.uint16)
            with self._cache_lock:
                self._segments[image_id] = seg
                while len(self._segments) > 1 and (len(self._segments) > SEGMENTS_KEEP or sum(
                        m.nbytes for m in self._segments.values()) > SEGMENTS_KEEP_BYTES):
                    self._segments.popitem(last=False)
            return seg

    def class_index(self, project: str | int, name: str) -> int:
        p = self.store.get_project(project)
        for c in p.classes:
            if c.name == name:
                return c.index
        if name in ("void", "void / unlabelled", None, ""):
            return p.ignore_index
        raise UserError(f"unknown class {name!r}")

    def superpixel_fill(self, project: str | int, loaded: Loaded, class_map: np.ndarray,
                        x: int, y: int, class_name: str) -> np.ndarray:
        cls = self.class_index(project, class_name)
        seg = self.segments(loaded.image_id, loaded.image)
        try:
            return smart_tools.superpixel_fill(class_map, seg, int(x), int(y), cls)
        except ValueError as e:
            raise UserError(str(e)) from None

    def snap(self, loaded: Loaded, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return smart_tools.snap_strokes(before, after, self.segments(loaded.image_id, loaded.image))

    def thin_classes(self, project: str | int) -> list[int]:
        """Classes made of narrow regions (poles, signs): clean-up keeps them unless told
        otherwise. Measured on up to THIN_SAMPLE of the project's annotations or predictions."""
        p = self.store.get_project(project)
        key = (p.id, tuple(p.class_indices))
        with self._cache_lock:
            hit = self._thin.get(key)
        # measured once per label set from a full sample; from fewer maps (a young project)
        # again at most every THIN_REFRESH_S as its images come in
        if hit is not None and (hit[2] >= THIN_SAMPLE or time.monotonic() - hit[0] < THIN_REFRESH_S):
            return hit[1]
        maps = []
        for im in self.store.list_images(p.id, order="id", limit=60):
            if len(maps) >= THIN_SAMPLE:
                break
            if im.revision > 0:
                maps.append(self.store.get_annotation(im.id).class_map)
            else:
                pred = self.store.get_prediction(im.id)
                if pred is not None:
                    maps.append(pred.class_map)
        thin = sorted(int(c) for c in smart_tools.thin_classes(maps, p.ignore_index)) if maps else []
        with self._cache_lock:
            self._thin[key] = (time.monotonic(), thin, len(maps))
        return thin

    def clean_up(self, project: str | int, class_map: np.ndarray, min_size: int,
                 keep: list[int] | None = None) -> np.ndarray:
        """Small islands and holes take their surroundings' class; classes in ``keep``
        (default: the project's thin classes) are never erased, and no class is removed
        as a whole."""
        try:
            min_size = int(min_size)
        except (TypeError, ValueError):
            raise UserError("the minimum region size must be a whole number of pixels") from None
        if min_size < 1:
            raise UserError("the minimum region size must be at least 1 pixel")
        p = self.store.get_project(project)
        keep = self.thin_classes(p.id) if keep is None else [int(k) for k in keep]
        unknown = [k for k in keep if k not in p.class_indices]
        if unknown:
            raise UserError(f"clean-up: no class with index {unknown[0]} in this project")
        return smart_tools.clean_up(class_map, min_size, p.ignore_index, keep=keep)

    def text_prompt(self, project: str | int, loaded: Loaded, phrase: str) -> np.ndarray:
        """Segment ``phrase`` through the text encoder, competing with the label set:
        a boolean mask of the pixels where the phrase wins."""
        phrase = (phrase or "").strip()
        if not phrase:
            raise UserError("type a phrase to segment, e.g. 'white van'")
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        same = [c for c in p.classes if c.name.casefold() == phrase.casefold()]
        if same:   # the phrase is already a class: its own prediction
            cm, _ = self._predict_map(mv.weights_dir, loaded.image, p)
            return cm == same[0].index
        pos_map, _ = self._predict_map(mv.weights_dir, loaded.image, p, extra=[phrase])
        return pos_map == len(p.classes)

    def accept_prompt(self, project: str | int, class_map: np.ndarray, mask: np.ndarray,
                      name: str, add_class: bool = False, who: Principal | None = None
                      ) -> tuple[ProjectInfo, np.ndarray]:
        """Label the prompt's pixels with class ``name``. A name that is not a class yet
        is added to the project only when ``add_class`` says the labeller agreed."""
        name = (name or "").strip()
        if not name:
            raise UserError("give the class a name")
        if mask is None or not np.any(mask):
            raise UserError("the prompt selected no pixels; nothing to accept")
        if mask.shape != class_map.shape:
            raise UserError("the prompt was made on another image; segment the phrase again")
        p = self.store.get_project(project)
        match = [c for c in p.classes if c.name.casefold() == name.casefold()]
        if match:
            idx = match[0].index
        elif not add_class:
            raise UserError(f"'{name}' is not a class of project '{p.name}': accepting it adds it to the "
                            "project's label set; confirm to add it")
        elif not self._who(who).can(Act.ADMIN):
            raise Forbidden(f"'{name}' is not a class of project '{p.name}', and only an admin adds classes: "
                            "label the pixels with an existing class, or ask an admin to add it")
        else:
            p = self.add_class(p.name, name)
            idx = next(c.index for c in p.classes if c.name == name)
        out = class_map.copy()
        out[mask] = idx
        return p, out
