"""The Explore screen on a 10,000-image project (issue 19), SQLite or PostgreSQL.

    python benchmarks/bench_explore.py                                   # SQLite in a temp dir
    python benchmarks/bench_explore.py --db postgresql+psycopg://user:pw@127.0.0.1:5432/db
    python benchmarks/bench_explore.py --browser --port 7941             # + first paint in Chromium
    python benchmarks/bench_explore.py --throughput 101 --predict 10     # metrics on CamVid val

Builds project "explore10k": 10,000 SYNTHETIC SMALL images (64x48 crops of CamVid val
frames, one pixel changed per image so each is its own file), 60% annotated (submitted
or draft, five authors over 30 days, a 1-in-5 val split), each with a stored prediction,
metrics as the background computation leaves them (entropy, IoU, accuracy, 160x120
thumbnails, class areas, confusion counts computed from the stored maps). Rows are
bulk-inserted (the build is not what is measured); what is measured goes through
``Studio`` as the screen calls it:

- first page: ``explore_page`` (32 rows with thumbnails) and the whole refresh the
  Explore tab runs when opened (page, progress, confusion matrix), target <= 1 s;
- a sort or filter change (another query's first page), target <= 300 ms;
- a confusion cell's first page (24 thumbnails outlined on the fly);
- ``--browser``: in Chromium, from the Explore tab's click to the first thumbnails drawn,
  and from a sort-order click to the reordered grid;
- ``--throughput N``: per-image metrics throughput on N real CamVid val images (480x360,
  imported with their labels): with the active model's predictions already stored (a
  job's promotion predicts the queue) and, for ``--predict M`` images, with the forward
  pass included (a new model version, nothing predicted yet).
On PostgreSQL a fresh schema is created for the run and dropped afterwards.
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
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segui.explore import PAGE, image_scores, overlay, palette_key, thumb_size  # noqa: E402
from segui.handlers import Studio  # noqa: E402
from storage import Store  # noqa: E402
from storage.datasets import import_dataset, read_classes_json  # noqa: E402
from storage.files import digest  # noqa: E402
from storage.imaging import encode_class_map  # noqa: E402
from storage.models import (Annotation, Image, ImageClassArea, ImageConfusion, ImageMetrics,  # noqa: E402
                            Prediction, utcnow)

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "camvid"
PROJECT = "explore10k"
W, H = 64, 48


def ms(xs):
    xs = sorted(xs)
    out = {"median_ms": round(statistics.median(xs) * 1e3, 1), "p95_ms": round(xs[int(0.95 * (len(xs) - 1))] * 1e3, 1),
           "n": len(xs)}
    if len(xs) <= 8:
        out["all_ms"] = [round(x * 1e3) for x in xs]
    return out


def _jpeg(a):
    buf = io.BytesIO()
    PILImage.fromarray(a).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _png(a):
    buf = io.BytesIO()
    PILImage.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def build(store: Store, studio: Studio, camvid: Path, n: int, seed: int = 0) -> dict:
    """The 10k project (see the module doc); returns what it holds."""
    classes, ignore = read_classes_json(camvid / "classes.json")
    store.create_project(PROJECT, classes, ignore_index=ignore)
    p = store.get_project(PROJECT)
    mv = studio.model_version(p.id)
    pal = palette_key(p)
    rng = np.random.default_rng(seed)
    frames = sorted((camvid / "images" / "val").iterdir())[:50]
    # 50 templates: a small photo, its label map, a "prediction" (the labels with errors)
    tmpl = []
    for f in frames:
        photo = np.asarray(PILImage.open(f).convert("RGB").resize((W, H), PILImage.BILINEAR))
        lbl = np.asarray(PILImage.open(camvid / "labels" / "val" / (f.stem + ".png")).resize((W, H), PILImage.NEAREST))
        pred = lbl.copy()
        noise = rng.random(lbl.shape) < 0.15
        pred[noise] = rng.integers(0, len(p.classes), int(noise.sum()))
        pred[pred == ignore] = 0
        th, tw = thumb_size(H, W)
        big = np.asarray(PILImage.fromarray(photo).resize((160, 120), PILImage.BILINEAR))
        iou, acc, conf = image_scores(pred, lbl, p)
        areas_p = {("p", int(c)): float((pred == c).mean()) for c in np.unique(pred) if c != ignore}
        areas_a = {("a", int(c)): float((lbl == c).mean()) for c in np.unique(lbl) if c != ignore}
        tmpl.append(dict(photo=photo, ann_png=encode_class_map(lbl), pred_png=encode_class_map(pred),
                         thumb_pred=_jpeg(overlay(big, pred, p)), thumb_ann=_jpeg(overlay(big, lbl, p)),
                         iou=iou, acc=acc, conf=conf, areas_p=areas_p, areas_a=areas_a))
    now = utcnow()
    authors = ["ann", "bob", "cleo", "dev", "eve"]
    images, anns, preds, mets, areas, confs = [], [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(n):
        t = tmpl[i % len(tmpl)]
        photo = t["photo"].copy()
        photo[0, 0] = [(i >> 16) & 255, (i >> 8) & 255, i & 255]     # each image its own bytes
        data = _png(photo)
        sha = digest(data)
        path = store.blobs.path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        iid = i + 1
        labelled = i % 5 < 3
        status = "unlabelled" if not labelled else ("submitted" if i % 5 else "draft")
        when = now - timedelta(days=int(rng.integers(0, 30)), minutes=int(rng.integers(0, 1440)))
        images.append(dict(id=iid, project_id=p.id, sha256=sha, filename=f"synthetic_{i:05d}.png", format="PNG",
                           normalised=False, width=W, height=H, split="val" if i % 5 == 1 else "train",
                           created_at=now, revision=1 if labelled else 0, status=status,
                           annotated_by=authors[i % 5] if labelled else None, annotated_at=when if labelled else None,
                           uncertainty=float(rng.random()), review="pending" if status == "submitted" else None,
                           review_score=float(rng.random()) if status == "submitted" else None))
        entropy = float(np.clip(rng.normal(0.08, 0.04), 0.001, 1))
        preds.append(dict(image_id=iid, model_version_id=mv.id, png=t["pred_png"], uncertainty=entropy,
                          entropy=entropy, created_at=now))
        if labelled:
            anns.append(dict(image_id=iid, revision=1, author=authors[i % 5], status=status, png=t["ann_png"],
                             created_at=when))
        mets.append(dict(image_id=iid, project_id=p.id, model_version_id=mv.id, prediction_at=now,
                         revision=1 if labelled else 0, entropy=entropy, iou=t["iou"] if labelled else None,
                         accuracy=t["acc"] if labelled else None, palette=pal, thumb_pred=t["thumb_pred"],
                         thumb_ann=t["thumb_ann"] if labelled else None, computed_at=now))
        areas += [dict(image_id=iid, project_id=p.id, source=s, class_index=c, share=v)
                  for (s, c), v in list(t["areas_p"].items()) + (list(t["areas_a"].items()) if labelled else [])]
        if labelled:
            confs += [dict(image_id=iid, project_id=p.id, true_class=a, pred_class=b, pixels=v)
                      for (a, b), v in t["conf"].items()]
    files_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with store.engine.begin() as c:
        for table, rows in ((Image, images), (Annotation, anns), (Prediction, preds), (ImageMetrics, mets),
                            (ImageClassArea, areas), (ImageConfusion, confs)):
            for k in range(0, len(rows), 5000):
                c.execute(insert(table), rows[k:k + 5000])
        if store.dialect == "postgresql":
            c.execute(text("SELECT setval(pg_get_serial_sequence('images', 'id'), (SELECT max(id) FROM images))"))
            c.execute(text("ANALYZE"))
        else:
            c.execute(text("ANALYZE"))
    return {"images": n, "annotated": len(anns), "class_area_rows": len(areas), "confusion_rows": len(confs),
            "files_s": round(files_s, 1), "rows_s": round(time.perf_counter() - t0, 1)}


def queries(studio: Studio, reps: int) -> dict:
    out = {}

    def timed(name, fn, target=None):
        fn()                                             # the first call (cold caches) is reported apart
        t = time.perf_counter()
        fn()
        first = time.perf_counter() - t
        xs = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - t)
        out[name] = {**ms(xs), **({"target_ms": target} if target else {}), "second_call_ms": round(first * 1e3, 1)}

    from segui.screens.explore import ANY  # noqa: F401  (the screen's module imports: as the app does)
    cold = time.perf_counter()
    page = studio.explore_page(PROJECT, {"sort": "iou"})
    out["first_page_cold_ms"] = round((time.perf_counter() - cold) * 1e3, 1)
    assert page["total"] > 0 and len(page["rows"]) == PAGE

    def tab():
        studio.explore_page(PROJECT, {"sort": "iou"})
        studio.explore_progress(PROJECT)
        studio.explore_confusion(PROJECT, "val")
    timed("open_tab_page_progress_confusion", tab, 1000)
    timed("first_page_sort_iou", lambda: studio.explore_page(PROJECT, {"sort": "iou"}), 1000)
    timed("sort_uncertainty_desc", lambda: studio.explore_page(PROJECT, {"sort": "uncertainty", "descending": True}), 300)
    timed("sort_date", lambda: studio.explore_page(PROJECT, {"sort": "date", "descending": True}), 300)
    timed("sort_author", lambda: studio.explore_page(PROJECT, {"sort": "author"}), 300)
    timed("filter_val_iou_range", lambda: studio.explore_page(PROJECT, {"sort": "iou", "split": "val",
                                                                      "iou_min": 0.3, "iou_max": 0.8}), 300)
    timed("filter_class_1pct_bicyclist", lambda: studio.explore_page(PROJECT, {"sort": "iou", "class": "bicyclist",
                                                                             "class_min_pct": 1}), 300)
    timed("filter_status_author_dates", lambda: studio.explore_page(
        PROJECT, {"status": "submitted", "author": "bob", "date_from": "2000-01-01", "date_to": "2100-01-01"}), 300)
    timed("filter_disagreement", lambda: studio.explore_page(PROJECT, {"sort": "disagreement", "descending": True,
                                                                     "disagreement_min": 0.5}), 300)
    timed("page_at_offset_9000", lambda: studio.explore_page(PROJECT, {"sort": "iou"}, 9000, PAGE), 300)
    timed("confusion_matrix_val", lambda: studio.explore_confusion(PROJECT, "val"))
    timed("confusion_matrix_all_submitted", lambda: studio.explore_confusion(PROJECT, "annotated"))
    conf = studio.explore_confusion(PROJECT, "annotated")
    m = np.array(conf["matrix"])
    np.fill_diagonal(m, 0)
    i, j = np.unravel_index(m.argmax(), m.shape)
    cell = {"cell": {"t": conf["indices"][i], "p": conf["indices"][j]}, "scope": "annotated"}
    timed("confusion_cell_first_page_24_outlined", lambda: studio.explore_page(PROJECT, cell))
    out["page_json_kb"] = round(len(json.dumps(page)) / 1024, 1)
    return out


def browser(studio: Studio, port: int) -> dict:
    """Chromium: the Explore tab's first paint and a sort change, on the served app."""
    from playwright.sync_api import sync_playwright

    from segui.ui import LAUNCH_OPTIONS, build_app
    from tests.app.canvas_page import launch

    app = build_app(studio)
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       **LAUNCH_OPTIONS)
    G = "document.querySelector('.exg-root').__exg.G"
    drawn = f"""() => {{ const G = {G}; if (!G.total) return false; const imgs = [...G.cells.values()]
        .map((c) => c.querySelector('img')); return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0); }}"""
    out = {}
    try:
        with sync_playwright() as pw:
            b = launch(pw)
            page = b.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => { const r = document.querySelector('.seg-root'); return r && r.__seg && r.__seg.S.img; }",
                                   timeout=120000)
            time.sleep(5)   # the page settles: its load events (every screen's refresh) run first
            firsts = []
            for k in range(5):
                if k:
                    page.get_by_role("tab", name="Label").click()
                    page.evaluate(f"() => {{ {G}.seq = null; {G}.total = 0; for (const c of {G}.cells.values()) c.remove(); {G}.cells.clear(); }}")
                    time.sleep(1)
                t = time.perf_counter()
                page.get_by_role("tab", name="Explore").click()
                page.wait_for_function(drawn, timeout=60000, polling="raf")
                firsts.append(time.perf_counter() - t)
            out["browser_first_paint"] = {**ms(firsts), "target_ms": 1000,
                                          "cells": page.evaluate(f"() => {G}.cells.size")}
            sorts = []
            for k in range(6):
                before = page.evaluate(f"() => {G}.seq")
                t = time.perf_counter()
                page.get_by_label("highest first").click()
                page.wait_for_function(f"() => {G}.seq !== {before}", timeout=60000, polling="raf")
                page.wait_for_function(drawn, timeout=60000, polling="raf")
                sorts.append(time.perf_counter() - t)
            out["browser_sort_change"] = {**ms(sorts), "target_ms": 300}
            scrolls = []
            for top in (50_000, 200_000, 10_000_000):
                t = time.perf_counter()
                page.evaluate(f"() => document.querySelector('.exg-scroll').scrollTop = {top}")
                # every cell of the window at the new position is there, with its row and thumbnail
                page.wait_for_function(f"""() => {{ const X = document.querySelector('.exg-root').__exg, G = X.G;
                    const sc = document.querySelector('.exg-scroll');
                    const w = X.GC.visible(sc.scrollTop, sc.clientHeight, X.ROW_H, G.cols, G.total, 0);
                    if (w.last <= w.first) return false;
                    for (let i = w.first; i < w.last; i++) {{ const c = G.cells.get(i);
                        if (!c || !G.pages.row(i)) return false;
                        const im = c.querySelector('img'); if (!im.complete || !im.naturalWidth) return false; }}
                    return true; }}""", timeout=60000, polling="raf")
                scrolls.append(time.perf_counter() - t)
            out["browser_scroll_jump_filled"] = ms(scrolls)
            page.screenshot(path=str(Path(__file__).resolve().parents[1] / "docs" / "img" / "explore-10k.png"))
            b.close()
    finally:
        app.close()
    return out


