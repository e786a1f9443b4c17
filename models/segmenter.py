"""The CNN + BERT + decoder segmentation model.

    image (B,3,H,W) in [0,1] --EfficientNet-Lite0--> 4 scales --+
                                                               +--FPN(FiLM, attention)--> pixel emb (B,E,H/4,W/4)
    (decoder.fine_channels > 0: a 5th scale, stride 2, refines the pixel emb to (B,E,H/2,W/2))
    class names --BERT (frozen, cached)--> projection --> class emb (K,E)
    logits = exp(logit_scale) * cos(pixel emb, class emb) + bias, upsampled to (B,K,H,W)

One set of weights serves any number of classes under any names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import ConvBNReLU, DecoderConfig, TextConditionedFPN
from .image_encoder import EfficientNetLite0, ImageEncoderConfig
from .text_encoder import SENTENCES_NAME, TextEncoder, TextEncoderConfig

MODEL_TYPE = "cnn-bert-segmenter"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
FINE_BLOCK = 0  # the encoder block whose stride-2 output feeds the decoder's fine branch


@dataclass
class SegmenterConfig:
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    ignore_index: int = 255
    class_names: list[str] = field(default_factory=list)  # the label set it was trained on
    # the words its weights first learned (a fine-tune keeps them; None: class_names): a job
    # on other words has more to learn than to keep (models.finetune.start_from)
    trained_class_names: list[str] | None = None
    class_colors: list[list[int]] = field(default_factory=list)
    class_weights: list[float] | None = None  # optional CE weights (rare classes), by class index
    metrics: dict = field(default_factory=dict)  # carried with the checkpoint (e.g. val mIoU)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model_type"] = MODEL_TYPE
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SegmenterConfig":
        d = dict(d)
        if d.pop("model_type", None) != MODEL_TYPE:
            raise ValueError(f"config.json is not a {MODEL_TYPE} config (model_type missing or different)")
        dec = dict(d.pop("decoder", {}))
        if "attention_scales" in dec:
            dec["attention_scales"] = tuple(dec["attention_scales"])
        return cls(
            image_encoder=ImageEncoderConfig(**d.pop("image_encoder", {})),
            text_encoder=TextEncoderConfig(**d.pop("text_encoder", {})),
            decoder=DecoderConfig(**dec),
            **d,
        )


@dataclass
class SegmenterOutput:
    logits: torch.Tensor  # (B, K, H, W) at the input's resolution
    loss: torch.Tensor | None = None  # only when labels are given


class CheckpointError(ValueError):
    """A folder that is not one of our checkpoints, or that holds a pickle."""


class Segmenter(nn.Module):
    def __init__(self, config: SegmenterConfig | None = None):
        super().__init__()
        self.config = config = config or SegmenterConfig()
        if config.decoder.fine_channels > 0 and config.image_encoder.out_blocks[0] != FINE_BLOCK:
            config.image_encoder.out_blocks = [FINE_BLOCK, *config.image_encoder.out_blocks]
        self.image_encoder = EfficientNetLite0(config.image_encoder)
        self.text_encoder = TextEncoder(config.text_encoder, config.decoder.embed_dim)
        self.decoder = TextConditionedFPN(self.image_encoder.out_channels, config.decoder)
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))  # exp -> 1/0.07, as in CLIP
        self.logit_bias = nn.Parameter(torch.zeros(1))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def output_stride(self) -> int:
        """The stride of the pixel embeddings (4, or 2 with the decoder's fine branch)."""
        return self.decoder.stride

    def add_fine_branch(self, channels: int = 32) -> "Segmenter":
        """Add the decoder's stride-2 branch to a trained model (its last conv starts at zero,
        so the model starts as it was, up to where the embedding is upsampled); the
        encoder then also returns its stride-2 features. Config follows, so a checkpoint
        saved afterwards loads with the branch."""
        if getattr(self, "fused", False):
            raise RuntimeError("add the fine branch before fuse_for_inference()")
        if self.decoder.fine is not None:
            raise ValueError("this model already has a fine branch (decoder.fine_channels "
                             f"{self.config.decoder.fine_channels})")
        self.image_encoder.set_out_blocks([FINE_BLOCK, *self.image_encoder.out_blocks])
        self.decoder.add_fine_branch(self.image_encoder.out_channels[0], channels)
        return self

    def class_embeddings(self, class_names: list[str] | None = None) -> torch.Tensor:
        """Names -> (K, hidden) BERT vectors (cached); None = the label set it was trained on."""
        names = class_names if class_names is not None else self.config.class_names
        return self.text_encoder.bert_vectors(list(names)).to(self.device)

    def forward(
        self,
        images: torch.Tensor,
        class_names: list[str] | None = None,
        labels: torch.Tensor | None = None,
        bert_vectors: torch.Tensor | None = None,
        class_weights: torch.Tensor | None = None,
        output_size: tuple[int, int] | None = None,
        flip_average: bool = False,
    ) -> SegmenterOutput:
        """images: (B, 3, H, W) float in [0, 1], any H, W. labels: (B, H, W) int64 class
        indices (ignore_index = void). bert_vectors (K, hidden) overrides class_names.
        output_size: the logits' (H, W) (default: the images'; e.g. the original size of
        images enlarged for the network). flip_average: the pixel embeddings averaged with
        those of the mirrored images (see :meth:`pixel_embeddings`; inference only)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, H, W) RGB floats in [0, 1], got shape {tuple(images.shape)}; "
                "convert greyscale / RGBA arrays with models.data.array_to_rgb first"
            )
        H, W = images.shape[-2:]
        if bert_vectors is None:
            bert_vectors = self.class_embeddings(class_names)
        text = self.text_encoder(bert_vectors.to(images.device, torch.float32))  # (K, E)
        pixels = self.pixel_embeddings(images, text, flip_average)  # (B, E, H/s, W/s), s = output_stride
        logits = torch.einsum("behw,ke->bkhw", pixels, text.to(pixels.dtype))
        logits = logits * self.logit_scale.exp() + self.logit_bias
        size = (H, W) if output_size is None else (int(output_size[0]), int(output_size[1]))
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        loss = None
        if labels is not None:
            loss = segmentation_loss(logits, labels, self.config.ignore_index, class_weights)
        return SegmenterOutput(logits=logits, loss=loss)

    def pixel_embeddings(self, images: torch.Tensor, text: torch.Tensor, flip_average: bool = False) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] and (K, E) projected class vectors -> (B, E, h, w)
        pixel embeddings at the output stride (unit norm). ``flip_average``: the mean of
        the images' embeddings and those of their mirror images, mirrored back (one batch
        of 2B, a test-time augmentation: the logits are linear in the embeddings, so this
        is the mean of both views' logits; where the views disagree the mean is shorter
        than 1 and the model less sure). The grid is mirrored exactly: logits are
        upsampled with align_corners=False, which maps cell j and cell w-1-j to mirror
        positions whatever the image's width."""
        B = images.shape[0]
        if flip_average:   # both views in one batch: ~10 % faster than two passes on a 2-core CPU
            both = torch.cat([images, images.flip(-1)])
            if images.is_contiguous(memory_format=torch.channels_last):
                both = both.contiguous(memory_format=torch.channels_last)
            images = both
        feats = self.image_encoder(self.image_encoder.normalize(images))
        pixels = self.decoder(feats, text.to(feats[0].dtype))
        if flip_average:
            pixels = 0.5 * (pixels[:B] + pixels[B:].flip(-1))
        return pixels

    # -- inference speed ---------------------------------------------------------------
    def fuse_for_inference(self) -> "Segmenter":
        """Fold every BatchNorm into the conv before it and switch to channels_last
        (same outputs up to float rounding; about 2x faster on CPU). Eval only."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        enc = self.image_encoder
        enc._conv_stem = fuse_conv_bn_eval(enc._conv_stem, enc._bn0)
        enc._bn0 = nn.Identity()
        for b in enc._blocks:
            if b.expand:
                b._expand_conv, b._bn0 = fuse_conv_bn_eval(b._expand_conv, b._bn0), nn.Identity()
            b._depthwise_conv, b._bn1 = fuse_conv_bn_eval(b._depthwise_conv, b._bn1), nn.Identity()
            b._project_conv, b._bn2 = fuse_conv_bn_eval(b._project_conv, b._bn2), nn.Identity()
        for m in self.decoder.modules():
            if isinstance(m, ConvBNReLU) and isinstance(m[1], nn.BatchNorm2d):
                m[0] = fuse_conv_bn_eval(m[0], m[1])
                m[1] = nn.Identity()
        self.fused = True
        return self.to(memory_format=torch.channels_last)

    # -- checkpoints ---------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: everything but BERT and the ImageNet classifier head,
        which the pip packages already provide."""
        skip = ("image_encoder._conv_head.", "image_encoder._bn1.", "image_encoder._fc.")
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write config.json + model.safetensors atomically (temp files, then rename), and
        sentences.safetensors: the BERT vectors of its class words (read back only by the
        same BERT, to skip loading it; see models/text_encoder.py)."""
        from safetensors.torch import save_file

        if getattr(self, "fused", False):
            raise RuntimeError("a fused (inference-only) model cannot be saved; save before fuse_for_inference()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in self.trainable_state_dict().items()
        }
        tmp_w, tmp_c = directory / (WEIGHTS_NAME + ".tmp"), directory / (CONFIG_NAME + ".tmp")
        save_file(state, str(tmp_w), metadata={"format": "pt", "model_type": MODEL_TYPE})
        tmp_c.write_text(json.dumps(self.config.to_dict(), indent=2))
        tmp_w.replace(directory / WEIGHTS_NAME)
        tmp_c.replace(directory / CONFIG_NAME)
        # its words' BERT vectors: loading the folder then needs no BERT for them (a cache)
        self.text_encoder.save_vectors(directory / SENTENCES_NAME, self.config.class_names)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> "Segmenter":
        from safetensors.torch import load_file

        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"{directory} is not a folder; pass a folder written by save_pretrained()")
        pickles = [p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES]
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not cfg_path.is_file() or not w_path.is_file():
            hint = f" It holds pickle files ({', '.join(pickles)}), which are never loaded." if pickles else ""
            raise CheckpointError(
                f"{directory} is not a {MODEL_TYPE} checkpoint: it needs {CONFIG_NAME} and {WEIGHTS_NAME}.{hint}"
            )
        if pickles:
            raise CheckpointError(
                f"refusing {directory}: it holds pickle files ({', '.join(pickles)}); checkpoints are "
                f"safetensors only. Remove them if the folder is yours."
            )
        try:
            raw = json.loads(cfg_path.read_text())
            config = SegmenterConfig.from_dict(raw)
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise CheckpointError(f"{cfg_path} is not a {MODEL_TYPE} config: {err}") from err
        config.image_encoder.pretrained = False  # the checkpoint carries the encoder weights
        model = cls(config)
        state = load_file(str(w_path), device="cpu")
        expected = model.trainable_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong_shape = [k for k in set(state) & set(expected) if state[k].shape != expected[k].shape]
        if wrong_shape:
            raise CheckpointError(
                f"{w_path} does not match its config.json: {len(wrong_shape)} tensors have other shapes "
                f"(e.g. {sorted(wrong_shape)[0]})"
            )
        if missing or unexpected:
            raise CheckpointError(
                f"{w_path} does not match this model: {len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        state = {k: v.to(expected[k].dtype) for k, v in state.items()}
        model.load_state_dict(state, strict=False)
        model.text_encoder.embedder.add_vector_file(directory / SENTENCES_NAME)
        return model.to(map_location).eval()


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over (B, K, H, W) logits; void (ignore_index) pixels contribute nothing."""
    if labels.shape[-2:] != logits.shape[-2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)} in size")
    K = logits.shape[1]
    labels = labels.long()
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= K))
    if bad.any():
        raise ValueError(
            f"labels hold class indices outside 0..{K - 1} (and not the ignore index {ignore_index}): "
            f"{sorted(set(labels[bad].unique().tolist()))[:5]}"
        )
    if not (labels != ignore_index).any():
        return logits.sum() * 0.0  # all void: no signal (plain CE would give 0/0 = NaN)
    if class_weights is not None:
        class_weights = class_weights.to(logits.device, torch.float32)
    return F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=ignore_index)
