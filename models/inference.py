"""The narrow model interface the app and the tools use: load, predict, evaluate.

Callers pass numpy images and class-name lists and get numpy class maps back; they
never touch tensors, devices or checkpoints.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import array_to_rgb, image_to_tensor
from .metrics import confusion_matrix, scores
from .refine import RefineSettings, refined_classes
from .segmenter import Segmenter
from .text_encoder import validate_class_names

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "weights" / "camvid"
MAX_SCALED_PIXELS = 2_000_000   # an enlarged input (input_scale > 1) is never larger than this


def effective_scale(input_scale: float, height: int, width: int) -> float:
    """The factor the network's input is resized by: ``input_scale``, but an enlargement
    stops at MAX_SCALED_PIXELS (never below 1: a large image is seen as it is) and a
    reduction keeps at least 32 px on the shorter side (never above 1)."""
    s = float(input_scale)
    if s > 1.0:
        s = max(1.0, min(s, (MAX_SCALED_PIXELS / max(1, height * width)) ** 0.5))
    elif s < 1.0:
        s = min(1.0, max(s, 32.0 / max(1, min(height, width))))
    return s


def check_input_scale(input_scale: float) -> float:
    s = float(input_scale)
    if not 0.25 <= s <= 4.0:
        raise ValueError(f"input scale must be between 0.25 and 4, got {input_scale}")
    return s


def add_view_arguments(ap) -> None:
    """The command-line options for how the network sees each image (``Predictor.load``'s
    ``input_scale`` and ``flip``), one wording for every CLI that predicts."""
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="the network sees each image resized by this (1.5: thin things larger, about 2.25x "
                         "the time); the maps are at the image's size")
    ap.add_argument("--flip", action="store_true",
                    help="each image is also seen mirrored and the two views averaged (a test-time augmentation: "
                         "fewer wrong pixels and pieces, about twice the network's time)")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for, but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"


@dataclass
class Prediction:
    class_map: np.ndarray  # (H, W) uint8 class indices
    confidence: np.ndarray  # (H, W) float32 max softmax probability
    uncertainty: float  # mean (1 - confidence): higher = label this first
    entropy: float | None = None  # mean normalised entropy of the softmax (0 sure .. 1 all classes alike)


class Predictor:
    """A loaded model on a device, with its BERT label-set embeddings cached."""

    def __init__(self, model: Segmenter, device: str | torch.device = "auto", fuse: bool = True,
                 refine: RefineSettings | None = None, input_scale: float = 1.0, flip: bool = False):
        self.device = pick_device(device) if isinstance(device, str) else device
        # the network sees each image resized by this (1.5: thin things larger; about
        # input_scale ** 2 the time), its logits brought back to the image's size
        self.input_scale = check_input_scale(input_scale)
        # every image also seen mirrored, the two views' embeddings averaged (a test-time
        # augmentation: fewer wrong pixels and pieces; one batch of two, ~1.8x the network's time)
        self.flip = bool(flip)
        # predict()'s class maps follow image edges (models.refine); logits() stays the network's own
        self.refine = refine if refine is not None else RefineSettings()
        self.model = model.to(self.device).eval()
        self.trainable = model  # unfused weights (for saving / fine-tuning)
        if fuse:
            self.model = copy.deepcopy(model).fuse_for_inference().to(self.device)
        self.amp = self.device.type == "cuda"

    @classmethod
    def load(cls, model_dir: str | Path | None = None, device: str = "auto",
             refine: RefineSettings | None = None, input_scale: float = 1.0, flip: bool = False) -> "Predictor":
        return cls(Segmenter.from_pretrained(model_dir or DEFAULT_MODEL_DIR), device, refine=refine,
                   input_scale=input_scale, flip=flip)

    @property
    def class_names(self) -> list[str]:
        return list(self.model.config.class_names)

    @property
    def device_name(self) -> str:
        return device_description(self.device)

    def network_input(self, image: np.ndarray, scale: float | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """What the network sees of ``image``: a (1, 3, h, w) tensor on the device, resized
        by ``scale`` (None: ``input_scale``, as :func:`effective_scale` caps it), and the
        image's own (H, W), the size its maps come back at."""
        x = image_to_tensor(array_to_rgb(image))[None].to(self.device)
        size = tuple(x.shape[-2:])
        s = effective_scale(self.input_scale, *size) if scale is None else check_input_scale(scale)
        if s != 1.0:
            x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        if getattr(self.model, "fused", False):
            x = x.contiguous(memory_format=torch.channels_last)
        return x, size

    @torch.inference_mode()
    def logits(self, image: np.ndarray, class_names: list[str] | None = None) -> torch.Tensor:
        """(H, W, C) image -> (K, H, W) float32 logits on CPU."""
        names = validate_class_names(class_names) if class_names is not None else self.class_names
        x, size = self.network_input(image)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            out = self.model(x, class_names=names, output_size=size, flip_average=self.flip)
        return out.logits[0].float().cpu()

    def predict(self, image: np.ndarray, class_names: list[str] | None = None) -> Prediction:
        """The class map a labeller sees: the argmax of the probabilities refined along the
        image's edges (``self.refine``; radius 0 = the plain argmax). ``confidence`` is the
        model's probability of the class shown."""
        return prediction_from_probs(self.logits(image, class_names).softmax(0), image, self.refine)


