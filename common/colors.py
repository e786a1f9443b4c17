"""Default class colours: the one place that invents a colour for a class.

A class whose name (or a synonym, singular or plural, any case, spaces / underscores /
hyphens ignored) is in :data:`KNOWN_COLORS` gets the colour people know from
Cityscapes / CamVid: road dark purple, sky steel blue, vegetation green, car dark
blue, pedestrian crimson... Unless that colour is too close to one already taken in
the label set (:func:`too_close`): then, like a class with an unknown name, it gets
the first colour of :func:`palette` far enough from every taken colour. The palette is
a fixed, deterministic sequence of well-separated colours, none near black or white.

Closeness is perceptual: CIEDE2000 colour difference with lightness differences
weighted by half (``kL = 2``), because class colours are seen blended over an image,
where two colours of one hue that differ only in lightness (olive vs dark olive) are
easily confused. Two colours are too close below :data:`MIN_DISTANCE`.
"""
from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

RGB = tuple[int, int, int]
MIN_DISTANCE = 15.0       # CIEDE2000 (kL=2) below which two class colours are "too close"
PALETTE_SIZE = 64          # at most; palette() stops where colours would come closer than MIN_DISTANCE

# Cityscapes colours (CamVid's own where Cityscapes has none), with the names and
# synonyms that mean the class. Keys are written plainly; matching uses _key().
_KNOWN: dict[RGB, tuple[str, ...]] = {
    (128, 64, 128): ("road", "street", "roadway", "carriageway", "drivable area"),
    (244, 35, 232): ("sidewalk", "pavement", "footpath", "footway", "walkway"),
    (70, 70, 70): ("building", "house", "architecture", "facade"),
    (102, 102, 156): ("wall",),
    (190, 153, 153): ("fence", "railing", "barrier"),
    (153, 153, 153): ("pole", "column pole", "post", "lamp post", "street light", "polegroup"),
    (250, 170, 30): ("traffic light", "traffic signal", "signal"),
    (220, 220, 0): ("traffic sign", "sign", "sign symbol", "road sign", "street sign", "signage"),
    (107, 142, 35): ("vegetation", "tree", "bush", "shrub", "plant", "foliage", "hedge"),
    (152, 251, 152): ("terrain", "grass", "lawn", "soil"),
    (70, 130, 180): ("sky", "heavens"),
    (220, 20, 60): ("person", "pedestrian", "people", "human", "walker", "man", "woman", "child"),
    (255, 0, 0): ("rider", "bicyclist", "cyclist", "motorcyclist", "biker"),
    (0, 0, 142): ("car", "automobile", "vehicle", "van"),
    (0, 0, 70): ("truck", "lorry"),
    (0, 60, 100): ("bus", "coach"),
    (0, 80, 100): ("train", "tram", "railway"),
    (0, 0, 230): ("motorcycle", "motorbike", "scooter", "moped"),
    (119, 11, 32): ("bicycle", "bike", "cycle"),
    (61, 230, 250): ("water", "river", "lake", "sea"),
    (64, 128, 64): ("animal", "dog", "cat"),
    (250, 170, 160): ("parking", "parking lot"),
    (230, 150, 140): ("rail track", "rails", "track"),
    (150, 100, 100): ("bridge",),
    (150, 120, 90): ("tunnel",),
    (180, 165, 180): ("guard rail",),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).casefold())


KNOWN_COLORS: dict[str, RGB] = {}
for _rgb, _names in _KNOWN.items():
    for _n in _names:
        KNOWN_COLORS.setdefault(_key(_n), _rgb)


def known_color(name: str) -> RGB | None:
    """The recognisable colour of a class name or its synonym/plural, or None."""
    k = _key(name)
    for cand in (k, k[:-1] if k.endswith("s") else None, k[:-2] if k.endswith("es") else None):
        if cand and cand in KNOWN_COLORS:
            return KNOWN_COLORS[cand]
    return None


# ------------------------------------------------------------------ colour values

HEX_COLOR = r"#[0-9a-fA-F]{6}"   # the one pattern of a colour written as text: '#rrggbb'


def is_hex_color(text: Any) -> bool:
    """``text`` is a colour written '#rrggbb' (hex digits in either case)."""
    return isinstance(text, str) and re.fullmatch(HEX_COLOR, text) is not None


def as_rgb(color: Any) -> RGB:
    """'#rrggbb' or (r, g, b) with components 0..255 -> (r, g, b); ValueError otherwise."""
    if isinstance(color, str):
        if not is_hex_color(color):
            raise ValueError(f"colour {color!r} is not '#rrggbb'")
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    try:
        r, g, b = (int(v) for v in color)
    except (TypeError, ValueError):
        raise ValueError(f"colour {color!r} is not '#rrggbb' or (r, g, b)") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError(f"colour {color!r} has a component outside 0..255")
    return r, g, b


def as_hex(color: Any) -> str:
    """'#rrggbb' (lowercase) for '#rrggbb' or (r, g, b); ValueError otherwise."""
    return "#{:02x}{:02x}{:02x}".format(*as_rgb(color))


