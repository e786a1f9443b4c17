"""Text-conditioned FPN decoder: four image scales + class embeddings -> pixel embeddings.

Each scale is conditioned on the label set twice: FiLM from the pooled label-set
embedding, and pixel-to-word attention (each pixel attends over the K class
embeddings, as in LAVT) at strides 16 and 8. The output is a unit-norm pixel
embedding at stride 4; the segmenter compares it with each class embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderConfig:
    channels: int = 96  # FPN width
    embed_dim: int = 64  # joint pixel/word space
    attn_dim: int = 64
    attention_scales: tuple[int, ...] = (16, 8)  # strides with pixel-to-word attention


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class SepConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, each with BN + ReLU (cheap at stride 4)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNReLU(cin, cin, 3, groups=cin), ConvBNReLU(cin, cout, 1))


class TextFusion(nn.Module):
    """FiLM from the pooled label set + pixel-to-word attention over the K classes."""

    def __init__(self, channels: int, embed_dim: int, attn_dim: int, attention: bool):
        super().__init__()
        self.film = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.attention = attention
        if attention:
            self.q = nn.Conv2d(channels, attn_dim, 1)
            self.k = nn.Linear(embed_dim, attn_dim)
            self.v = nn.Linear(embed_dim, channels)
            self.gate = nn.Parameter(torch.zeros(1))
            self.scale = attn_dim**-0.5

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # x: (B, C, h, w); text: (K, E)
        gamma, beta = self.film(text.mean(0)).chunk(2)  # (C,), (C,)
        x = x * (1 + gamma.view(1, -1, 1, 1)) + beta.view(1, -1, 1, 1)
        if self.attention:
            B, C, h, w = x.shape
            q = self.q(x).flatten(2).transpose(1, 2)  # (B, hw, A)
            attn = torch.softmax(q @ self.k(text).T * self.scale, dim=-1)  # (B, hw, K)
            ctx = (attn @ self.v(text)).transpose(1, 2).reshape(B, C, h, w)
            x = x + self.gate * ctx
        return x


def upsample_to(x: torch.Tensor, size) -> torch.Tensor:
    """A coarser level (stride 2s) brought to a finer one (stride s): bilinear by exactly 2,
    cropped to ``size``. A stride-2 convolution (odd kernel, padding k // 2) gives ceil(n / 2)
    cells whose centres sit on every second fine cell, so a factor of exactly 2 keeps the
    geometry the network was trained with (crops whose sides are multiples of 32) at any
    input size; interpolating to ``size`` (e.g. 12 -> 23 rows for a 360-px image) would
    stretch the coarse map and shift it by up to half a coarse cell at the far edge."""
    h, w = size
    if 2 * x.shape[-2] < h or 2 * x.shape[-1] < w:   # not a stride-2 pair: plain resize
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)[..., :h, :w]


class TextConditionedFPN(nn.Module):
    def __init__(self, in_channels: list[int], config: DecoderConfig):
        super().__init__()
        self.config = config
        C, E = config.channels, config.embed_dim
        strides = [4, 8, 16, 32]
        self.lateral = nn.ModuleList(ConvBNReLU(c, C, 1) for c in in_channels)
        self.fusion = nn.ModuleList(
            TextFusion(C, E, config.attn_dim, s in config.attention_scales) for s in strides
        )
        self.smooth = nn.ModuleList(SepConv(C, C) for _ in strides)
        self.head = nn.Sequential(SepConv(C, C), nn.Conv2d(C, E, 1))
        self.out_channels = E

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        # feats: strides 4..32, text: (K, E) -> (B, E, H/4, W/4) unit-norm pixel embeddings
        x = None
        for i in reversed(range(len(feats))):
            lat = self.lateral[i](feats[i])
            if x is not None:
                lat = lat + upsample_to(x, lat.shape[-2:])
            x = self.smooth[i](self.fusion[i](lat, text))
        return F.normalize(self.head(x), dim=1)