def throughput(store: Store, studio: Studio, camvid: Path, n: int, n_predict: int) -> dict:
    t = time.perf_counter()
    import_dataset(store, "camvid-val", camvid, "val", limit=n)
    out = {"import_s": round(time.perf_counter() - t, 1)}
    pid = store.get_project("camvid-val").id
    studio.warm_up(pid)
    # with the forward pass (nothing predicted by this version yet)
    if n_predict:
        t = time.perf_counter()
        k = studio.refresh_explore_metrics(pid, limit=n_predict)
        s = time.perf_counter() - t
        out["with_forward_pass"] = {"images": k, "seconds": round(s, 1), "images_per_s": round(k / s, 2)}
    # predictions stored: predict the rest first (not timed), then time the metrics alone
    for im in store.list_images(pid):
        if store.get_prediction(im.id) is None:
            studio.predict(pid, im.id)
    studio.refresh_explore_metrics(pid)
    store.set_class_color(pid, store.get_project(pid).classes[0].index, "#123456")   # every thumbnail stale
    t = time.perf_counter()
    k = studio.refresh_explore_metrics(pid)
    s = time.perf_counter() - t
    out["predictions_stored"] = {"images": k, "seconds": round(s, 2), "images_per_s": round(k / s, 1),
                                 "size": "480x360"}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL; default: SQLite file in a temp dir")
    ap.add_argument("--camvid", default=str(CAMVID))
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--browser", action="store_true", help="also measure in Chromium (serves the app)")
    ap.add_argument("--port", type=int, default=7941)
    ap.add_argument("--throughput", type=int, default=0, help="CamVid val images for the metrics throughput")
    ap.add_argument("--predict", type=int, default=0, help="of which this many with the forward pass")
    args = ap.parse_args()
    camvid = Path(args.camvid)
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
        res: dict = {}
        try:
            store = Store(url, Path(tmp) / "data", sqlite_synchronous="NORMAL")
            studio = Studio(store)
            res["build"] = build(store, studio, camvid, args.images)
            res["queries"] = queries(studio, args.reps)
            if args.browser:
                try:
                    res["browser"] = browser(studio, args.port)
                except Exception as e:      # keep the other figures
                    res["browser"] = {"error": repr(e)[:300]}
            if args.throughput:
                res["throughput"] = throughput(store, studio, camvid, args.throughput, args.predict)
            store.close()
        finally:
            if cleanup:
                cleanup()
    backend = "postgresql" if args.db and args.db.startswith("postgresql") else "sqlite"
    print(json.dumps({"backend": backend, "python": platform.python_version(), **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
