"""What removing a class costs: ``Store.remove_class`` decodes every saved revision of
the project's images once, to refuse a class that one of them paints.

    python -m benchmarks.bench_remove_class [--images 2000] [--camvid ../shared/datasets/camvid]

A SQLite store in a temp folder gets ``--images`` images, each with one submitted
revision (a CamVid train label map, classes folded into five), and one unused class;
prints the time to fill it and the time ``remove_class`` takes to scan and remove it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from storage import Store, imaging


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--camvid", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/datasets/camvid")
    args = ap.parse_args(argv)
    labels = sorted((args.camvid / "labels" / "train").glob("*.png"))[:50]
    if not labels:
        raise SystemExit(f"no label maps under {args.camvid / 'labels' / 'train'}")
    maps = [np.minimum(np.array(Image.open(f)), 4).astype(np.uint8) for f in labels]
    with tempfile.TemporaryDirectory() as d:
        st = Store(data_dir=Path(d))
        st.create_project("p", ["road", "car", "sky", "tree", "building"])
        unused = st.add_class("p", "bcycle").classes[-1].index
        t0 = time.perf_counter()
        for i in range(args.images):
            rgb = np.zeros((360, 480, 3), np.uint8)
            rgb[0, 0] = (i % 256, i // 256 % 256, 7)          # distinct bytes: no duplicates
            im = st.add_image("p", imaging.encode_png_rgb(rgb), f"{i}.png")
            st.save_annotation(im.id, maps[i % len(maps)], "a", "submitted")
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        st.remove_class("p", unused)
        took = time.perf_counter() - t0
        st.close()
    print(f"filled {args.images} images in {fill:.1f} s; remove_class scanned {args.images} revisions "
          f"in {took:.2f} s ({1000 * took / args.images:.2f} ms each)")


if __name__ == "__main__":
    main()
