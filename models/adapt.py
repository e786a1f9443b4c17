"""Instant adaptation (issue 20, part 1): each corrected image improves the next
predictions within about a second, with no training job.

The network stays frozen. What is tuned is the last step of the segmenter,

    logits = exp(logit_scale) * cos(pixel embedding, class vector) + logit_bias,

where the class vectors start as the projected word vectors of the class names. An
:class:`Adapter` holds tuned class vectors and per-class biases. It is fitted in a
few dozen full-batch Adam steps of cross-entropy on pixel embeddings cached from every
image corrected so far, with an L2 pull toward the word vectors (so a few images cannot
drag a class far from its name), and optionally blended with per-class visual
prototypes (mean embedding of the class's corrected pixels).

Because the decoder is conditioned on the label set (FiLM and pixel-to-word
attention use the *word* vectors), an image's pixel embeddings do not depend on the
adapter: they are computed once per image (:func:`embed_image`, the same forward pass
as a prediction) and reused. Memory stays bounded: a corrected image keeps only
``pixels_per_class`` sampled pixels per class (:func:`sample_examples`), each the
bilinear interpolation of the stride-4 embedding map at a full-resolution pixel (logits
are linear in the embedding, so this is exactly what the upsampled logits see there).

Typical use (what the app calls):

    session = InstantAdaptation(predictor, class_names, ignore_index=255)
    emb = session.embed(image)                      # once per image
    pred = session.predict(emb)                     # models.inference.Prediction
    session.add(image_id, emb, corrected_label)     # on submit (replaces an earlier one)
    adapter = session.update()                      # <= 1 s; later predictions use it
    state = adapter.to_dict()                       # JSON-able; Adapter.from_dict(state)

Plain model library: imports torch, numpy and models.* only; no storage, no processes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .inference import Prediction, Predictor, prediction_from_probs
from .refine import RefineSettings, grey_guide
from .text_encoder import validate_class_names

ADAPTER_FORMAT = "instant-adapter-v1"


@dataclass
class AdaptSettings:
    """How an adapter is fitted. Chosen on CamVid val frames 0:50, seed 0, by the scripted
    labeller's operations to 98% pixel accuracy (BENCHMARKS.md, "Instant adaptation,
    chosen by operations"); before that by wrong pixels and regions (l2 1.0, balance -0.5,
    hard_fraction 0.5)."""

    steps: int = 40  # full-batch Adam steps per update
    lr: float = 0.02
    l2: float = 0.1  # pull of the (unit) class vectors toward the word vectors, per class
    bias_l2: float = 0.01  # pull of the per-class biases toward 0 (logit units)
    prototype_blend: float = 0.0  # 0 = tuned vectors only; 1 = visual prototypes only
    pixels_per_class: int = 256  # sampled pixels kept per class per corrected image
    balance: float = 0.0  # class weight n_c ** (1 - balance): 0 = pixel frequency, 1 = every class equal,
    #                       < 0 favours frequent classes further
    hard_fraction: float = 0.0  # least share of a class's samples drawn from pixels the base got wrong
    #                             (0: their own share, as uniform sampling); weights correct for it
    keep: float = 0.0  # a pixel the un-adapted model gives at least this top probability keeps its
    #                    class (0: off): the adapter moves only the pixels the model was unsure of
    max_images: int = 200  # oldest corrected images are dropped beyond this
    batch: int = 8192  # examples per step (drawn by weight) when more are cached
    batch_seed: int = 0  # of those draws

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PixelEmbeddings:
    """One image through the frozen network, at the decoder's output stride."""

    pixels: torch.Tensor  # (E, h, w) float32 unit-norm pixel embeddings (stride 4; 2 with a fine branch)
    size: tuple[int, int]  # (H, W) of the image
    base_map: np.ndarray | None = None  # (H, W) uint8 the base model's class map (for hard sampling)
    guide: np.ndarray | None = None  # (H, W) uint8 grey image: predictions follow its edges (models.refine)