def _lab(rgb: Any) -> np.ndarray:
    """sRGB (..., 3) 0..255 -> CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _delta_e(lab1: np.ndarray, lab2: np.ndarray, k_l: float = 2.0) -> np.ndarray:
    """CIEDE2000 colour difference (broadcasting over leading axes)."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, float), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, float), -1, 0)
    cbar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(cbar7 / (cbar7 + 25.0 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = h2 - h1
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1 * c2 == 0, 0, dh)
    d_h = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    lbar, cbar = (L1 + L2) / 2, (c1 + c2) / 2
    hsum = h1 + h2
    hbar = np.where(c1 * c2 == 0, hsum, np.where(np.abs(h1 - h2) <= 180, hsum / 2,
                                                  np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(hbar - 30)) + 0.24 * np.cos(np.radians(2 * hbar))
         + 0.32 * np.cos(np.radians(3 * hbar + 6)) - 0.20 * np.cos(np.radians(4 * hbar - 63)))
    s_l = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cbar, 1 + 0.015 * cbar * t
    cbar7 = cbar ** 7
    r_t = (-np.sin(np.radians(60 * np.exp(-(((hbar - 275) / 25) ** 2))))
           * 2 * np.sqrt(cbar7 / (cbar7 + 25.0 ** 7)))
    dl, dc, dhh = (L2 - L1) / (k_l * s_l), (c2 - c1) / s_c, d_h / s_h
    return np.sqrt(dl ** 2 + dc ** 2 + dhh ** 2 + r_t * dc * dhh)


def color_distance(a: Any, b: Any) -> float:
    """Perceptual distance of two colours ('#rrggbb' or (r, g, b)); see the module doc."""
    return float(_delta_e(_lab(as_rgb(a)), _lab(as_rgb(b))))


def too_close(color: Any, taken: Iterable[Any]) -> bool:
    """True when ``color`` is closer than :data:`MIN_DISTANCE` to a colour in ``taken``."""
    taken_rgb = [as_rgb(c) for c in taken]
    return bool(taken_rgb) and float(_delta_e(_lab(as_rgb(color)), _lab(taken_rgb)).min()) < MIN_DISTANCE


# ------------------------------------------------------------------ the palette

@functools.cache
def _candidates() -> tuple[np.ndarray, np.ndarray]:
    """An sRGB grid (step 15) without colours near black or white: (rgb, lab)."""
    g = np.arange(0, 256, 15)
    rgb = np.array(list(itertools.product(g, g, g)))
    lab = _lab(rgb)
    keep = (lab[:, 0] > 25) & (lab[:, 0] < 92)
    return rgb[keep], lab[keep]


def _farthest(taken_lab: np.ndarray, n: int, min_distance: float = 0.0) -> list[RGB]:
    """Up to ``n`` candidate colours picked one by one, each the farthest from black,
    white, ``taken_lab`` and the ones picked before it (greedy max-min); stops early
    when the best candidate is nearer than ``min_distance``."""
    rgb, lab = _candidates()
    seeds = np.concatenate([_lab([(0, 0, 0), (255, 255, 255)]), np.reshape(taken_lab, (-1, 3))])
    d = _delta_e(lab[:, None, :], seeds[None, :, :]).min(1)
    out: list[RGB] = []
    while len(out) < n:
        j = int(np.argmax(d))
        if out and d[j] < min_distance:
            break
        out.append(tuple(int(v) for v in rgb[j]))
        d = np.minimum(d, _delta_e(lab, lab[j]))
    return out


@functools.cache
def palette() -> tuple[RGB, ...]:
    """The fixed sequence of colours given to classes without a recognisable colour:
    every pair, and each colour and black or white, at least :data:`MIN_DISTANCE`
    apart (30 colours; computed once, the same on every machine)."""
    return tuple(_farthest(np.empty((0, 3)), PALETTE_SIZE, MIN_DISTANCE))


# ------------------------------------------------------------------ defaults

@functools.cache
def _palette_lab() -> np.ndarray:
    return _lab(palette())


def _free_colors(used: list[RGB], n: int) -> list[RGB]:
    """``n`` colours for classes without a recognisable one: palette colours in order,
    skipping any too close to ``used`` or to one picked before; when the palette runs
    out, the colours farthest from all of those (best effort)."""
    pal_lab = _palette_lab()
    d = (_delta_e(pal_lab[:, None, :], _lab(used)[None, :, :]).min(1) if used
         else np.full(len(pal_lab), np.inf))
    out: list[RGB] = []
    while len(out) < n:
        free = np.flatnonzero(d >= MIN_DISTANCE)
        if not free.size:
            break
        j = int(free[0])
        out.append(palette()[j])
        d = np.minimum(d, _delta_e(pal_lab, pal_lab[j]))
    if len(out) < n:
        out += _farthest(_lab(used + out), n - len(out))
    return out


def default_colors(names: Sequence[str], taken: Iterable[Any] = ()) -> list[str]:
    """'#rrggbb' for each name, none too close to ``taken`` ('#rrggbb' or (r, g, b):
    the colours already used in the label set) or to each other. Recognisable
    colours are given first (in name order), then palette colours to the rest."""
    used = [as_rgb(c) for c in taken]
    out: list[RGB | None] = [None] * len(names)
    for i, n in enumerate(names):
        k = known_color(n)
        if k is not None and not too_close(k, used):
            out[i] = k
            used.append(k)
    rest = [i for i, c in enumerate(out) if c is None]
    for i, c in zip(rest, _free_colors(used, len(rest))):
        out[i] = c
    return [as_hex(c) for c in out]


def default_color_for(name: str, taken: Iterable[Any] = ()) -> str:
    """'#rrggbb' for one new class ``name`` given the label set's colours ``taken``."""
    return default_colors([name], taken)[0]


def fill_colors(names: Sequence[str], colors: Sequence[Any | None]) -> list[str]:
    """Complete a label set's colours: ``colors[i]`` where given, else a default
    colour chosen with every given colour taken. Returns '#rrggbb' strings."""
    given = [as_hex(c) for c in colors if c is not None]
    missing = [n for n, c in zip(names, colors) if c is None]
    defaults = iter(default_colors(missing, taken=given))
    return [as_hex(c) if c is not None else next(defaults) for c in colors]
