"""Projects and their label sets: the demo project, new projects, classes.

:class:`ProjectsMixin` is the part of :class:`segui.handlers.Studio` behind the
Projects screen's label-set edits and the demo project made on an empty database.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.colors import is_hex_color
from common.labels import LabelSetError, parse_label_text, validate_class_names
from models.data import load_label
from storage import NotFoundError, ProjectInfo, ValidationError

from .access import Principal
from .errors import UserError
from .imageops import hex_color

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_AUTHOR = "CamVid ground truth"  # who submitted the demo's labelled images
DEMO_PROJECT = "CamVid demo"


def parse_classes(text: str) -> list[dict[str, Any]]:
    """Label set from free text (``common.labels.parse_label_text``), errors as UserError."""
    try:
        return parse_label_text(text)
    except LabelSetError as e:
        raise UserError(str(e)) from None


class ProjectsMixin:
    """Studio's projects and label sets."""

    def ensure_demo(self, demo_dir: Path = DEMO_DIR) -> ProjectInfo | None:
        """On an empty database: the CamVid demo project with its model, street images to
        label (``demo_dir/*.jpg``, predicted now) and images already labelled
        (``demo_dir/labelled/NAME.jpg`` with its class map ``NAME.png``: submitted as
        :data:`DEMO_AUTHOR`, the automatic split puts them in train or val), so that the
        first fine-tuning job has val images to be promoted on: a whole round of the loop
        runs in the demo (benchmarks/bench_demo_round.py)."""
        if self.store.list_projects(include_removed=True):     # a removed demo stays removed
            return None
        spec = json.loads((demo_dir / "classes.json").read_text())
        p = self.store.create_project(DEMO_PROJECT, spec["classes"], ignore_index=spec["ignore_index"])
        self.model_version(p.id)
        for f in sorted(demo_dir.glob("*.jpg")):
            info = self.store.add_image(p.id, f, f.name, split="none")
            self.predict(p.id, info.id)
        for f in sorted((demo_dir / "labelled").glob("*.jpg")):
            info = self.store.add_image(p.id, f, f.name, split="none")
            truth = load_label(f.with_suffix(".png"), (info.width, info.height))
            self.store.save_annotation(info.id, truth, DEMO_AUTHOR, "submitted", base_revision=0)
            self.assign_split(info.id)
        self.instant_relearn(p.id)      # the images to label are shown adapted to the labelled ones
        return self.store.get_project(p.id)

    def project(self, project: str | int) -> ProjectInfo:
        """The project (its id, classes, colours) by name or id."""
        return self.store.get_project(project)

    def image_counts(self, project: str | int) -> dict[str, int]:
        """The project's images: total, unlabelled, draft, submitted."""
        return self.store.count_images(project)

    def project_names(self, who: Principal | None = None) -> list[str]:
        """The projects the caller sees: all, or with accounts their projects."""
        who = self._who(who)
        if who.member_only:
            return [p.name for p in self.store.projects_for(who.name)]
        return [p.name for p in self.store.list_projects()]

    def create_project(self, name: str, classes_text: str) -> ProjectInfo:
        name = (name or "").strip()
        if not name:
            raise UserError("give the project a name")
        classes = parse_classes(classes_text)
        try:
            p = self.store.create_project(name, classes)
        except ValidationError as e:
            raise UserError(str(e)) from None
        self.record("project_created", p.id, f"project {p.name}, {len(p.classes)} classes",
                    {"classes": p.class_names})
        self.model_version(p.id)
        self.warm_up(p.id)
        return p

    def label_set_text(self, path: str | Path | None) -> str:
        """The text of the New project box's label set, from an export (a zip of this studio,
        CVAT or Label Studio, or its classes.json, labelmap.txt or COCO json): one class per
        line, with its colour where the file gives one."""
        from .upload_files import label_set_of
        if not path:
            raise UserError("choose an export file (a zip, classes.json, labelmap.txt or a COCO json)")
        try:
            classes = label_set_of(path)
        except (ValidationError, OSError) as e:
            raise UserError(str(e)) from None
        if not classes:
            raise UserError(f"{Path(path).name} names no class")
        return "\n".join(name + (f" {hex_color(color)}" if color else "") for name, color in classes)

    def rename_project(self, project: str | int, new_name: str, who: Principal | None = None) -> ProjectInfo:
        """Give the project another name (unique, removed projects' names included); its
        images, annotations, models and jobs are untouched. A page that still shows the
        old name reaches it under the new one (:meth:`current_project_name`)."""
        if not project:
            raise UserError("pick a project first")
        if not (new_name or "").strip():
            raise UserError("type the project's new name")
        try:
            return self.store.rename_project(self.project(project).id, new_name.strip(), by=self._who(who).actor)
        except ValidationError as e:
            raise UserError(str(e)) from None

    def remove_project(self, project: str | int, who: Principal | None = None) -> ProjectInfo:
        """Take the project out of every list; nothing of it is deleted and
        :meth:`restore_project` puts it back. Refused while a job of it is queued or running."""
        if not project:
            raise UserError("pick a project first")
        try:
            return self.store.remove_project(self.project(project).id, by=self._who(who).actor)
        except ValidationError as e:
            raise UserError(str(e)) from None

    def restore_project(self, project: str | int, who: Principal | None = None) -> ProjectInfo:
        """Put a removed project back, with everything it had."""
        if not project:
            raise UserError("pick a removed project to restore")
        return self.store.restore_project(self.project(project).id, by=self._who(who).actor)

    def current_project_name(self, name: Any) -> Any:
        """``name``, or the name its project has now when it was renamed since: a page
        (or an event queued before the rename) that still sends the old name reaches the
        same project. A name no project had, and anything but a non-empty name (an id,
        None), is returned as it is (refused later, or not a name to map)."""
        if not isinstance(name, str) or not name:
            return name
        try:
            return self.store.get_project(name).name
        except NotFoundError:
            renamed = self.store.renamed_project(name)
            return renamed.name if renamed is not None else name

    def renamed_notice(self, session: str | None, former: str, name: str) -> str | None:
        """What to tell a browser session whose page still sends a renamed project's
        ``former`` name (its menus were made before the rename, in another window): a
        line the first time, None after (its actions reach the project either way)."""
        from collections import OrderedDict

        from .admin import SESSION_NAMES_KEPT
        told = self.__dict__.setdefault("_renames_told", OrderedDict())
        key = (session, former, name)
        with self._cache_lock:
            if key in told:
                return None
            told[key] = True
            while len(told) > SESSION_NAMES_KEPT:
                told.popitem(last=False)
        return (f"Project {former!r} was renamed {name!r} (in another window); this page still shows the "
                "old name and works on the project as it is: reload it to see the new name.")

    def removed_project_names(self) -> list[str]:
        """The removed projects, the most recently removed first (admins restore them)."""
        return [p.name for p in self.store.removed_projects()]

    def add_class(self, project: str, name: str, color: str | None = None) -> ProjectInfo:
        if not (name or "").strip():
            raise UserError("type a class name to add")
        try:
            before = {c.index for c in self.store.get_project(project).classes}
            p = self.store.add_class(project, name.strip(), color or None)
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        added = next(c for c in p.classes if c.index not in before)
        self.record("classes_changed", p.id, f"class {added.name!r} added", {"added": added.name, "index": added.index})
        self.label_set_changed(p.id)      # the model is asked for the new word from now on
        return p

    def remove_class(self, project: str, name: str) -> ProjectInfo:
        """Take a class out of the label set by name (a class added by mistake stays among the
        words every prediction chooses from): only one that no saved revision uses; the
        model is asked for the other words from now on."""
        if not project:
            raise UserError("pick a project first")
        key = (name or "").strip().casefold()
        if not key:
            raise UserError("type the name of the class to remove")
        p = self.store.get_project(project)
        target = next((c for c in p.classes if c.name.casefold() == key), None)
        if target is None:
            raise UserError(f"the project has no class {name.strip()!r} (its classes: {', '.join(p.class_names)})")
        try:
            p = self.store.remove_class(p.id, target.index)
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        self.record("classes_changed", p.id, f"class {target.name!r} removed",
                    {"removed": target.name, "index": target.index})
        self.label_set_changed(p.id)      # its stored predictions may hold the index
        return p

    def update_classes(self, project: str, rows: list[list[Any]]) -> ProjectInfo:
        """Apply an edited label table (index, name, colour); renames and colours only."""
        p = self.store.get_project(project)
        current = {c.index: c for c in p.classes}
        wanted = []
        for row in rows or []:
            if row is None or len(row) < 3 or str(row[0]).strip() == "":
                continue
            try:
                idx = int(float(row[0]))
            except ValueError:
                raise UserError(f"class index {row[0]!r} is not a number") from None
            if idx not in current:
                raise UserError(f"no class with index {idx}; add new classes by name")
            name = str(row[1] or "").strip()
            if not name:
                raise UserError(f"class {idx} needs a name")
            color = str(row[2] or "").strip()
            if not is_hex_color(color):
                raise UserError(f"class {name!r}: colour must look like #rrggbb, got {color!r}")
            wanted.append((idx, name, color.lower()))
        final = {c.index: c.name for c in p.classes}
        final.update({idx: name for idx, name, _ in wanted})
        try:   # the one label-set rule, on the whole set before anything is renamed
            validate_class_names(list(final.values()))
        except LabelSetError as e:
            raise UserError(str(e)) from None
        renames = [(idx, name) for idx, name, _ in wanted if current[idx].name != name]
        recolours = [(idx, color) for idx, _, color in wanted if hex_color(current[idx].color) != color]
        try:
            # two phases, so that swapping two names does not trip the uniqueness check
            if len(renames) > 1:
                for idx, _ in renames:
                    self.store.rename_class(project, idx, f"__renaming_{idx}__")
            for idx, name in renames:
                self.store.rename_class(project, idx, name)
            for idx, color in recolours:
                self.store.set_class_color(project, idx, color)
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        if renames or recolours:
            parts = [f"{current[idx].name!r} renamed {name!r}" for idx, name in renames]
            parts += [f"{final[idx]!r} recoloured" for idx, _ in recolours]
            self.record("classes_changed", p.id, "; ".join(parts),
                        {"renamed": [[idx, current[idx].name, name] for idx, name in renames],
                         "recoloured": [idx for idx, _ in recolours]})
        if renames:                       # other words: other predictions (colours alone change none)
            self.label_set_changed(project)
        return self.store.get_project(project)
