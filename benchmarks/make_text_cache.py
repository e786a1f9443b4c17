"""Precompute the BERT sentence vectors a CamVid training run can ask for, so a machine
without the BERT pip package (the lent GPU) can train: every training wording of every
class (models.wordings) and the held-out wordings, in every prompt template.

    python benchmarks/make_text_cache.py --out .device/text_cache.safetensors
    TEXT_CACHE=.device/text_cache.safetensors python -m models.train ...
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models.text_encoder import DEFAULT_TEMPLATES, SentenceEmbedder, TextEncoderConfig  # noqa: E402
from models.wordings import HELD_OUT_SYNONYMS, TRAIN_SYNONYMS  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--out", required=True)
a = ap.parse_args()
words = sorted({w for ws in TRAIN_SYNONYMS.values() for w in ws} | set(HELD_OUT_SYNONYMS.values()))
sentences = [t.format(w) for w in words for t in DEFAULT_TEMPLATES]
emb = SentenceEmbedder(TextEncoderConfig())
emb(sentences)
Path(a.out).parent.mkdir(parents=True, exist_ok=True)
emb.save_cache(a.out)
print(f"{len(emb.cache)} sentences -> {a.out}")