@dataclass
class Examples:
    """Sampled pixels of one corrected image."""

    embeddings: torch.Tensor  # (N, E) float16 (interpolated, not renormalised)
    labels: torch.Tensor  # (N,) int64 class indices
    weights: torch.Tensor  # (N,) float32 pixels each sample stands for


@dataclass
class Adapter:
    """Tuned class vectors and per-class biases for one label set; the frozen network's
    scale and bias are kept so that predicting needs nothing else."""

    class_names: list[str]
    class_vectors: torch.Tensor  # (K, E) float32, unit norm
    biases: torch.Tensor  # (K,) float32, added to the model's logit_bias
    logit_scale: float  # exp(logit_scale) of the model (a multiplier)
    logit_bias: float
    images: int = 0  # corrected images it was fitted on
    settings: dict = field(default_factory=dict)
    base_vectors: torch.Tensor | None = None  # (K, E) the vectors it was fitted from (keep > 0 only)
    base_biases: torch.Tensor | None = None  # (K,)

    # -- plain forms for storage (never pickle) -------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": ADAPTER_FORMAT,
            "class_names": list(self.class_names),
            "class_vectors": self.class_vectors.tolist(),
            "biases": self.biases.tolist(),
            "logit_scale": float(self.logit_scale),
            "logit_bias": float(self.logit_bias),
            "images": int(self.images),
            "settings": dict(self.settings),
            **({"base_vectors": self.base_vectors.tolist(), "base_biases": self.base_biases.tolist()}
               if self.base_vectors is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Adapter":
        if d.get("format") != ADAPTER_FORMAT:
            raise ValueError(f"not an adapter dict (format {d.get('format')!r}, expected {ADAPTER_FORMAT!r})")
        vectors = torch.tensor(d["class_vectors"], dtype=torch.float32)
        biases = torch.tensor(d["biases"], dtype=torch.float32)
        names = list(d["class_names"])
        if vectors.dim() != 2 or vectors.shape[0] != len(names) or biases.shape != (len(names),):
            raise ValueError(f"adapter dict shapes do not match its {len(names)} class names")
        base_v = base_b = None
        if d.get("base_vectors") is not None:
            base_v = torch.tensor(d["base_vectors"], dtype=torch.float32)
            base_b = torch.tensor(d["base_biases"], dtype=torch.float32)
            if base_v.shape != vectors.shape or base_b.shape != biases.shape:
                raise ValueError("adapter dict: base vectors do not match its class vectors")
        return cls(names, vectors, biases, float(d["logit_scale"]), float(d["logit_bias"]),
                   int(d.get("images", 0)), dict(d.get("settings", {})), base_v, base_b)

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors, metadata) for safetensors.torch.save_file(tensors, path, metadata)."""
        import json

        tensors = {"class_vectors": self.class_vectors.contiguous(), "biases": self.biases.contiguous()}
        if self.base_vectors is not None:
            tensors.update(base_vectors=self.base_vectors.contiguous(), base_biases=self.base_biases.contiguous())
        meta = {k: json.dumps(v) for k, v in self.to_dict().items() if k not in tensors}
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> "Adapter":
        import json

        d = {k: json.loads(v) for k, v in metadata.items()}
        for k in ("class_vectors", "biases", "base_vectors", "base_biases"):
            if k in tensors:
                d[k] = tensors[k].float().tolist()
        return cls.from_dict(d)

    def logits(self, emb: PixelEmbeddings, vectors: torch.Tensor | None = None,
               biases: torch.Tensor | None = None) -> torch.Tensor:
        """(K, H, W) logits at the image's size, as Segmenter.forward computes them
        (with the adapter's class vectors and biases unless others are given)."""
        vectors = self.class_vectors if vectors is None else vectors
        biases = self.biases if biases is None else biases
        if emb.pixels.shape[0] != vectors.shape[1]:
            raise ValueError("pixel embeddings and class vectors differ in width")
        low = torch.einsum("ehw,ke->khw", emb.pixels, vectors)
        low = low * self.logit_scale + self.logit_bias + biases.view(-1, 1, 1)
        return F.interpolate(low[None], size=emb.size, mode="bilinear", align_corners=False)[0]

    @property
    def keep(self) -> float:
        """The gate of AdaptSettings.keep this adapter was fitted with (0: none, or no base)."""
        return float(self.settings.get("keep", 0.0)) if self.base_vectors is not None and self.images else 0.0

    def predict(self, emb: PixelEmbeddings, refine: RefineSettings | None = None,
                logits: torch.Tensor | None = None) -> Prediction:
        """Same output as Predictor.predict: class map (refined along the image's edges
        when ``emb.guide`` is known; ``refine`` defaults to RefineSettings()), confidence,
        uncertainty. With a ``keep`` gate, a pixel the un-adapted model is sure of (top
        probability >= keep) keeps that model's class and confidence. ``logits``: this
        adapter's :meth:`logits` of ``emb`` when the caller has them already."""
        logits = self.logits(emb) if logits is None else logits
        pred = prediction_from_probs(logits.softmax(0), emb.guide,
                                     refine if refine is not None else RefineSettings())
        if self.keep <= 0:
            return pred
        top, idx = self.logits(emb, self.base_vectors, self.base_biases).softmax(0).max(0)
        sure = (top >= self.keep).numpy()
        conf = np.where(sure, top.numpy(), pred.confidence).astype(np.float32)
        return Prediction(np.where(sure, idx.numpy().astype(np.uint8), pred.class_map), conf,
                          float(1.0 - conf.mean()), pred.entropy)


# -- the frozen network -------------------------------------------------------------------
@torch.inference_mode()
def word_adapter(predictor: Predictor, class_names: list[str]) -> Adapter:
    """The un-tuned adapter: the model's own projected word vectors, zero biases."""
    names = validate_class_names(class_names)
    model = predictor.model
    text = model.text_encoder(model.class_embeddings(names).float()).float().cpu()
    return Adapter(names, text, torch.zeros(len(names)), float(model.logit_scale.exp()),
                   float(model.logit_bias.reshape(-1)[0]))


@torch.inference_mode()
def embed_image(predictor: Predictor, image: np.ndarray, class_names: list[str],
                with_base_map: bool = True, scale: float | None = None, flip: bool | None = None) -> PixelEmbeddings:
    """One forward pass of the frozen image encoder and decoder (conditioned on the label
    set's word vectors); ``base_map`` is the base model's prediction from the same pass.
    ``scale`` > 1: the network sees the image enlarged that much (bilinear), so its stride-4
    grid is finer over the image (``scale`` ** 2 the time); the embeddings still describe
    the image at its own size (``size``). None: the predictor's own ``input_scale`` (so the
    embeddings give the predictor's logits), capped as its predictions are. ``flip``: the
    mirrored view's embeddings averaged in; None: as the predictor's logits (its ``flip``)."""
    names = validate_class_names(class_names)
    model = predictor.model
    x, size = predictor.network_input(image, scale)
    with torch.autocast(predictor.device.type, dtype=torch.float16, enabled=predictor.amp):
        text = model.text_encoder(model.class_embeddings(names).to(x.device, torch.float32))
        pixels = model.pixel_embeddings(x, text, predictor.flip if flip is None else bool(flip))
    emb = PixelEmbeddings(pixels[0].float().cpu().contiguous(), size)
    emb.guide = grey_levels(image)
    if with_base_map:
        emb.base_map = word_adapter(predictor, names).predict(emb, predictor.refine).class_map
    return emb


def grey_levels(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) image -> (H, W) uint8 grey levels: the guide models.refine follows."""
    return (grey_guide(image).numpy() * 255.0 + 0.5).astype(np.uint8)   # models.refine's guide, kept small


# -- examples from a corrected image ------------------------------------------------------
def _interpolate_at(pixels: torch.Tensor, size: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
    """(E, h, w) map sampled at full-resolution pixels (ys, xs) exactly as
    F.interpolate(bilinear, align_corners=False) would upsample it -> (N, E)."""
    H, W = size
    gx = (2 * torch.from_numpy(xs).float() + 1) / W - 1
    gy = (2 * torch.from_numpy(ys).float() + 1) / H - 1
    grid = torch.stack([gx, gy], -1).view(1, 1, -1, 2)
    out = F.grid_sample(pixels[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T.contiguous()


def sample_examples(emb: PixelEmbeddings, label: np.ndarray, num_classes: int, ignore_index: int,
                    settings: AdaptSettings | None = None, rng: np.random.Generator | None = None) -> Examples:
    """Up to ``pixels_per_class`` pixels of each class in ``label`` (H, W), a share of them
    where the base model was wrong; weights make the sample stand for the image's pixels
    (within a class exactly, across classes by n_c ** (1 - balance))."""
    s = settings or AdaptSettings()
    rng = rng or np.random.default_rng(0)
    label = np.asarray(label)
    if label.shape != tuple(emb.size):
        raise ValueError(f"label {label.shape} does not match the image size {tuple(emb.size)}")
    flat = label.ravel()
    wrong = (emb.base_map.ravel() != flat) if emb.base_map is not None else np.zeros(flat.shape, bool)
    idx_all, lab_all, w_all = [], [], []
    for c in np.unique(flat):
        if c == ignore_index or c >= num_classes:
            continue
        members = np.flatnonzero(flat == c)
        n_c = len(members)
        m = min(s.pixels_per_class, n_c)
        class_weight = float(n_c) ** (1.0 - s.balance)
        hard, easy = members[wrong[members]], members[~wrong[members]]
        # at least the hard pixels' own share (0 = stratified uniform), at least hard_fraction
        m_hard = min(len(hard), max(int(round(s.hard_fraction * m)), int(round(m * len(hard) / n_c))))
        m_easy = min(len(easy), m - m_hard)
        m_hard = min(len(hard), m - m_easy)  # fill from the hard ones if too few easy
        for part, k in ((hard, m_hard), (easy, m_easy)):
            if k == 0:
                continue
            chosen = rng.choice(part, k, replace=False)
            idx_all.append(chosen)
            lab_all.append(np.full(k, c, np.int64))
            w_all.append(np.full(k, class_weight * len(part) / n_c / k, np.float32))
    if not idx_all:
        E = emb.pixels.shape[0]
        return Examples(torch.zeros(0, E, dtype=torch.float16), torch.zeros(0, dtype=torch.int64), torch.zeros(0))
    idx = np.concatenate(idx_all)
    ys, xs = np.divmod(idx, label.shape[1])
    vecs = _interpolate_at(emb.pixels, emb.size, ys, xs)
    return Examples(vecs.half(), torch.from_numpy(np.concatenate(lab_all)), torch.from_numpy(np.concatenate(w_all)))


# -- fitting ---------------------------------------------------------------------------
def fit_adapter(base: Adapter, examples: list[Examples], settings: AdaptSettings | None = None) -> Adapter:
    """Tune ``base``'s class vectors (from the word vectors) and biases on all examples.
    No examples (or no labelled pixels): ``base`` itself, unchanged."""
    s = settings or AdaptSettings()
    examples = [e for e in examples if len(e.labels)]
    if not examples:
        return Adapter(base.class_names, base.class_vectors.clone(), base.biases.clone(), base.logit_scale,
                       base.logit_bias, 0, s.to_dict(), *_gate_model(base, s))
    X = torch.cat([e.embeddings for e in examples]).float()
    y = torch.cat([e.labels for e in examples])
    w = torch.cat([e.weights for e in examples]).double()
    w = (w / w.sum()).float()
    words = F.normalize(base.class_vectors.float(), dim=-1)
    K = words.shape[0]
    scale, bias0 = base.logit_scale, base.logit_bias
    gen = torch.Generator().manual_seed(s.batch_seed)
    # Closed-form gradients and a hand-written Adam: autograd's per-op overhead would
    # cost more than the arithmetic at these sizes. Class vectors stay unit norm
    # (projected after each step). Above `batch` examples each step draws a batch with
    # probability proportional to the weights (same expected loss, bounded time).
    params = torch.cat([words, base.biases.float()[:, None]], 1)  # (K, E + 1)
    m1, m2 = torch.zeros_like(params), torch.zeros_like(params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    full = len(y) <= s.batch
    if full:
        onehot_all = F.one_hot(y, K).float()
    for t in range(1, s.steps + 1):
        v, b = params[:, :-1], params[:, -1]
        if full:
            Xb, Yb, wb = X, onehot_all, w[:, None]
        else:
            idx = torch.multinomial(w, s.batch, replacement=True, generator=gen)
            Xb, Yb, wb = X[idx], F.one_hot(y[idx], K).float(), 1.0 / s.batch
        g = torch.softmax(torch.addmm(b + bias0, Xb, v.T, alpha=scale), 1)
        g -= Yb
        g *= wb  # d loss / d logits
        grad = torch.empty_like(params)
        grad[:, :-1] = scale * (g.T @ Xb) + (2 * s.l2 / K) * (v - words)
        grad[:, -1] = g.sum(0) + (2 * s.bias_l2 / K) * b
        m1.mul_(b1).add_(grad, alpha=1 - b1)
        m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        step = (m1 / (1 - b1**t)) / ((m2 / (1 - b2**t)).sqrt() + eps)
        params -= s.lr * step
        params[:, :-1] = F.normalize(params[:, :-1], dim=-1)
    vectors, biases = params[:, :-1], params[:, -1]
    v = F.normalize(vectors, dim=-1)
    if s.prototype_blend > 0:
        v = _blend_prototypes(v, X, y, w, s.prototype_blend)
    return Adapter(base.class_names, v, biases.clone(), scale, bias0, len(examples), s.to_dict(),
                   *_gate_model(base, s))


def _gate_model(base: Adapter, s: AdaptSettings) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The un-adapted vectors and biases a ``keep`` gate compares with; none when it is off."""
    return (base.class_vectors.clone(), base.biases.clone()) if s.keep > 0 else (None, None)


def _blend_prototypes(v: torch.Tensor, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, a: float) -> torch.Tensor:
    K = v.shape[0]
    sums = torch.zeros_like(v).index_add_(0, y, X * w[:, None])
    seen = torch.bincount(y, minlength=K) > 0
    protos = F.normalize(sums, dim=-1)
    out = v.clone()
    out[seen] = F.normalize((1 - a) * v[seen] + a * protos[seen], dim=-1)
    return out


# -- the session the app keeps per project/label set --------------------------------------
class InstantAdaptation:
    """Cached examples of every corrected image of one label set, and the current adapter."""

    def __init__(self, predictor: Predictor, class_names: list[str], ignore_index: int,
                 settings: AdaptSettings | None = None, seed: int = 0):
        self.predictor = predictor
        self.class_names = validate_class_names(class_names)
        self.ignore_index = ignore_index
        self.settings = settings or AdaptSettings()
        self.rng = np.random.default_rng(seed)
        self.base = word_adapter(predictor, self.class_names)
        self.adapter = self.base
        self.examples: dict[object, Examples] = {}  # insertion order = age
        self.last_update_seconds = 0.0

    def embed(self, image: np.ndarray) -> PixelEmbeddings:
        return embed_image(self.predictor, image, self.class_names)

    def predict(self, image_or_emb) -> Prediction:
        emb = image_or_emb if isinstance(image_or_emb, PixelEmbeddings) else self.embed(image_or_emb)
        return self.adapter.predict(emb, self.predictor.refine)

    def add(self, key, image_or_emb, label: np.ndarray) -> None:
        """Cache a corrected image's sampled pixels under ``key`` (replacing older ones)."""
        emb = image_or_emb if isinstance(image_or_emb, PixelEmbeddings) else self.embed(image_or_emb)
        self.examples.pop(key, None)
        self.examples[key] = sample_examples(emb, label, len(self.class_names), self.ignore_index,
                                             self.settings, self.rng)
        while len(self.examples) > self.settings.max_images:
            self.examples.pop(next(iter(self.examples)))

    def remove(self, key) -> None:
        self.examples.pop(key, None)

    def update(self) -> Adapter:
        t0 = time.perf_counter()
        self.adapter = fit_adapter(self.base, list(self.examples.values()), self.settings)
        self.last_update_seconds = time.perf_counter() - t0
        return self.adapter