def prediction_from_probs(probs: torch.Tensor, image: np.ndarray | None,
                          refine: RefineSettings | None = None) -> Prediction:
    """(K, H, W) probabilities -> Prediction; refined along ``image``'s edges when both
    are given (and refine.radius > 0)."""
    if image is not None and refine is not None and refine.enabled:
        idx = refined_classes(probs, image, refine)
        conf = probs.gather(0, idx[None])[0]
    else:
        conf, idx = probs.max(0)
    conf_np = conf.numpy().astype(np.float32)
    return Prediction(idx.numpy().astype(np.uint8), conf_np, float(1.0 - conf_np.mean()), mean_entropy(probs))


def mean_entropy(probs: torch.Tensor, stride: int = 4) -> float:
    """The mean over pixels of the normalised entropy of (K, H, W) probabilities: 0 when
    every pixel is sure, 1 when every class is alike everywhere (0 for K = 1). Over every
    ``stride``-th pixel each way (the logits are upsampled, so the mean hardly moves: 3 ms
    instead of 50 ms at 480x360 with 11 classes)."""
    k = probs.shape[0]
    if k < 2:
        return 0.0
    probs = probs[:, ::stride, ::stride]
    ent = -(probs * probs.clamp_min(1e-12).log()).sum(0) / float(np.log(k))
    return float(ent.mean().clamp(0.0, 1.0))


def evaluate_arrays(
    predictor: Predictor,
    images: list[np.ndarray],
    labels: list[np.ndarray],
    class_names: list[str],
    ignore_index: int,
    report_names: list[str] | None = None,
    refined: bool = False,
) -> dict:
    """mIoU etc. from one confusion matrix over all images, plus images/second: of the
    network's argmax, or with ``refined`` of the maps ``predictor.predict`` shows (refined
    along image edges, models.refine)."""
    K = len(class_names)
    conf = np.zeros((K, K), dtype=np.int64)
    predictor.logits(images[0], class_names)  # warm-up (and BERT, cached) outside the clock
    start = time.perf_counter()
    for img, lbl in zip(images, labels):
        if refined:
            pred = predictor.predict(img, class_names).class_map
        else:
            pred = predictor.logits(img, class_names).argmax(0).numpy()
        conf += confusion_matrix(pred, lbl, K, ignore_index)
    elapsed = time.perf_counter() - start
    result = scores(conf, report_names or class_names)
    result["images_per_second"] = len(images) / elapsed if elapsed > 0 else float("inf")
    result["num_images"] = len(images)
    return result
