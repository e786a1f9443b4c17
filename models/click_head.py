"""Click-to-object with a small click-conditioned network (RITM-style, tiny).

The network (:class:`ClickHead`) sees an image at stride 2 (its RGB, the positive and
negative clicks as discs, the previous mask) and at stride 4 (the shipped model's pixel
embeddings projected to a few channels, and four similarity maps: the best cosine of a
pixel's embedding to a positive / a negative click's, and the best chance that the
pixel and a positive / negative click have the same class, as the grow in
:mod:`models.click_object` uses them), and returns the object's mask logits at stride
2, upsampled bilinearly to the image. The similarity maps make it independent of the
label set's size: any label set's class probabilities give them.

Trained on CamVid train objects by ``python -m models.train_clicks`` (iterative click
simulation as in RITM: Sofiiuk et al., "Reviving Iterative Training with Mask Guidance
for Interactive Segmentation", 2022). Weights: ``config.json`` + ``model.safetensors``
in a folder (``weights/click_head``); pickles are never loaded.

:class:`HeadFeatures` is one image prepared for clicks (the network's image-only part
computed once); :func:`head_from_clicks` answers clicks. The app's O tool does not use
it: on held-out CamVid train frames it needed more clicks than the grow
(BENCHMARKS.md, "Clicks to an object"); ``benchmarks/bench_clicks.py`` measures both.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .click_object import connected_to, resume

DEFAULT_HEAD_DIR = Path(__file__).resolve().parent.parent / "weights" / "click_head"
CLICK_RADIUS = 5.0        # a click's disc, image pixels (as RITM's)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass
class HeadConfig:
    emb_dim: int = 64       # the shipped model's pixel embedding size
    proj: int = 8           # embeddings projected to this many channels
    fine: int = 16          # channels at stride 2
    width: int = 32         # channels at stride 4
    dilations: tuple[int, ...] = (1, 2, 4, 8)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HeadConfig":
        d = dict(d)
        d["dilations"] = tuple(d.get("dilations", cls.dilations))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ClickHead(nn.Module):
    """(rgb, clicks, prev) at stride 2 + (embeddings, similarity maps) at stride 4 ->
    mask logits at stride 2."""

    def __init__(self, cfg: HeadConfig = HeadConfig()):
        super().__init__()
        self.cfg = cfg
        f, w = cfg.fine, cfg.width
        self.rgb = nn.Conv2d(3, f, 3, padding=1)            # image-only: cached per image
        self.proj = nn.Conv2d(cfg.emb_dim, cfg.proj, 1)     # image-only: cached per image
        self.maps = nn.Conv2d(3, f, 3, padding=1, bias=False)   # pos, neg discs, previous mask: added (as RITM)
        self.down = _cbr(f, w, stride=2)
        self.mid_in = _cbr(w + cfg.proj + 4 + 3, w)         # + 4 similarity maps, discs and mask at stride 4
        self.mid = nn.ModuleList(_cbr(w, w, dilation=d) for d in cfg.dilations)
        self.lift = nn.Conv2d(w, f, 1)                      # stride 4 -> added to the stride-2 features
        self.up = _cbr(f, f)
        self.out = nn.Conv2d(f, 1, 1)
        # a prior the layers above correct (residual): the grow's rule as a linear map of
        # the similarity maps, the previous mask kept, the clicks' discs on their side
        self.prior = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.prior.weight.copy_(torch.tensor([3.0, -3.0, 7.0, -7.0]).view(1, 4, 1, 1))
            self.prior.bias.fill_(-6.0)
        self.keep = nn.Parameter(torch.tensor([1.0, 3.0]))    # previous mask, click discs

    def image_part(self, rgb: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb (B, 3, H2, W2) in [0, 1], emb (B, E, h, w) -> the click-independent part."""
        return self.rgb((rgb - MEAN) / STD), self.proj(emb)

    def click_part(self, img: tuple[torch.Tensor, torch.Tensor], maps2: torch.Tensor, sims: torch.Tensor) -> torch.Tensor:
        """maps2 (B, 3, H2, W2): positive discs, negative discs, previous mask; sims
        (B, 4, h, w) -> logits (B, 1, H2, W2)."""
        fine0, proj = img
        x = F.relu(fine0 + self.maps(maps2))
        d = self.down(x)
        h, w = d.shape[-2:]
        if proj.shape[-2:] != (h, w):
            proj = F.interpolate(proj, size=(h, w), mode="bilinear", align_corners=False)
            sims = F.interpolate(sims, size=(h, w), mode="bilinear", align_corners=False)
        m4 = F.adaptive_max_pool2d(maps2, (h, w))
        y = self.mid_in(torch.cat([d, proj, sims, m4], 1))
        for layer in self.mid:
            y = y + layer(y)
        y = F.interpolate(self.lift(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        prior = F.interpolate(self.prior(sims), size=x.shape[-2:], mode="bilinear", align_corners=False)
        prior = prior + self.keep[0] * (2 * maps2[:, 2:3] - 1) + self.keep[1] * (maps2[:, 0:1] - maps2[:, 1:2])
        return self.out(self.up(x + y)) + prior

    def forward(self, rgb, emb, maps2, sims):
        return self.click_part(self.image_part(rgb, emb), maps2, sims)

    # -- weights -------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"head": self.cfg.to_dict(), **(extra or {})}, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> "ClickHead":
        """From ``config.json`` + ``model.safetensors`` (safetensors only: no pickle);
        FileNotFoundError when either is missing."""
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
        if not cfg_path.is_file() or not w_path.is_file():
            raise FileNotFoundError(f"no click head in {folder} (config.json + model.safetensors)")
        head = cls(HeadConfig.from_dict(json.loads(cfg_path.read_text())["head"]))
        head.load_state_dict(load_file(str(w_path)), strict=True)
        return head.eval()


# ------------------------------------------------------------------ inputs from clicks

def click_discs(clicks: Sequence[tuple[float, float, bool]], size2: tuple[int, int], scale: float,
                radius: float = CLICK_RADIUS) -> np.ndarray:
    """(2, h, w) float32: positive and negative clicks (image pixels) as discs on a grid
    ``scale`` times coarser than the image."""
    h, w = size2
    out = np.zeros((2, h, w), np.float32)
    r = max(radius / scale, 1.0)
    for x, y, p in clicks:
        cx, cy = (x + 0.5) / scale - 0.5, (y + 0.5) / scale - 0.5
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        out[0 if p else 1, y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
    return out


def _bilinear_at(grid: np.ndarray, x: float, y: float, size: tuple[int, int]) -> np.ndarray:
    """(C,) value of ``grid`` (C, h, w) at image point (x, y), align_corners=False."""
    H, W = size
    _, h, w = grid.shape
    gx = min(max((x + 0.5) * w / W - 0.5, 0.0), w - 1.0)
    gy = min(max((y + 0.5) * h / H - 0.5, 0.0), h - 1.0)
    x0, y0 = int(gx), int(gy)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = gx - x0, gy - y0
    return ((1 - ay) * ((1 - ax) * grid[:, y0, x0] + ax * grid[:, y0, x1])
            + ay * ((1 - ax) * grid[:, y1, x0] + ax * grid[:, y1, x1]))


def similarity_maps(emb: np.ndarray, probs: np.ndarray | None, clicks: Sequence[tuple[float, float, bool]],
                    size: tuple[int, int]) -> np.ndarray:
    """(4, h, w) float32: the best cosine of every cell's unit embedding (``emb`` (E, h, w))
    to a positive click's, the same to a negative click's (-1 without one), and the best
    chance of the same class (``probs`` (K, h, w)) with a positive / negative click (0
    without one or without probabilities)."""
    E, h, w = emb.shape
    out = np.zeros((4, h, w), np.float32)
    out[0:2] = -1.0
    flat = emb.reshape(E, -1)
    pflat = None if probs is None else probs.reshape(len(probs), -1)
    for x, y, p in clicks:
        k = 0 if p else 1
        v = _bilinear_at(emb, x, y, size)
        v = v / max(float(np.linalg.norm(v)), 1e-6)
        np.maximum(out[k], (v @ flat).reshape(h, w), out=out[k])
        if pflat is not None:
            q = _bilinear_at(probs, x, y, size)
            np.maximum(out[k + 2], (q @ pflat).reshape(h, w), out=out[k + 2])
    return out


def load_head(folder: str | Path | None = None) -> ClickHead | None:
    """The trained head from ``folder`` (default ``weights/click_head``), or None when
    its files are missing (callers fall back to the grow)."""
    try:
        return ClickHead.load(folder or DEFAULT_HEAD_DIR)
    except FileNotFoundError:
        return None


class HeadFeatures:
    """One image prepared for the head: its RGB at stride 2, its unit embeddings and
    class probabilities (stride 4), and the head's click-independent part (computed
    once, here)."""

    def __init__(self, head: ClickHead, image: np.ndarray, emb: np.ndarray, probs: np.ndarray | None):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the image must be (H, W, 3)")
        self.head = head
        self.size = (int(image.shape[0]), int(image.shape[1]))
        H, W = self.size
        self.size2 = ((H + 1) // 2, (W + 1) // 2)
        emb = np.asarray(emb, np.float32)
        self.emb = emb / np.maximum(np.linalg.norm(emb, axis=0, keepdims=True), 1e-6)
        self.probs = None if probs is None else np.asarray(probs, np.float32)
        with torch.inference_mode():
            rgb = torch.from_numpy(np.array(image, np.float32)).permute(2, 0, 1)[None] / 255.0
            rgb = F.interpolate(rgb, size=self.size2, mode="area")
            self.img = head.image_part(rgb, torch.from_numpy(self.emb)[None])

    def logits(self, clicks: Sequence[tuple[float, float, bool]], prev: np.ndarray | None) -> torch.Tensor:
        """(H2, W2) mask logits at stride 2 for the clicks and the previous mask."""
        discs = click_discs(clicks, self.size2, 2.0)
        if prev is None:
            p2 = np.zeros((1, *self.size2), np.float32)
        else:
            t = torch.from_numpy(np.asarray(prev, np.float32))[None, None]
            p2 = F.interpolate(t, size=self.size2, mode="area")[0].numpy()
        maps2 = torch.from_numpy(np.concatenate([discs, p2]))[None]
        sims = torch.from_numpy(similarity_maps(self.emb, self.probs, clicks, self.size))[None]
        with torch.inference_mode():
            return self.head.click_part(self.img, maps2, sims)[0, 0]

    def mask(self, clicks: Sequence[tuple[float, float, bool]], prev: np.ndarray | None) -> np.ndarray:
        """(H, W) bool: the object after these clicks, given the mask before the last one."""
        lg = self.logits(clicks, prev)
        up = F.interpolate(lg[None, None], size=self.size, mode="bilinear", align_corners=False)[0, 0]
        return (up > 0).numpy()


def head_from_clicks(feat: HeadFeatures, clicks: Sequence[tuple[float, float, bool]],
                     states: dict | None = None, connected: bool = False, first=None) -> np.ndarray:
    """(H, W) bool from clicks in order, ``(x, y, positive)`` each: replayed one click at a
    time from an empty mask, each step seeing the clicks so far and the mask before it
    (as the head was trained); ``states`` caches {clicks prefix: mask} so that a new
    click costs one step. Without a positive click the mask is empty. ``connected``:
    each step keeps only the parts 8-connected to a positive click. ``first(clicks) ->
    mask``: what answers the first click instead of the head (e.g. the grow of
    :mod:`models.click_object`); the head then corrects from its mask."""
    H, W = feat.size
    cl = []
    for x, y, p in clicks:
        if not (0 <= x < W and 0 <= y < H):
            raise ValueError(f"click ({x:g}, {y:g}) is outside the {W}x{H} image")
        cl.append((int(x), int(y), bool(p)))
    if not any(p for _, _, p in cl):
        return np.zeros((H, W), bool)
    mask, start = resume(states, cl, (H, W))
    for k in range(start, len(cl)):
        if k == 0 and first is not None and cl[0][2]:
            mask = np.asarray(first(cl[:1]), bool)
        elif any(p for _, _, p in cl[:k + 1]):
            mask = feat.mask(cl[:k + 1], mask)
            if connected:
                mask = connected_to(mask, [(x, y) for x, y, p in cl[:k + 1] if p])
        if states is not None:
            states[tuple(cl[:k + 1])] = mask.copy()
    return mask
