"""The one rule for class names and label sets.

A class name is text with its whitespace collapsed ("traffic   light" -> "traffic
light"), non-empty and at most :data:`MAX_NAME_LENGTH` characters. A label set is a
non-empty list of such names, unique ignoring case (``str.casefold``): names that
differ only by case or spacing are the same class. Errors are :class:`LabelSetError`
(a ``ValueError``) whose message says what to fix.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .colors import HEX_COLOR

MAX_NAME_LENGTH = 200
# Unicode categories refused in names: controls (Cc: NUL, escapes) and format characters
# (Cf: zero-width space U+200B, right-to-left override U+202E, ...), which make two
# names look alike or one look like another. Whitespace (tab, newline) is collapsed.
INVISIBLE = frozenset({"Cc", "Cf"})


class LabelSetError(ValueError):
    """A class name or label set that breaks the rule; the message says how to fix it."""


def collapse_spaces(text: str) -> str:
    """``text`` with runs of whitespace made one space and the ends stripped."""
    return " ".join(text.split())


def clean_class_name(name: Any, *, what: str = "class name") -> str:
    """``name`` with whitespace collapsed, or :class:`LabelSetError` when it is not
    text, is empty, holds a control or invisible character (:data:`INVISIBLE`) or is
    longer than :data:`MAX_NAME_LENGTH` characters. ``what``
    names the thing in messages (storage uses the same rule for project names)."""
    if not isinstance(name, str) or not name.strip():
        raise LabelSetError(f"{what} must be non-empty text, got {name!r}")
    bad = next((c for c in name if unicodedata.category(c) in INVISIBLE and not c.isspace()), None)
    if bad is not None:
        raise LabelSetError(f"{what} contains an invisible or control character "
                            f"(U+{ord(bad):04X} {unicodedata.name(bad, 'control character')}): "
                            "type the name again without it")
    cleaned = collapse_spaces(name)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise LabelSetError(f"{what} is longer than {MAX_NAME_LENGTH} characters "
                            f"({len(cleaned)}): shorten {cleaned[:40]!r}...")
    return cleaned


def name_key(name: str) -> str:
    """The identity of a class name: two names with the same key are one class."""
    return collapse_spaces(name).casefold()


def _duplicate(name: str, first: str) -> str:
    same = "" if name == first else f" (the same as {first!r}: names that differ only by case or spacing are one class)"
    return f"duplicate class name {name!r}{same}: class names must be unique, rename or remove one"


def validate_class_names(names: Iterable[str]) -> list[str]:
    """Cleaned names of a label set, or :class:`LabelSetError` for an empty set, an
    empty or over-long name, or two names that are one class. A single string is a
    ``TypeError`` (a list of names was meant)."""
    if isinstance(names, str):
        raise TypeError("class names must be a list of strings, e.g. ['sky', 'road'], not one string")
    raw = list(names)
    if not raw:
        raise LabelSetError("the label set is empty: give at least one class name")
    cleaned = [clean_class_name(n, what=f"class name at position {i}") for i, n in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, n in enumerate(cleaned):
        j = seen.setdefault(name_key(n), i)
        if j != i:
            raise LabelSetError(f"{_duplicate(n, cleaned[j])} (positions {j} and {i})")
    return cleaned


def check_new_class_name(name: Any, existing: Iterable[str]) -> str:
    """``name`` cleaned, or :class:`LabelSetError` when it is one class with a name in
    ``existing`` (adding or renaming a class in a label set)."""
    cname = clean_class_name(name)
    key = name_key(cname)
    for other in existing:
        if name_key(other) == key:
            raise LabelSetError(_duplicate(cname, other))
    return cname


_ITEM = re.compile(rf"^(.*?)\s*({HEX_COLOR})?$")


def parse_label_text(text: str | None) -> list[dict[str, str]]:
    """A label set typed as free text: one class per line, or separated by commas or
    semicolons, each ``name`` or ``name #rrggbb``. Returns ``[{"name": ...}]`` with a
    ``"color"`` key where one was given, in order; the names pass
    :func:`validate_class_names`. Raises :class:`LabelSetError`."""
    if text is None or not str(text).strip():
        raise LabelSetError("the label set is empty: give at least one class name")
    out: list[dict[str, str]] = []
    for item in (s.strip() for s in re.split(r"[\n,;]+", str(text))):
        if not item:
            continue
        m = _ITEM.match(item)
        name, color = m.group(1).strip(), m.group(2)
        if not name:
            raise LabelSetError(f"a class has a colour but no name: {item!r}")
        out.append({"name": name, "color": color} if color else {"name": name})
    for spec, cleaned in zip(out, validate_class_names([c["name"] for c in out])):
        spec["name"] = cleaned
    return out


@dataclass(frozen=True)
class Relabel:
    """Class maps labelled with one label set, read in another's indices: classes are
    matched by name (:func:`name_key`), so an export of one project imports into another
    whatever the order of their classes. Made by :func:`relabel_by_name`; calling it on
    a (H, W) uint8 class map returns the map in the target's indices, or raises
    :class:`LabelSetError` naming what the map uses that the target lacks."""
    lut: np.ndarray                 # (256,) uint8: source value -> target index
    known: np.ndarray               # (256,) bool: the source names the value (or it is its ignore index)
    missing: Mapping[int, str]      # source index -> name of a class the target has no class for
    target: str                     # names the target in messages, e.g. "project 'streets'"

    def __call__(self, class_map: np.ndarray) -> np.ndarray:
        values = np.flatnonzero(np.bincount(class_map.ravel(), minlength=256))
        unnamed = [int(v) for v in values if not self.known[v]]
        if unnamed:
            raise LabelSetError(f"the labels hold value(s) {', '.join(map(str, unnamed[:8]))} that classes.json "
                                "does not name")
        lacking = [self.missing[int(v)] for v in values if int(v) in self.missing]
        if lacking:
            raise LabelSetError(f"the labels use class(es) {', '.join(map(repr, lacking[:8]))} that {self.target} "
                                "does not have: add them to its label set (the Projects screen), then try again")
        return self.lut[class_map]


def relabel_by_name(source: Mapping[int, str], source_ignore: int, target: Mapping[int, str],
                    target_ignore: int, target_label: str = "the project") -> Relabel:
    """How class maps labelled with ``source`` ({index: class name}; ``source_ignore`` for
    unlabelled pixels) read in ``target``'s indices (:class:`Relabel`). A source class the
    target lacks only refuses a map that uses it. Raises :class:`LabelSetError` for a
    source that names one class twice, or uses an index outside 0-255."""
    lut = np.full(256, target_ignore, np.uint8)
    known = np.zeros(256, bool)
    by_key = {name_key(n): int(i) for i, n in target.items()}
    seen: dict[str, str] = {}
    missing: dict[int, str] = {}
    for index, name in source.items():
        index = int(index)
        if not 0 <= index <= 255 or index == source_ignore:
            raise LabelSetError(f"class {name!r} has index {index}: indices are 0-255 and not the "
                                f"ignore index {source_ignore}")
        if name_key(name) in seen:
            raise LabelSetError(_duplicate(name, seen[name_key(name)]))
        if known[index]:
            raise LabelSetError(f"index {index} is named twice")
        seen[name_key(name)] = name
        known[index] = True
        if name_key(name) in by_key:
            lut[index] = by_key[name_key(name)]
        else:
            missing[index] = collapse_spaces(name)
    if 0 <= source_ignore <= 255:
        known[source_ignore] = True
        lut[source_ignore] = target_ignore
    return Relabel(lut, known, missing, target_label)
