"""A model version measured on the project's own val images, and the versions' history.

:class:`EvaluationMixin` is the part of :class:`segui.handlers.Studio` behind the
Model screen's *Evaluate* button and its mIoU-per-version plot; evaluations are
cached per (version, val set, label set).
"""
from __future__ import annotations

import numpy as np

from models.metrics import confusion_matrix, recorded_metrics, scores
from storage import ProjectInfo

from .errors import UserError
from .predicting import model_positions


class EvaluationMixin:
    """Studio's evaluations on the project's val set."""

    def _val_key(self, p: ProjectInfo, version_id: int) -> tuple:
        return (version_id, tuple(self.store.submitted_annotations(p.id, "val")), tuple(p.class_indices),
                tuple(p.class_names), p.others_unlabelled)

    def cached_evaluation(self, project: str | int, version_id: int) -> dict | None:
        """An evaluation of the version on the project's current val set, if one was made."""
        p = self.store.get_project(project)
        with self._cache_lock:
            return self._evaluations.get(self._val_key(p, int(version_id)))

    def evaluate_on_val(self, project: str | int, version_id: int | None = None, progress=None) -> dict:
        """The version (default: the active one) on the project's submitted val images and
        its own label set: one confusion matrix over the project's classes (void
        excluded), per-class IoU with the val pixels of each class, mIoU over the classes
        that occur in the val labels or the predictions."""
        p = self.store.get_project(project)
        mv = self.model_version(p.id) if version_id is None else self.store.get_model_version(int(version_id))
        if mv.project_id != p.id:
            raise UserError("that model version belongs to another project")
        key = self._val_key(p, mv.id)
        with self._cache_lock:
            hit = self._evaluations.get(key)
        if hit is not None:
            return hit
        val = key[1]
        if not val:
            raise UserError("no submitted val images in this project yet: submit some (one in five goes to val) "
                            "or set an image's split to val on the Label screen")
        k = len(p.classes)
        pos = model_positions(p, missing=k)                # class index -> row; void and strays -> k
        conf = np.zeros((k + 1, k + 1), dtype=np.int64)    # row k (void labels) stays empty: not counted
        for n, (image_id, rev) in enumerate(val):
            if progress is not None:
                progress((n, len(val)), desc=f"predicting val image {n + 1} of {len(val)}")
            gt = self.store.get_annotation(image_id, rev).class_map
            pred, _ = self._predict_map(mv.weights_dir, self.store.load_image(image_id), p)
            conf += confusion_matrix(pos[pred], pos[gt], k + 1, ignore_index=k)
        # column k: labelled pixels predicted as void/unknown; they count in the class's union
        s = scores(conf, p.class_names + [None])
        iou = [s["per_class_iou"][n] for n in p.class_names]
        present = [v for v in iou if v is not None]
        out = {"version": mv.id, "images": len(val), "names": p.class_names, "iou": iou,
               "val_pixels": [int(v) for v in conf[:k].sum(1)], "confusion": conf[:k, :k].tolist(),
               "miou": float(np.mean(present)) if present else None,
               "pixel_accuracy": s["pixel_accuracy"]}
        with self._cache_lock:
            self._evaluations[key] = out
        return out

    def measured_here(self) -> str:
        """What an evaluation made here is called next to a job's recorded one (which is at
        the images' own size): with --predict-scale, the scale it was measured at."""
        scale, flip = self.predictors.input_scale, self.predictors.flip
        how = ([f"input {scale:g}x"] if scale != 1.0 else []) + (["also seen mirrored"] if flip else [])
        return "this project's val set now" + (f" ({', '.join(how)})" if how else "")

    def version_history(self, project: str | int) -> list[dict]:
        """mIoU of each version in creation order: measured on the project's current val
        set where it was evaluated here, else as its fine-tuning job recorded it."""
        rows = []
        here = self.measured_here()
        for m in self.store.list_model_versions(project):
            ev = self.cached_evaluation(project, m.id)
            if ev is not None and ev["miou"] is not None:
                rows.append({"version": f"v{m.id}", "mIoU": ev["miou"], "measured": here})
            elif recorded_metrics(m.metrics).get("miou") is not None:
                rows.append({"version": f"v{m.id}", "mIoU": float(recorded_metrics(m.metrics)["miou"]),
                             "measured": "recorded with the version"})
        return rows
