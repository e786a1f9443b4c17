"""Instant adaptation in the app (segui.adapting): time from a submit to the adapter
updated and to the queue's next image predicted again, and whether that prediction
reflects the corrections.

    python -m benchmarks.bench_instant_app [--out runs/instant/app.json]

The demo's 14 CamVid frames (drive 0016E5, which the shipped model never trained on)
are all uploaded unlabelled to a Studio(instant=True) on a fresh data folder; then the
10 with ground truth (segui/demo/labelled) are submitted one by one, in name order,
through ``Studio.save_edits`` as the Label screen does. After each submit: the submit
call's own time, the background latency from submit to the adapter updated (the
worker's clock), the time until the stored prediction of the queue's first (most
uncertain) image changed, and the wrong pixels of the stored predictions of the
ground-truth frames not yet submitted, against the shipped model's on the same frames.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from models.data import load_label
    from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio
    from storage import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench_instant_app_"))
    demo = tmp / "demo"
    demo.mkdir()
    shutil.copy(DEMO_DIR / "classes.json", demo)
    truth_files = sorted((DEMO_DIR / "labelled").glob("*.jpg"))
    for f in [*DEMO_DIR.glob("*.jpg"), *truth_files]:
        shutil.copy(f, demo / f.name)            # every frame unlabelled
    st = Studio(Store(data_dir=tmp / "data"), instant=True)
    st.ensure_demo(demo)
    st.wait_idle(300)
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.model_version(p.id)
    by_name = {im.filename: im for im in st.store.list_images(p.id)}
    truth = {}
    for f in truth_files:
        im = by_name[f.name]
        truth[im.id] = load_label(f.with_suffix(".png"), (im.width, im.height))
    base = {iid: st.store.get_prediction(iid, mv.id).class_map for iid in truth}

    def wrong(iid, cm):
        t = truth[iid]
        m = t != p.ignore_index
        return int(((cm != t) & m).sum()), int(m.sum())

    rows = []
    for k, f in enumerate(truth_files):
        iid = by_name[f.name].id
        loaded = st.prepare(iid).loaded
        st.wait_idle(300)                          # the prepare's own work out of the clock
        top = st.next_image(p.id)
        top_before = st.store.get_prediction(top, mv.id).class_map if top is not None else None
        last_at = st.instant_status(p.id).get("at")
        t0 = time.perf_counter()
        st.save_edits(loaded, truth[iid], "bench", "submitted")
        t_submit = time.perf_counter() - t0
        t_next = None
        while time.perf_counter() - t0 < 120:
            if top is not None and t_next is None and not np.array_equal(
                    st.store.get_prediction(top, mv.id).class_map, top_before):
                t_next = time.perf_counter() - t0
            if st.instant_status(p.id).get("at") != last_at and (top is None or t_next is not None):
                break
            time.sleep(0.005)
        status = st.instant_status(p.id)
        st.wait_idle(300)
        rest = [j for j in truth if st.store.get_image(j).status == "unlabelled"]
        w_now = [wrong(j, st.store.get_prediction(j, mv.id).class_map) for j in rest]
        w_base = [wrong(j, base[j]) for j in rest]
        row = {"submit": k + 1, "image": f.name, "submit_call_s": round(t_submit, 4),
               "adapter_updated_s": round(status["latency"], 3), "fit_s": round(status["seconds"], 3),
               "next_prediction_s": None if t_next is None else round(t_next, 3),
               "next_changed": t_next is not None, "images": status["images"],
               "rest": len(rest),
               "wrong_rest_vs_base": (round(sum(a for a, _ in w_now) / max(1, sum(a for a, _ in w_base)), 3)
                                      if rest else None)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    lat = [r["adapter_updated_s"] for r in rows]
    nxt = [r["next_prediction_s"] for r in rows if r["next_prediction_s"] is not None]
    summary = {"median_adapter_updated_s": statistics.median(lat), "max_adapter_updated_s": max(lat),
               "median_next_prediction_s": statistics.median(nxt) if nxt else None,
               "next_changed": sum(r["next_changed"] for r in rows), "submits": len(rows),
               "median_submit_call_s": statistics.median(r["submit_call_s"] for r in rows),
               "median_fit_s": statistics.median(r["fit_s"] for r in rows)}
    print(json.dumps(summary))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    st.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return summary


if __name__ == "__main__":
    main()
