"""Storage benchmark: the issue's targets on SQLite (default) or any URL.

    python benchmarks/bench_storage.py                       # SQLite file in a temp dir
    python benchmarks/bench_storage.py --db postgresql+psycopg://user:pw@127.0.0.1:5432/db

Targets: save one 480x360 annotation <= 20 ms; list 10,000 images with their status
<= 100 ms; import CamVid train (367 images) <= 30 s. On PostgreSQL a fresh schema is
created for the run and dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from storage import Store  # noqa: E402
from storage.datasets import import_dataset  # noqa: E402
from storage.models import Image, utcnow  # noqa: E402

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "camvid"


def ms(xs):
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs) * 1e3, 2),
            "p95_ms": round(xs[int(0.95 * (len(xs) - 1))] * 1e3, 2), "n": len(xs)}


def run(url: str | None, data_dir: Path, camvid: Path, saves: int, n_list: int) -> dict:
    out: dict = {}
    store = Store(url, data_dir)
    # 1. import CamVid train
    t = time.perf_counter()
    rep = import_dataset(store, "camvid", camvid, "train")
    out["import_camvid_train"] = {"seconds": round(time.perf_counter() - t, 2), "images": rep.added,
                                  "annotated": rep.annotated, "target_s": 30}
    # 2. save one 480x360 annotation (real CamVid label maps, each save a new revision)
    images = store.list_images("camvid")[:saves]
    times = []
    for info in images:
        ann = store.get_annotation(info.id)
        cm = ann.class_map.copy()
        cm[100:140, 200:260] = 3              # an edit
        t = time.perf_counter()
        store.save_annotation(info.id, cm, "bench", status="draft", base_revision=ann.revision)
        times.append(time.perf_counter() - t)
    out["save_annotation_480x360"] = {**ms(times), "target_ms": 20}
    # 3. list 10,000 images with status (rows bulk-inserted: listing never touches files)
    p = store.create_project("list10k", ["a", "b"])
    now = utcnow()
    statuses = ["unlabelled", "draft", "submitted"]
    rows = [dict(project_id=p.id, sha256=f"{i:064x}", filename=f"img_{i:05d}.jpg", format="JPEG",
                 normalised=False, width=480, height=360, split="train", created_at=now,
                 revision=0 if i % 3 == 0 else 1, status=statuses[i % 3],
                 annotated_by=None if i % 3 == 0 else "x", annotated_at=None if i % 3 == 0 else now,
                 uncertainty=(i % 97) / 97.0) for i in range(n_list)]
    with store.engine.begin() as c:
        c.execute(insert(Image), rows)
    times = []
    for _ in range(15):
        t = time.perf_counter()
        listed = store.list_images("list10k")
        times.append(time.perf_counter() - t)
    assert len(listed) == n_list
    out[f"list_{n_list}_images"] = {**ms(times), "target_ms": 100}
    times = []
    for _ in range(20):
        t = time.perf_counter()
        store.next_image("list10k")
        times.append(time.perf_counter() - t)
    out["next_image_10k"] = ms(times)
    store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL; default: SQLite file in a temp dir")
    ap.add_argument("--camvid", default=str(CAMVID))
    ap.add_argument("--saves", type=int, default=100)
    ap.add_argument("--list-n", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = args.db, None
        if url and url.startswith("postgresql"):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(url)
            with admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"

            def cleanup():
                with admin.begin() as c:
                    c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        try:
            res = run(url, Path(tmp) / "data", Path(args.camvid), args.saves, args.list_n)
        finally:
            if cleanup:
                cleanup()
    backend = "postgresql" if args.db and args.db.startswith("postgresql") else "sqlite"
    print(json.dumps({"backend": backend, "python": platform.python_version(), **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
