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

    python -m benchmarks.bench_instant_app --submit-next [--out ...]

does what the Label screen's Submit & next does instead (``save_edits``, ``instant_wait``,
``next_image``, ``open_in_project``), with the next image prepared ahead before each
submit as the page does: the time from the submit to the next image opened, whether its
map was predicted by the adapter that learnt the submit, and its wrong pixels (when it has
ground truth) against the map prepared ahead, which is what the page showed before
2026-12-07 (the next image was predicted before the submit was learnt).

    python -m benchmarks.bench_instant_app --submit-next --val-frames 40 [--data ../shared/datasets/camvid]

the same over the first N CamVid val frames (all with ground truth, none labelled at the
start) instead of the demo's, so that every next image can be scored.
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
    ap.add_argument("--submit-next", action="store_true",
                    help="time the Label screen's Submit & next: submit to the next image opened, adapted")
    ap.add_argument("--val-frames", type=int, default=0,
                    help="the first N CamVid val frames of --data instead of the demo's (with --submit-next)")
    ap.add_argument("--data", default="../shared/datasets/camvid", help="CamVid (for --val-frames)")
    args = ap.parse_args(argv)

    from models.data import load_label
    from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio
    from storage import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench_instant_app_"))
    demo = tmp / "demo"
    demo.mkdir()
    shutil.copy(DEMO_DIR / "classes.json", demo)
    if args.val_frames:
        truth_files = sorted((Path(args.data) / "images" / "val").glob("*.jpg"))[:args.val_frames]
        label_of = {f.name: Path(args.data) / "labels" / "val" / f"{f.stem}.png" for f in truth_files}
        for f in truth_files:
            shutil.copy(f, demo / f.name)        # every frame unlabelled
    else:
        truth_files = sorted((DEMO_DIR / "labelled").glob("*.jpg"))
        label_of = {f.name: f.with_suffix(".png") for f in truth_files}
        for f in [*DEMO_DIR.glob("*.jpg"), *truth_files]:
            shutil.copy(f, demo / f.name)        # every frame unlabelled
    st = Studio(Store(data_dir=tmp / "data"), instant=True)
    st.ensure_demo(demo)
    st.wait_idle(300)
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.model_version(p.id)
    by_name = {im.filename: im for im in st.store.list_images(p.id)}
    truth = {}
    for f in truth_files:
        im = by_name[f.name]
        truth[im.id] = load_label(label_of[f.name], (im.width, im.height))
    base = {iid: st.store.get_prediction(iid, mv.id).class_map for iid in truth}

    def wrong(iid, cm):
        t = truth[iid]
        m = t != p.ignore_index
        return int(((cm != t) & m).sum()), int(m.sum())

    if args.submit_next:
        return submit_next(st, p, truth_files, by_name, truth, wrong, args.out, tmp)
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


def submit_next(st, p, truth_files, by_name, truth, wrong, out, tmp) -> dict:
    """The Label screen's Submit & next, timed (see the module's docstring)."""
    rows = []
    for k, f in enumerate(truth_files):
        iid = by_name[f.name].id
        loaded = st.open_in_project(p.id, iid).loaded
        st.prefetch_next(p.id, "unlabelled", iid)      # as the Label screen does on each open
        st.wait_idle(300)
        ahead_id = st.next_image(p.id, "unlabelled", (iid,))
        ahead = st.prepare(ahead_id) if ahead_id is not None else None    # the page's peek
        st.wait_idle(300)                          # the prepared work out of the clock
        t0 = time.perf_counter()
        st.save_edits(loaded, truth[iid], "bench", "submitted")
        done = st.instant_wait(iid)
        t_learnt = time.perf_counter() - t0
        nxt = st.next_image(p.id, "unlabelled", (iid,))
        opened = st.open_in_project(p.id, nxt) if nxt is not None else None
        t_open = time.perf_counter() - t0
        images = st.instant_status(p.id).get("images")
        row = {"submit": k + 1, "image": f.name, "learnt_in_wait": done, "learnt_s": round(t_learnt, 3),
               "next_opened_s": round(t_open, 3), "next": nxt, "next_was_prepared_ahead": nxt == ahead_id,
               "next_adapted_from": st.adapted_from(nxt) if nxt is not None else None, "images": images,
               "reflects_submit": nxt is not None and st.adapted_from(nxt) == images}
        if opened is not None and nxt in truth and nxt == ahead_id:
            row["wrong_shown"], _ = wrong(nxt, opened.loaded.class_map)
            row["wrong_prepared_ahead"], _ = wrong(nxt, ahead.loaded.class_map)
        rows.append(row)
        print(json.dumps(row), flush=True)
        st.wait_idle(300)
    both = [r for r in rows if "wrong_shown" in r]
    summary = {"submits": len(rows), "reflects_submit": sum(r["reflects_submit"] for r in rows),
               "median_learnt_s": statistics.median(r["learnt_s"] for r in rows),
               "median_next_opened_s": statistics.median(r["next_opened_s"] for r in rows),
               "max_next_opened_s": max(r["next_opened_s"] for r in rows),
               "wrong_shown_vs_prepared_ahead": (round(sum(r["wrong_shown"] for r in both)
                                                       / max(1, sum(r["wrong_prepared_ahead"] for r in both)), 3)
                                                 if both else None), "compared": len(both)}
    print(json.dumps(summary))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    st.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return summary


if __name__ == "__main__":
    main()
