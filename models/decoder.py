"""Text-conditioned FPN decoder: four image scales + class embeddings -> pixel embeddings.

Each scale is conditioned on the label set twice: FiLM from the pooled label-set
embedding, and pixel-to-word attention (each pixel attends over the K class
embeddings, as in LAVT) at strides 16 and 8. The output is a unit-norm pixel
embedding at stride 4; the segmenter compares it with each class embedding.

With ``fine_channels`` > 0 a small stride-2 branch (:class:`FineBranch`: the encoder's
stride-2 features beside the stride-4 decoder features) adds a correction to the pixel
embedding at stride 2, so the output is at stride 2: at stride 4 even a perfect map leaves
about 20 wrong regions a CamVid frame along edges and thin objects (BENCHMARKS.md, "A finer
output").
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
    fine_channels: int = 0  # > 0: a stride-2 branch this wide (the encoder then also gives stride 2)


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


class FineBranch(nn.Module):
    """Stride-2 features + the decoder's stride-4 features -> the pixel embedding at stride 2:
    the stride-4 embedding upsampled plus a correction whose last conv starts at zero (a
    new branch starts as the model it was added to, up to the upsampling)."""

    def __init__(self, cin: int, coarse: int, embed_dim: int, channels: int):
        super().__init__()
        self.lateral = ConvBNReLU(cin, channels, 1)
        self.reduce = ConvBNReLU(coarse, channels, 1)  # at stride 4, before the upsampling (4x cheaper)
        self.smooth = nn.Sequential(SepConv(channels, channels), SepConv(channels, channels))
        self.out = nn.Conv2d(channels, embed_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, fine: torch.Tensor, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # fine: (B, c, H/2, W/2); x: (B, C, H/4, W/4) decoder features; emb: (B, E, H/4, W/4) -> (B, E, H/2, W/2)
        size = fine.shape[-2:]
        h = self.lateral(fine) + upsample_to(self.reduce(x), size)
        return upsample_to(emb, size) + self.out(self.smooth(h))


class TextConditionedFPN(nn.Module):
    def __init__(self, in_channels: list[int], config: DecoderConfig):
        super().__init__()
        self.config = config
        C, E = config.channels, config.embed_dim
        in_channels = list(in_channels)
        self.fine: FineBranch | None = None
        if config.fine_channels > 0:  # the first features are stride 2, for the fine branch
            if len(in_channels) != 5:
                raise ValueError(f"fine_channels needs stride-2 features first (5 levels), got {len(in_channels)}")
            self.fine = FineBranch(in_channels[0], C, E, config.fine_channels)
            in_channels = in_channels[1:]
        strides = [4, 8, 16, 32]
        self.lateral = nn.ModuleList(ConvBNReLU(c, C, 1) for c in in_channels)
        self.fusion = nn.ModuleList(
            TextFusion(C, E, config.attn_dim, s in config.attention_scales) for s in strides
        )
        self.smooth = nn.ModuleList(SepConv(C, C) for _ in strides)
        self.head = nn.Sequential(SepConv(C, C), nn.Conv2d(C, E, 1))
        self.out_channels = E

    @property
    def stride(self) -> int:
        """The output's stride (4, or 2 with the fine branch)."""
        return 2 if self.fine is not None else 4

    def add_fine_branch(self, cin: int, channels: int) -> None:
        """Give a trained decoder the stride-2 branch (``cin``: the stride-2 features' width)."""
        if self.fine is not None:
            raise ValueError("this decoder already has a fine branch")
        if channels <= 0:
            raise ValueError(f"fine_channels must be > 0, got {channels}")
        ref = self.head[1].weight
        self.fine = FineBranch(cin, self.config.channels, self.config.embed_dim, channels).to(ref.device, ref.dtype)
        self.fine.train(self.training)  # an eval model stays in eval (BatchNorm statistics)
        self.config.fine_channels = int(channels)

    def forward(self, feats: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        # feats: strides (2,) 4..32, text: (K, E) -> (B, E, H/s, W/s) unit-norm pixel embeddings, s = self.stride
        fine = None
        if self.fine is not None:
            fine, feats = feats[0], feats[1:]
        x = None
        for i in reversed(range(len(feats))):
            lat = self.lateral[i](feats[i])
            if x is not None:
                lat = lat + upsample_to(x, lat.shape[-2:])
            x = self.smooth[i](self.fusion[i](lat, text))
        emb = self.head(x)
        if fine is not None:
            emb = self.fine(fine, x, emb)
        return F.normalize(emb, dim=1)
