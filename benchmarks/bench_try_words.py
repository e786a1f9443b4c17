"""The Try words view (issue 19's demo): what 5 words on a 480x360 image cost.

    python -m benchmarks.bench_try_words [--repeat 5] [--out runs/try_words.json]

A studio on a fresh data folder with no project and the shipped model, loaded and
warmed up first on another image. Then, on the demo street frame 0016E5_08009.jpg
(480x360):

- new words: ``Studio.try_words(image, 5 words)`` with a word set not asked before
  (one forward pass conditioned on the words, then the 5 maps and the argmax) - what
  pressing Show costs after typing;
- same words again (the image's embeddings cached: the maps only);
- the view: ``segui.screens.try_words.view_html`` (the PNG/JPEG encodings of the
  photo, the mask and the 5 heat layers, the HTML);
- end to end: ``/try_words`` through gradio_client on the launched app (the upload,
  the image read and decoded within the limits, new words, the view, the reply).

Medians (and max) in milliseconds over ``--repeat`` calls, each with another set of 5
words, on this machine's CPU threads (torch's default).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch

SETS = [["sky", "road", "building", "tree", "car"], ["sky", "street", "house", "bush", "van"],
        ["clouds", "asphalt", "shop", "plant", "vehicle"], ["heaven", "lane", "facade", "hedge", "automobile"],
        ["air", "tarmac", "wall", "leaves", "truck"], ["sky", "road", "building", "tree", "person"],
        ["sky", "pavement", "building", "tree", "bicycle"], ["sky", "road", "window", "tree", "car"]]


def stats(xs: list[float]) -> dict:
    return {"median_ms": round(statistics.median(xs), 1), "max_ms": round(max(xs), 1), "n": len(xs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from gradio_client import Client, handle_file

    from segui.handlers import DEMO_DIR, Studio
    from segui.screens.try_words import view_html
    from segui.try_words import read_try_image
    from segui.ui import LAUNCH_OPTIONS, build_app
    from storage import Store

    n = min(args.repeat, len(SETS) - 1)
    tmp = tempfile.mkdtemp()
    st = Studio(Store(data_dir=Path(tmp) / "data"))
    image_path = DEMO_DIR / "0016E5_08009.jpg"
    image = read_try_image(image_path)
    st.try_words(read_try_image(DEMO_DIR / "0016E5_07959.jpg"), SETS[-1])      # model loaded, BERT warm
    new, again, view = [], [], []
    for words in SETS[:n]:
        t = time.perf_counter()
        r = st.try_words(image, words)
        new.append(1000 * (time.perf_counter() - t))
        assert not r["cached"]
        t = time.perf_counter()
        r = st.try_words(image, words)
        again.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        view_html(r)
        view.append(1000 * (time.perf_counter() - t))
    app = build_app(st)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       **LAUNCH_OPTIONS)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        end = []
        for k in range(n):
            words = [w + "s" for w in SETS[k]]           # word sets the studio has not seen
            t = time.perf_counter()
            c.predict(handle_file(str(image_path)), ", ".join(words), api_name="/try_words")
            end.append(1000 * (time.perf_counter() - t))
    finally:
        app.close()
    out = {"image": f"{image_path.name} {image.shape[1]}x{image.shape[0]}", "words": 5,
           "threads": torch.get_num_threads(), "device": st.device_name,
           "new_words": stats(new), "same_words_cached": stats(again), "view_html": stats(view),
           "end_to_end_client": stats(end), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
           "cpu_cores": os.cpu_count()}
    print(json.dumps(out))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    st.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
