"""The Label screen's image strip on a big project: what one page and its thumbnails cost.

    python benchmarks/bench_strip.py [--images 3000] [--data ../shared/datasets/camvid] [--out benchmarks/results/cpu_bench_strip.json]

Builds a project of ``--images`` images in a fresh data folder (the CamVid train and
val photos, then copies of them with a few pixels changed so that every file is a new
image), saves an annotation on one image in ten, and measures with ``Studio`` (no
browser):

- ``strip``: one page of the strip (what every opened image's answer carries), for an
  image at the start, the middle and the end of the project;
- thumbnails, cold: made from the photo (and the annotation) and written to the cache
  folder, per image; warm: from memory; disk: from the cache folder (memory emptied);
- the size of a thumbnail (bytes of the JPEG) and of a page's answer.
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segui.handlers import Studio  # noqa: E402
from segui.thumbnails import STRIP_PAGE  # noqa: E402
from storage import Store  # noqa: E402


def ms(fn, n=1):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "camvid"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    photos = sorted(Path(a.data, "images").glob("*/*.jpg"))
    if not photos:
        sys.exit(f"no CamVid images under {a.data}/images")
    with tempfile.TemporaryDirectory() as tmp:
        st = Studio(Store(data_dir=Path(tmp) / "data"))
        st.create_project("big", "sky\nbuilding\nroad\ncar")
        t0 = time.perf_counter()
        for k in range(a.images):
            im = np.asarray(Image.open(photos[k % len(photos)]).convert("RGB")).copy()
            im[0, 0, 0] ^= (k // len(photos)) & 255   # a copy: a new file
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=90)
            st.store.add_image("big", buf.getvalue(), f"{photos[k % len(photos)].stem}_{k}.jpg")
        build_s = time.perf_counter() - t0
        ids = [im.id for im in st.store.list_images("big", order="id")]
        rng = np.random.default_rng(0)
        for iid in ids[::10]:
            info = st.store.get_image(iid)
            cm = rng.integers(0, 4, (info.height // 8, info.width // 8), dtype=np.uint8)
            st.store.save_annotation(iid, np.kron(cm, np.ones((8, 8), np.uint8)), "bench", "draft", 0)
        out = {"images": a.images, "page_size": STRIP_PAGE, "build_s": round(build_s, 1),
               "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
               "date": time.strftime("%Y-%m-%d")}
        for where, iid in [("start", ids[0]), ("middle", ids[len(ids) // 2]), ("end", ids[-1])]:
            t = ms(lambda: st.strip("big", iid), 15)
            out[f"strip_{where}_ms_median"] = round(statistics.median(t), 1)
        page = st.strip("big", ids[len(ids) // 2])
        out["strip_answer_bytes"] = len(json.dumps(page))
        page_ids = [it["id"] for it in page["items"]]
        cold = [ms(lambda i=i: st.thumbnails("big", [i]))[0] for i in page_ids]
        warm = ms(lambda: st.thumbnails("big", page_ids), 10)
        st._thumb_cache()[1].clear()
        disk = ms(lambda: st.thumbnails("big", page_ids))
        sizes = [len(t["url"]) * 3 // 4 for t in st.thumbnails("big", page_ids)]
        out.update(thumb_cold_ms_median=round(statistics.median(cold), 1), thumb_cold_ms_max=round(max(cold), 1),
                   page_warm_ms_median=round(statistics.median(warm), 1), page_from_disk_ms=round(disk[0], 1),
                   thumb_bytes_median=int(statistics.median(sizes)), thumb_bytes_max=max(sizes),
                   page_thumbs_bytes=sum(sizes))
        st.store.close()
    print(json.dumps(out, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
