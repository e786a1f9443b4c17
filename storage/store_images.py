"""Projects and their label sets, images (the files through the blob store) and
annotation revisions: the part of :class:`storage.Store` a labeller's edit touches."""
from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import colors, labels

from . import imaging
from .errors import ConflictError, InvalidImageError, NotFoundError, StorageError, ValidationError
from .files import digest
from .info import (AnnotationInfo, ImageInfo, ProjectInfo, _image_info, _list_columns, _row_to_image_info,
                   _rows_to_image_infos, _utc)
from .models import (ANNOTATION_STATUSES, IN_PROJECT, Action, Activity, Annotation, Image, LabelClass, Project,
                     ReviewState, TrainingJob, utcnow)
from .store_base import StoreBase, _check_split, _clean_name, _enum_value, _label_rule

# The queue filters people pick (the app's filter menu, Store.next_image): each names the
# image statuses it shows; "rejected" is the review state (back to the annotator) and
# "review" the reviewer's queue, so neither is a status set.
FILTER_STATUSES: dict[str, tuple[str, ...]] = {
    "unlabelled": ("unlabelled",), "draft": ("draft",), "unsubmitted": ("unlabelled", "draft"),
    "submitted": ("submitted",), "any": ("unlabelled", "draft", "submitted"),
}
QUEUE_FILTERS = ("unlabelled", "draft", "unsubmitted", "submitted", "rejected", "review", "any")


def _color_to_hex(color: Any) -> str:
    try:
        return colors.as_hex(color)
    except ValueError as e:
        raise ValidationError(str(e)) from None


