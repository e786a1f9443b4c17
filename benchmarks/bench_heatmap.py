"""Word heatmaps (issue 19): what a word's map costs on the Label screen.

    python -m benchmarks.bench_heatmap [--words 20] [--repeat 3] [--out runs/heatmap.json]

A studio on a fresh data folder with the demo project (CamVid street frames, 480x360)
and the shipped model. The model is loaded and the label set encoded first (a
warm-up on another image), then on one image:

- first word: ``Studio.heatmap(image, "sky")`` with nothing cached for the image (one
  forward pass for the pixel embeddings, the class's softmax);
- class word, cached: another class of the label set (a dot product and a softmax);
- new phrase, cached image: ``--words`` phrases never asked before (each one text
  encoding: BERT over the model's 6 template sentences, the projection, then the
  softmax over the label set plus the phrase);
- the same phrase again (its vector cached);
- the two parts of a new phrase apart: its text encoding alone, the map from its vector;
- uncertainty (``U``): ``Studio.uncertainty_map(image)`` on the cached image (the
  normalised entropy of the softmax over the label set, no forward pass).

Each figure is the median (and max) over the calls, in milliseconds, on this machine's
CPU threads (torch's default).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

PHRASES = ["white van", "traffic light", "dog", "bridge", "lamp post", "sidewalk", "bus", "lorry",
           "shop window", "cloud", "wheel", "motorbike", "bin", "parked car", "cyclist", "window",
           "street lamp", "hedge", "road marking", "chimney", "door", "scooter", "umbrella", "billboard",
           "kerb", "roof", "van", "child", "bollard", "post box"]


def ms(f) -> tuple[float, dict]:
    t = time.perf_counter()
    r = f()
    return 1000 * (time.perf_counter() - t), r


def summary(xs: list[float]) -> dict:
    return {"median_ms": round(statistics.median(xs), 1), "max_ms": round(max(xs), 1), "n": len(xs)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="times each cached call is repeated")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio
    from storage import Store

    st = Studio(Store(data_dir=Path(tempfile.mkdtemp(prefix="bench-heat-")) / "data"))
    st.ensure_demo(DEMO_DIR)
    images = [im for im in st.store.list_images(DEMO_PROJECT, order="id") if (im.width, im.height) == (480, 360)]
    warm, image = images[0], images[1]
    st.heatmap(warm.id, "sky")           # model loaded, label set encoded, BERT loaded
    st.heatmap(warm.id, "zebra")

    first, r = ms(lambda: st.heatmap(image.id, "sky"))
    assert not r["cached"]
    cls = [ms(lambda: st.heatmap(image.id, "road"))[0] for _ in range(a.repeat)]
    new, again = [], []
    for phrase in PHRASES[: a.words]:
        t, r = ms(lambda: st.heatmap(image.id, phrase))
        assert r["cached"] and r["class"] is None
        new.append(t)
        again.append(ms(lambda: st.heatmap(image.id, phrase))[0])
    # the parts of a new phrase: its text encoding alone, and the map from a known vector
    mv = st.model_version(st.store.get_project(DEMO_PROJECT).id)
    enc = [ms(lambda: st.predictors.phrase_vector(mv.weights_dir, f"{p} seen twice"))[0] for p in PHRASES[: a.words]]
    from models.heatmap import word_probability
    emb = next(v for k, v in st._heat_emb.items() if k[0] == image.id)
    adapter = next(v for k, v in st._heat_words.items() if k[0] == "set")
    vec = st.predictors.phrase_vector(mv.weights_dir, "white van")
    dot = [ms(lambda: word_probability(emb, adapter, vector=vec))[0] for _ in range(a.repeat * 3)]
    unc = []
    for _ in range(a.repeat * 3):
        t, r = ms(lambda: st.uncertainty_map(image.id))
        assert r["cached"]
        unc.append(t)
    out = {"image": f"{image.width}x{image.height}", "threads": torch.get_num_threads(),
           "first_word_ms": round(first, 1), "class_word_cached": summary(cls),
           "new_phrase_cached_image": summary(new), "same_phrase_again": summary(again),
           "text_encoding_only": summary(enc), "map_from_vector_only": summary(dot),
           "uncertainty_cached_image": summary(unc),
           "embed_cache": dict(st.heat_stats)}
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
    st.store.close()
    return out


if __name__ == "__main__":
    main()
