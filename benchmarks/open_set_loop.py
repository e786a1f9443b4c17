"""Does the instant layer learn what a labeller leaves unlabelled? A project that names only
some of a street ("road, bicycle, traffic light, lamp post, bin") over the 10 labelled demo
frames (one drive, `segui/demo/labelled`), with pixels that are none of its classes painted
as the nearest class (the default) and left unlabelled (`models/open_set.py`). The labeller's
annotation of a frame: CamVid road -> road, pole -> lamp post, everything else void (CamVid
has no class that is only bicycles, traffic lights or bins). Frames 1-5 are submitted one at
a time through the app's Studio (instant adaptation on); after each, the wrong pixels of the
app's predictions of frames 6-10 against their annotation (CamVid's own void excluded).

    python -m benchmarks.open_set_loop     # prints one JSON object

A demonstration on 10 consecutive frames of one drive, not a tuned figure (BENCHMARKS.md,
"Pixels that are none of the classes").
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from segui.handlers import DEMO_DIR, Studio
from segui.predicting import PredictorCache
from storage import Store

WORDS = "road\nbicycle\ntraffic light\nlamp post\nbin"
ROAD, POLE, VOID = 3, 2, 11          # CamVid indices of the demo labels


def main() -> int:
    frames = sorted((DEMO_DIR / "labelled").glob("*.jpg"))
    predictors = PredictorCache(flip=True)      # as the app predicts by default
    out = {"frames": [f.name for f in frames], "submitted": 5, "measured": len(frames) - 5}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("nearest", "void"):
            st = Studio(Store(data_dir=Path(tmp) / mode), predictors=predictors, instant=True)
            p = st.create_project("furniture", WORDS)
            st.upload("furniture", frames)
            if mode == "void":
                st.set_others_unlabelled("furniture", True)
            p = st.store.get_project(p.id)
            ids = [im.id for im in st.store.list_images(p.id, order="id")]

            def annotation(i):
                gt = np.array(Image.open(frames[i].with_suffix(".png")))
                t = np.full(gt.shape, p.ignore_index, np.uint8)
                t[gt == ROAD], t[gt == POLE] = p.classes[0].index, p.classes[3].index
                return t, gt != VOID

            def wrong() -> float:
                bad = total = 0
                for i in range(5, len(frames)):
                    cm = st.predict(p.id, ids[i], store=False)
                    t, valid = annotation(i)
                    bad += int(((cm != t) & valid).sum())
                    total += int(valid.sum())
                return round(100 * bad / total, 2)

            row = {"before": wrong()}
            for k in range(5):
                loaded = st.prepare(ids[k]).loaded
                st.save_edits(loaded, annotation(k)[0], "ann", "submitted")
                st.wait_idle(120)
                row[f"after {k + 1}"] = wrong()
            out[mode] = row
            st.wait_idle()
            st.store.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