class ImagesMixin(StoreBase):
    """Projects, classes, images and annotations."""

    # ------------------------------------------------------------------ projects

    def create_project(self, name: str, classes: Sequence[str | dict[str, Any]],
                       ignore_index: int = 255) -> ProjectInfo:
        """Create a project. ``classes``: names, or dicts with ``name`` and optional
        ``color`` ('#rrggbb' or (r, g, b)) and ``index``. Without indices, classes are
        numbered 0, 1, ... in order, skipping ``ignore_index``."""
        name = _clean_name(name, "project name")
        if not isinstance(ignore_index, int) or not 0 <= ignore_index <= 255:
            raise ValidationError(f"ignore_index must be an integer in 0..255, got {ignore_index!r}")
        if not classes:
            raise ValidationError("a project needs at least one class")
        specs = [{"name": c} if isinstance(c, str) else dict(c) for c in classes]
        for i, (spec, c) in enumerate(zip(specs, classes)):
            if "name" not in spec:
                raise ValidationError(f"class #{i} has no name: {c!r}")
        with _label_rule():
            names = labels.validate_class_names([spec["name"] for spec in specs])
        indices: list[int] = []
        next_index = 0
        for spec in specs:
            if spec.get("index") is not None:
                idx = int(spec["index"])
            else:
                idx = next_index
                if idx == ignore_index:
                    idx += 1
            next_index = idx + 1
            indices.append(idx)
        given = [_color_to_hex(spec["color"]) if spec.get("color") is not None else None for spec in specs]
        rows = list(zip(indices, names, colors.fill_colors(names, given)))
        self._check_indices(rows, ignore_index)
        with self._session() as s, s.begin():
            self._check_free_name(s, name)
            p = Project(name=name, ignore_index=ignore_index, created_at=utcnow())
            s.add(p)
            s.flush()
            s.add_all(LabelClass(project_id=p.id, index=i, name=n, color=c) for i, n, c in rows)
            try:
                s.flush()
            except IntegrityError as e:
                raise ValidationError(f"project {name!r} could not be created: {e.orig}") from None
            return self._project_info(s, p)

    @staticmethod
    def _check_indices(rows: list[tuple[int, str, str]], ignore_index: int) -> None:
        seen_idx: set[int] = set()
        for idx, cname, _ in rows:
            if not 0 <= idx <= 255:
                raise ValidationError(f"class {cname!r}: index {idx} outside 0..255")
            if idx == ignore_index:
                raise ValidationError(f"class {cname!r}: index {idx} is the ignore index")
            if idx in seen_idx:
                raise ValidationError(f"duplicate class index {idx}")
            seen_idx.add(idx)

    @staticmethod
    def _check_free_name(s: Session, name: str, project_id: int | None = None) -> None:
        """ValidationError when another project (a removed one too) has ``name``."""
        other = s.scalar(select(Project).where(Project.name == name, Project.id != (project_id or -1)))
        if other is None:
            return
        if other.removed_at is not None:
            raise ValidationError(f"a removed project is named {name!r}: restore it (Projects screen, "
                                  "Removed projects) or choose another name")
        raise ValidationError(f"project {name!r} already exists")

    def get_project(self, project: str | int) -> ProjectInfo:
        """The project by id or name, removed or not (``ProjectInfo.removed`` says)."""
        with self._session() as s:
            return self._project_info(s, self._project_row(s, project))

    def list_projects(self, include_removed: bool = False) -> list[ProjectInfo]:
        """The projects in use, oldest first; with ``include_removed`` the removed ones too."""
        q = select(Project).order_by(Project.id)
        if not include_removed:
            q = q.where(Project.removed_at.is_(None))
        with self._session() as s:
            return [self._project_info(s, p) for p in s.scalars(q)]

    def removed_projects(self) -> list[ProjectInfo]:
        """The removed projects, the most recently removed first."""
        with self._session() as s:
            return [self._project_info(s, p) for p in s.scalars(
                select(Project).where(Project.removed_at.is_not(None))
                .order_by(Project.removed_at.desc(), Project.id.desc()))]

    def rename_project(self, project: str | int, new_name: str, by: str | None = None) -> ProjectInfo:
        """Give the project another name (unique among all projects, removed ones too);
        recorded as ``project_renamed`` by ``by``. Everything else refers to its id, so
        its images, annotations, models and jobs stay as they are. The same name again
        changes nothing (and records nothing)."""
        name = _clean_name(new_name, "project name")
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            if p.name == name:
                return self._project_info(s, p)
            self._check_free_name(s, name, p.id)
            old, p.name = p.name, name
            try:
                s.flush()
            except IntegrityError:      # another rename or creation took the name meanwhile
                raise ValidationError(f"project {name!r} already exists") from None
            self._record(s, Action.PROJECT_RENAMED, by, p.id, f"project {old!r} renamed {name!r}",
                         {"from": old, "to": name})
            return self._project_info(s, p)

    def renamed_project(self, former_name: str) -> ProjectInfo | None:
        """The project that last had the name ``former_name`` before a rename (from the
        activity log's ``project_renamed`` records); None when no project was so renamed.
        What a page that still shows the old name is given."""
        with self._session() as s:
            for a in s.scalars(select(Activity).where(Activity.action == Action.PROJECT_RENAMED.value)
                               .order_by(Activity.id.desc()).limit(1000)):
                if (a.details or {}).get("from") == former_name and a.project_id is not None:
                    p = s.get(Project, a.project_id)
                    return None if p is None else self._project_info(s, p)
        return None

    def remove_project(self, project: str | int, by: str | None = None) -> ProjectInfo:
        """Take the project out of every list (the app's project menus, members' lists,
        the background work over projects). Nothing of it is deleted: its images,
        annotations, model versions, jobs and activity stay, and :meth:`restore_project`
        puts it back as it was. Refused while a fine-tuning job of it is queued or running
        (cancel it first). Recorded as ``project_removed`` by ``by``; removing a removed
        project changes nothing."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project, lock=True)   # create_job takes the same lock
            if p.removed_at is not None:
                return self._project_info(s, p)
            live = s.scalar(select(func.count(TrainingJob.id)).where(
                TrainingJob.project_id == p.id, TrainingJob.status.in_(("queued", "running"))))
            if live:
                raise ValidationError(f"project {p.name!r} has a fine-tuning job queued or running: cancel it "
                                      "(Model screen) or let it finish, then remove the project")
            p.removed_at = utcnow()
            self._record(s, Action.PROJECT_REMOVED, by, p.id, f"project {p.name}", {"name": p.name})
            return self._project_info(s, p)

    def restore_project(self, project: str | int, by: str | None = None) -> ProjectInfo:
        """Put a removed project back, with everything it had; recorded as
        ``project_restored``. Restoring a project in use changes nothing."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            if p.removed_at is not None:
                p.removed_at = None
                self._record(s, Action.PROJECT_RESTORED, by, p.id, f"project {p.name}", {"name": p.name})
            return self._project_info(s, p)

    def add_class(self, project: str | int, name: str, color: Any = None) -> ProjectInfo:
        """Append a class with the next free index (never the ignore index)."""
        cname = _clean_name(name)
        hexc = _color_to_hex(color) if color is not None else None
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            existing = s.execute(select(LabelClass.index, LabelClass.name, LabelClass.color)
                                 .where(LabelClass.project_id == p.id)).all()
            with _label_rule():
                labels.check_new_class_name(cname, [n for _, n, _ in existing])
            used = {i for i, _, _ in existing} | {p.ignore_index}
            idx = next((i for i in range(max((i for i, _, _ in existing), default=-1) + 1, 256)
                        if i not in used), None)
            if idx is None:
                idx = next((i for i in range(256) if i not in used), None)
            if idx is None:
                raise ValidationError("no free class index left (0..255)")
            s.add(LabelClass(project_id=p.id, index=idx, name=cname,
                             color=hexc or colors.default_color_for(cname, [c for _, _, c in existing])))
            try:
                s.flush()
            except IntegrityError:
                raise ValidationError(f"class {cname!r} was added concurrently") from None
            return self._project_info(s, p)

    @staticmethod
    def _class_rows(s, p: Project, index: int) -> tuple[list[LabelClass], LabelClass]:
        """The project's class rows and the one with ``index`` (NotFoundError without one)."""
        rows = list(s.scalars(select(LabelClass).where(LabelClass.project_id == p.id)).all())
        target = next((c for c in rows if c.index == index), None)
        if target is None:
            raise NotFoundError(f"project {p.name!r} has no class with index {index}")
        return rows, target

    def rename_class(self, project: str | int, index: int, new_name: str) -> ProjectInfo:
        cname = _clean_name(new_name)
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            rows, target = self._class_rows(s, p, index)
            with _label_rule():
                labels.check_new_class_name(cname, [c.name for c in rows if c.index != index])
            target.name = cname
            s.flush()
            return self._project_info(s, p)

    def remove_class(self, project: str | int, index: int) -> ProjectInfo:
        """Take class ``index`` out of the label set: only a class that no saved revision of
        any of the project's images uses (removed images included), since every revision
        stays loadable as it was saved; a class in use is renamed instead. A project keeps
        at least one class. Stored predictions may hold the index: the caller forgets them."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            rows, target = self._class_rows(s, p, index)
            if len(rows) == 1:
                raise ValidationError(f"{target.name!r} is the project's only class: a project keeps at least one")
            q = (select(Image.filename, Annotation.png).join(Image, Image.id == Annotation.image_id)
                 .where(Image.project_id == p.id).order_by(Annotation.image_id, Annotation.revision)
                 .execution_options(yield_per=256))      # the maps are decoded one at a time
            used = [name for name, png in s.execute(q) if (imaging.decode_class_map(png) == index).any()]
            if used:
                raise ValidationError(
                    f"{target.name!r} is painted in {len(used)} saved revision(s) ({used[0]} first), which keep "
                    "their classes: rename it instead")
            s.delete(target)
            s.flush()
            return self._project_info(s, p)

    def set_class_color(self, project: str | int, index: int, color: Any) -> ProjectInfo:
        hexc = _color_to_hex(color)
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            n = s.execute(update(LabelClass).where(LabelClass.project_id == p.id,
                                                   LabelClass.index == index).values(color=hexc)).rowcount
            if n != 1:
                raise NotFoundError(f"project {p.name!r} has no class with index {index}")
            return self._project_info(s, p)

    # ------------------------------------------------------------------ images

    def set_others_unlabelled(self, project: str | int, on: bool) -> ProjectInfo:
        """Predict the pixels that are none of the project's classes unlabelled (True) or
        as the nearest class (False, the default); see ``models.open_set``."""
        if not isinstance(on, bool):
            raise ValidationError(f"others_unlabelled must be true or false, not {on!r}")
        return self._set_project(project, others_unlabelled=on)

    def add_image(self, project: str | int, data: bytes | str | Path, filename: str | None = None,
                  split: str = "none") -> ImageInfo:
        """Validate, normalise-check and store an image. Invalid input (not an allowed
        format, over ``max_image_megapixels``, a side under ``min_image_side`` px) raises
        :class:`InvalidImageError` before anything is written. The same bytes added
        twice to one project return the existing image with ``duplicate=True`` (a removed
        one too, with ``removed=True``: the caller may restore it)."""
        _check_split(split)
        if isinstance(data, (str, Path)):
            path = Path(data)
            filename = filename or path.name
            data = path.read_bytes()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidImageError(f"image data must be bytes or a path, got {type(data).__name__}")
        data = bytes(data)
        filename = (filename or "image").strip() or "image"
        decoded = imaging.decode_image(data, max_megapixels=self.max_image_megapixels,
                                       min_side=self.min_image_side)
        h, w = decoded.rgb.shape[:2]
        sha = digest(data)
        with self._session() as s:
            pid = self._project_row(s, project).id
            existing = s.scalar(select(Image).where(Image.project_id == pid, Image.sha256 == sha))
            if existing is not None:
                return _image_info(existing, duplicate=True)
            # file first (temp + rename), row second: a crash in between leaves an
            # orphan file for sweep_orphans(), never a row without its file
            self.blobs.write(sha, data)
            im = Image(project_id=pid, sha256=sha, filename=filename[:1000], format=decoded.format,
                       normalised=decoded.normalised, width=w, height=h, split=split,
                       created_at=utcnow(), revision=0, status="unlabelled")
            s.add(im)
            try:
                s.commit()
                return _image_info(im)
            except IntegrityError:
                # lost a race against a concurrent add of the same bytes: unique
                # (project_id, sha256) kept it to one row; the file is shared
                s.rollback()
                existing = s.scalar(select(Image).where(Image.project_id == pid, Image.sha256 == sha))
                if existing is None:
                    raise
                return _image_info(existing, duplicate=True)

    def remove_image(self, image_id: int, by: str | None = None) -> ImageInfo:
        """Take the image out of its project: it leaves every list, queue, count, export,
        review queue and job, and keeps its file, annotations, reviews and predictions,
        so :meth:`restore_image` puts it back as it was. Recorded as ``image_removed``
        by ``by``. Removing a removed image changes nothing (and records nothing)."""
        return self._set_removed(image_id, True, by)

    def restore_image(self, image_id: int, by: str | None = None) -> ImageInfo:
        """Put a removed image back into its project, with everything it had."""
        return self._set_removed(image_id, False, by)

    def _set_removed(self, image_id: int, removed: bool, by: str | None) -> ImageInfo:
        """Set or clear ``removed_at`` and record it, when that changes anything."""
        with self._session() as s, s.begin():
            im = self._image_row(s, image_id)
            if (im.removed_at is not None) != removed:
                im.removed_at = utcnow() if removed else None
                self._record(s, Action.IMAGE_REMOVED if removed else Action.IMAGE_RESTORED, by, im.project_id,
                             im.filename, {"image_id": im.id})
            return _image_info(im)

    def removed_images(self, project: str | int) -> list[ImageInfo]:
        """The project's removed images, the most recently removed first."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            return [_image_info(im) for im in s.scalars(
                select(Image).where(Image.project_id == pid, Image.removed_at.is_not(None))
                .order_by(Image.removed_at.desc(), Image.id.desc()))]

    def get_image(self, image_id: int) -> ImageInfo:
        with self._session() as s:
            return _image_info(self._image_row(s, image_id))

    def image_filenames(self, project: str | int, ids: Iterable[int] | None = None) -> dict[int, str]:
        """{image id: file name} of the project's images (only ``ids`` when given; ids of
        other projects are left out), one query of two columns: what a screen needs to
        name images ("0016E5_07959.jpg" instead of "#12")."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = select(Image.id, Image.filename).where(Image.project_id == pid)
            if ids is not None:
                wanted = sorted({int(i) for i in ids})
                if not wanted:
                    return {}
                q = q.where(Image.id.in_(wanted))
            return {int(i): str(f) for i, f in s.execute(q).all()}

    def image_bytes(self, image_id: int) -> bytes:
        """The original file bytes, verified against their sha256."""
        with self._session() as s:
            sha = self._image_row(s, image_id).sha256
        data = self.blobs.read(sha)
        if digest(data) != sha:
            raise StorageError(f"image {image_id}: file {self.blobs.path(sha)} is corrupt (sha256 mismatch)")
        return data

    def load_image(self, image_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, EXIF orientation applied."""
        data = self.image_bytes(image_id)
        return imaging.decode_image(data, max_megapixels=float("inf"), min_side=1).rgb

    def list_images(self, project: str | int, status: str | None = None, split: str | None = None,
                    order: str = "id", limit: int | None = None, offset: int = 0,
                    review: str | None = None) -> list[ImageInfo]:
        """Images with their annotation status, review state and latest uncertainty, in
        one query. ``order``: "id", "uncertainty" (most uncertain first),
        "review_score" (the model's strongest disagreement first, unscored last) or
        "latest" (the most recently annotated first, never annotated last);
        ``review``: only images in that review state ("pending" / "accepted" / "rejected")."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = select(*_list_columns(self.dialect)).where(Image.project_id == pid, IN_PROJECT)
            if status is not None:
                q = q.where(Image.status == status)
            if review is not None:
                q = q.where(Image.review == _enum_value(ReviewState, review, "review"))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            if order == "uncertainty":
                q = q.order_by(Image.uncertainty.desc().nulls_last(), Image.id)
            elif order == "review_score":
                q = q.order_by(Image.review_score.desc().nulls_last(), Image.id)
            elif order == "latest":
                q = q.order_by(Image.annotated_at.desc().nulls_last(), Image.id.desc())
            elif order == "id":
                q = q.order_by(Image.id)
            else:
                raise ValidationError(f"order must be 'id', 'uncertainty', 'review_score' or 'latest', got {order!r}")
            if limit is not None:
                q = q.limit(limit)
            if offset:
                q = q.offset(offset)
            was_enabled = gc.isenabled()
            gc.disable()   # fetching 10,000 rows allocates ~200k objects: skip needless GC passes
            try:
                return _rows_to_image_infos(s.connection().execute(q).fetchall())
            finally:
                if was_enabled:
                    gc.enable()

    def count_images(self, project: str | int) -> dict[str, int]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.status, func.count()).where(Image.project_id == pid, IN_PROJECT)
                             .group_by(Image.status)).all()
        out = {"unlabelled": 0, "draft": 0, "submitted": 0}
        out.update({k: int(v) for k, v in rows})
        out["total"] = sum(out.values())
        return out

    def set_split(self, image_id: int, split: str) -> ImageInfo:
        _check_split(split)
        with self._session() as s, s.begin():
            im = self._image_row(s, image_id)
            im.split = split
            return _image_info(im)

    def next_image(self, project: str | int, filter: str | None = None,
                   split: str | None = None, exclude: Iterable[int] = ()) -> ImageInfo | None:
        """Active-learning queue: the most uncertain image first (images without a
        prediction last, then by id). ``filter``: "unlabelled" (default), "draft",
        "unsubmitted" (unlabelled or draft), "rejected" (review state rejected: back to
        the annotator) or "any"."""
        statuses = FILTER_STATUSES.get(filter or "unlabelled") if filter != "submitted" else None
        if filter == "rejected":
            cond = Image.review == ReviewState.REJECTED.value
        elif statuses is None:
            raise ValidationError(f"filter must be unlabelled/draft/unsubmitted/rejected/any, got {filter!r}")
        else:
            cond = Image.status.in_(statuses)
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = (select(*_list_columns(self.dialect)).where(Image.project_id == pid, IN_PROJECT, cond)
                 .order_by(Image.uncertainty.desc().nulls_last(), Image.id).limit(1))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            ex = list(exclude)
            if ex:
                q = q.where(Image.id.not_in(ex))
            r = s.execute(q).first()
            return _row_to_image_info(r) if r is not None else None

    def sweep_orphans(self, min_age_s: float = 3600.0) -> list[Path]:
        """Delete image files (and stale temp files) that no row references and that
        are older than ``min_age_s`` (the age guards files of adds in progress)."""
        cutoff = time.time() - min_age_s
        with self._session() as s:
            referenced = set(s.scalars(select(Image.sha256).distinct()))
        removed = []
        for path, sha, mtime in list(self.blobs.iter_files()):
            if mtime > cutoff or (sha is not None and sha in referenced):
                continue
            self.blobs.remove(path)
            removed.append(path)
        return removed

    # ------------------------------------------------------------------ annotations

    def save_annotation(self, image_id: int, class_map: np.ndarray, author: str,
                        status: str = "draft", base_revision: int = 0,
                        correction: dict[str, Any] | None = None) -> AnnotationInfo:
        """Save a new revision (``base_revision + 1``). Raises :class:`ConflictError`
        naming who saved and when if the latest revision is not ``base_revision``;
        nothing is overwritten. Every revision stays readable. A submitted revision
        makes the image's review state "pending" (a draft leaves it as it is); the save
        is recorded in the activity log (``revision_saved``, by ``author``) in the same
        transaction. ``correction``: how much the saved map differs from the prediction
        the labeller started from (``{"changed": share 0..1, "fixes": regions,
        "model_version": id}``, :func:`common.effort`'s measures), kept in that record
        (:meth:`corrections` lists them)."""
        if status not in ANNOTATION_STATUSES:
            raise ValidationError(f"status must be 'draft' or 'submitted', got {status!r}")
        correction = _checked_correction(correction)
        author = _clean_name(author, "author")
        if not isinstance(base_revision, int) or base_revision < 0:
            raise ValidationError(f"base_revision must be an integer >= 0, got {base_revision!r}")
        with self._session() as s:
            im = self._image_row(s, image_id)
            cm = self._validated_map(s, im, class_map)
            png = imaging.encode_class_map(cm)
            new_rev = base_revision + 1
            now = utcnow()
            # The optimistic lock: a conditional UPDATE is atomic on SQLite (one writer)
            # and PostgreSQL (row lock, WHERE re-checked after the other commit), so only
            # one writer moves revision base -> base+1; unique (image_id, revision) backs it up.
            values: dict[str, Any] = dict(revision=new_rev, status=status, annotated_by=author,
                                          annotated_at=now)
            if status == "submitted":
                values["review"] = ReviewState.PENDING.value   # a new submission awaits review
                values["review_score"] = None                   # and a new score
                values["review_evidence"] = None
            try:
                n = s.execute(
                    update(Image).where(Image.id == image_id, Image.revision == base_revision)
                    .values(**values)
                    .execution_options(synchronize_session=False)).rowcount
                if n == 1:
                    s.add(Annotation(image_id=image_id, revision=new_rev, author=author,
                                     status=status, png=png, created_at=now))
                    self._record(s, Action.REVISION_SAVED, author, im.project_id,
                                 f"image {image_id} revision {new_rev}",
                                 {"image_id": image_id, "revision": new_rev, "status": status,
                                  **({"correction": correction} if correction else {})}, now)
                    s.flush()
            except IntegrityError:
                n = 0
            if n != 1:
                s.rollback()
                latest = s.get(Image, image_id, populate_existing=True)
                if latest is None:
                    raise NotFoundError(f"image {image_id} does not exist")
                raise ConflictError(image_id, base_revision, latest.revision, latest.annotated_by,
                                    _utc(latest.annotated_at))
            s.commit()
            return AnnotationInfo(image_id, new_rev, author, status, now, cm.copy())

    def get_annotation(self, image_id: int, revision: int | None = None) -> AnnotationInfo:
        """The latest (or the given) revision with its class map; ``revision == 0`` and
        ``class_map is None`` when the image has no annotation yet."""
        with self._session() as s:
            im = self._image_row(s, image_id)
            rev = im.revision if revision is None else revision
            if rev == 0 and revision is None:
                return AnnotationInfo(image_id, 0, None, "unlabelled", None, None)
            a = s.scalar(select(Annotation).where(Annotation.image_id == image_id,
                                                  Annotation.revision == rev))
            if a is None:
                raise NotFoundError(f"image {image_id} has no annotation revision {rev}")
            return AnnotationInfo(image_id, a.revision, a.author, a.status, _utc(a.created_at),
                                  imaging.decode_class_map(a.png))

    def list_annotation_revisions(self, image_id: int) -> list[AnnotationInfo]:
        """All revisions, oldest first, without class maps (use get_annotation)."""
        with self._session() as s:
            self._image_row(s, image_id)
            rows = s.execute(select(Annotation.revision, Annotation.author, Annotation.status,
                                    Annotation.created_at).where(Annotation.image_id == image_id)
                             .order_by(Annotation.revision)).all()
            return [AnnotationInfo(image_id, r, a, st, _utc(t)) for r, a, st, t in rows]


def _checked_correction(c: dict[str, Any] | None) -> dict[str, Any] | None:
    """A save's correction record as stored: ``changed`` a share in [0, 1], ``fixes`` a
    count >= 0, ``model_version`` an id or None; anything else is refused."""
    if c is None:
        return None
    if not isinstance(c, dict) or set(c) - {"changed", "fixes", "model_version"} or "changed" not in c:
        raise ValidationError("correction must be {'changed': share, 'fixes': count, 'model_version': id}")
    try:
        changed = float(c["changed"])
        fixes = int(c.get("fixes", 0))
        mv = c.get("model_version")
        mv = None if mv is None else int(mv)
    except (TypeError, ValueError):
        raise ValidationError("correction: changed must be a number, fixes and model_version integers") from None
    if not 0.0 <= changed <= 1.0 or fixes < 0:
        raise ValidationError(f"correction: changed must be in [0, 1] and fixes >= 0, got {changed}, {fixes}")
    return {"changed": round(changed, 6), "fixes": fixes, "model_version": mv}
