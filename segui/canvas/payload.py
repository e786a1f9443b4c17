"""What the server puts in the canvas's value (plain dicts; no Gradio here).

Every payload has ``kind`` and a fresh ``seq`` (the page reacts to a value only
once) and, when it answers a request of the page, that request's id.
"""
from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from ..imageops import hex_color
from . import codec

_seq = itertools.count(1)


def _base(kind: str, request: Any = None, note: str = "", level: str = "info", until: str = "") -> dict[str, Any]:
    """``until``: the note holds while that condition does, and the page takes it away
    when it ends ("prompt": the text prompt is shown, "filter": the queue picked, "image":
    this image is open; canvas.js clearStatus)."""
    return {"kind": kind, "seq": f"{time.time():.6f}-{next(_seq)}", "request": request,
            "note": note, "level": level, "until": until}


def classes(project) -> list[dict[str, Any]]:
    return [{"index": c.index, "name": c.name, "color": hex_color(c.color)} for c in project.classes]


def with_classes(out: dict[str, Any], studio, project) -> dict[str, Any]:
    p = studio.project(project)
    who = studio.caller()
    out.update(classes=classes(p), ignore_index=p.ignore_index, thin=studio.thin_classes(p.id),
               rights={"review": who.can("review"), "admin": who.can("admin")},
               user=who.name or "",   # the page's journal of unsaved edits is kept per user
               boot=studio.boot)      # the server process: another one = restarted (the page reopens its image)
    return out


def load(studio, project, ready, note: str = "", request: Any = None, level: str = "info",
         back: bool = False) -> dict[str, Any]:
    """Open an image in the canvas: photo, map, prediction, label set, strip."""
    lo = ready.loaded
    h, w = lo.class_map.shape
    out = _base("load", request, note, level)
    out.update(
        project=studio.project(project).name, back=back,
        image={"id": lo.image_id, "name": lo.filename, "width": w, "height": h, "url": ready.photo,
               "status": lo.status, "split": lo.split, "revision": lo.base_revision, "source": lo.source,
               "version": lo.predicted_by,     # the model version whose prediction came with it
               # the map shown is a prediction the instant layer made from N corrected images
               "adapted": studio.adapted_from(lo.image_id, lo.predicted_by) if lo.base_revision == 0 else 0,
               # ... and which adapter of the instant layer made it (-1: none; the heartbeat
               # names the current one, Nav.newerFit)
               "fit": lo.predicted_fit},
        map=codec.encode_map(lo.class_map),
        pred=None if ready.prediction is None else codec.encode_map(ready.prediction),
        queue=studio.strip(project, lo.image_id), review=review(studio, lo.image_id))
    return with_classes(out, studio, project)


def review(studio, image_id: int) -> dict[str, Any] | None:
    """The image's review state for the page; for a reviewer, with the regions where
    the active model confidently disagrees with the submitted annotation."""
    state = studio.review_state(image_id)
    if state is not None and state["can_review"] and state["revision"] is not None:
        mask = studio.review_overlay(image_id, state["revision"])
        if mask is not None:
            state["mask"] = codec.encode_mask(mask) if mask.any() else None
            state["mask_pixels"] = int(mask.sum())
    return state


def empty(studio, project, text: str, request: Any = None, note: str = "", level: str = "info") -> dict[str, Any]:
    out = _base("load", request, note, level)
    out.update(project=studio.project(project).name if project else None, image=None, empty=text,
               queue=studio.strip(project or None, None))     # no project: an empty strip
    if project:
        with_classes(out, studio, project)
    else:                   # no project left: no class to paint with either
        out["classes"] = []
    return out


def saved(studio, project, loaded, res, note: str, request: Any = None) -> dict[str, Any]:
    out = _base("saved", request, note, "warning" if res.conflict else "info")
    out.update(image_id=loaded.image_id, revision=res.revision, status=res.status, source=loaded.source,
               conflict=res.conflict, conflict_with=res.conflict_info(), split=loaded.split,
               queue=studio.strip(project, loaded.image_id))
    return out


