"""Time to upload labelled images into a project: CamVid's val split (101 frames with
their class maps) zipped in each layout the upload reads labels from.

    python -m benchmarks.bench_import_labels [--data ../shared/datasets/camvid] [--split val]
        [--threads 2] [--out benchmarks/results/cpu_import_labels.json]

For each format (folder, voc, coco): the images are imported once into a scratch project
(``storage.datasets.import_dataset``) and exported with ``Studio.export`` in that format,
as a labeller would download it; then the zip is uploaded into a new project whose label
set has the same words in another order, with ``Studio.upload(predict=False)`` (the app's
upload, without the first prediction), timed, and then with the background work it starts
(the instant layer learning the labels, the second reviewer scoring them) until idle. The
stored maps are compared with the dataset's, read through the new project's indices.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def main(argv=None) -> dict:
    from segui.handlers import Studio
    from storage import Store
    from storage.datasets import import_dataset, read_classes_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--split", default="val")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--formats", default="folder,voc,coco")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    classes, ignore = read_classes_json(data / "classes.json")
    truth = {p.stem: np.array(Image.open(p)) for p in sorted((data / "labels" / args.split).glob("*.png"))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        st = Studio(Store(data_dir=Path(tmp) / "data"), device="cpu")
        import_dataset(st.store, "source", data, args.split)
        reordered = [c["name"] for c in reversed(classes)]
        lut = np.full(256, 255, np.uint8)
        for c in classes:
            lut[c["index"]] = reordered.index(c["name"])
        for fmt in args.formats.split(","):
            z = st.export("source", fmt, include_drafts=False)
            st.create_project(f"into-{fmt}", "\n".join(reordered))
            t0 = time.perf_counter()
            rep = st.upload(f"into-{fmt}", [z], predict=False)
            upload_s = time.perf_counter() - t0
            st.wait_idle(1800)
            idle_s = time.perf_counter() - t0
            p = st.store.get_project(f"into-{fmt}")
            exact = 0
            for im in st.store.list_images(p.id):
                cm = st.store.get_annotation(im.id).class_map
                want = lut[truth[Path(im.filename).stem]]
                want[want == 255] = p.ignore_index
                exact += bool(np.array_equal(cm, want))
            row = {"format": fmt, "zip_mb": round(z.stat().st_size / 2**20, 1), "images": len(rep.added),
                   "labelled": len(rep.labelled), "refused": len(rep.labels_refused) + len(rep.skipped),
                   "exact_maps": exact, "upload_s": round(upload_s, 2), "until_idle_s": round(idle_s, 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        st.store.close()
    out = {"machine": f"{platform.machine()}, {args.threads} torch threads", "torch": torch.__version__,
           "split": args.split, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