def revision_maps(image_id: int, maps: dict, authors: dict) -> dict:
    """The ``revision_maps`` server function's answer: revision number (as text) -> its
    class map as an index PNG data URL, and -> its author (0, the prediction: none)."""
    return {"image_id": int(image_id), "maps": {str(r): codec.encode_map(m) for r, m in maps.items()},
            "authors": {str(r): authors.get(r, "") for r in maps}}


def split(loaded, note: str, request: Any = None) -> dict[str, Any]:
    out = _base("split", request, note)
    out.update(image_id=loaded.image_id, split=loaded.split)
    return out


def info(note: str, request: Any = None, level: str = "info", until: str = "") -> dict[str, Any]:
    return _base("info", request, note, level, until)


def result(loaded, class_map: np.ndarray, label: str, note: str, request: Any = None,
           **extra: Any) -> dict[str, Any]:
    """A server tool's output map for the open image; the page applies the
    difference as one undoable step, keeping strokes made while it ran."""
    out = _base("result", request, note)
    out.update(image_id=loaded.image_id, map=codec.encode_map(class_map), label=label, **extra)
    return out


def prompt(loaded, mask: np.ndarray, phrase: str, known: bool, request: Any = None) -> dict[str, Any]:
    pct = 100.0 * float(mask.mean())
    out = _base("prompt", request, f"'{phrase}' covers {pct:.1f} % of the image (white). Accept it to label "
                                   "those pixels, or discard.", until="prompt")
    out.update(image_id=loaded.image_id, mask=codec.encode_mask(mask), phrase=phrase,
               pixels=int(mask.sum()), known=known)
    return out


def label_set(studio, project) -> dict[str, Any]:
    """The label set changed elsewhere (projects screen): palette, class list, keys."""
    return with_classes(_base("classes"), studio, project)


def heatmap(image_id: int, res: dict) -> dict:
    """The ``heatmap`` server function's answer: the map as a greyscale PNG data URL
    (probability * 255 at the image's size), the phrase, the class it is (or None),
    its range, whether the image's embeddings were cached and the corrections the
    instant layer's class vectors were learnt from (0: the words' own)."""
    return {"image_id": int(image_id), "data": codec.encode_map(res["map"]), "phrase": res["phrase"],
            "class": res["class"], "min": res["min"], "max": res["max"], "cached": res["cached"],
            "corrections": res.get("corrections", 0), "ms": res["ms"]}


def uncertainty(image_id: int, res: dict) -> dict:
    """The ``uncertainty`` server function's answer: the normalised entropy map as a
    greyscale PNG data URL (entropy * 255 at the image's size), its mean and max,
    whether the image's embeddings were cached and the instant layer's corrections."""
    return {"image_id": int(image_id), "data": codec.encode_map(res["map"]), "mean": res["mean"],
            "max": res["max"], "cached": res["cached"], "corrections": res.get("corrections", 0), "ms": res["ms"]}


def changes(image_id: int, res: dict) -> dict:
    """The ``what_changed`` server function's answer: the changed pixels as a greyscale
    PNG (255 changed, 0 not), the two versions, the count, share and top class pairs, and
    the corrections the instant layer had learnt when it predicted the image (0: none)."""
    return {"image_id": int(image_id), "data": codec.encode_map(res["map"]), "from": res["from"], "to": res["to"],
            "changed": res["changed"], "share": res["share"], "pairs": res["pairs"],
            "pair_count": res["pair_count"], "corrections": res.get("corrections", 0), "ms": res["ms"]}


def object_mask(image_id: int, res: dict) -> dict:
    """The ``click_object`` server function's answer: the object as a 0/1 PNG data URL
    at the image's size, its pixels, the clicks it answers and the time it took."""
    return {"image_id": int(image_id), "data": codec.encode_mask(res["mask"]), "pixels": res["pixels"],
            "clicks": res["clicks"], "cached": res["cached"], "ms": res["ms"]}
