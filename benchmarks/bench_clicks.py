"""Clicks to an object (issue 18): NoC@85 / NoC@90 of the click-to-object tool (O) and
of the superpixel tool driven the same way, on CamVid objects.

    python -m benchmarks.bench_clicks --split val [--every 1] [--per-image 0] [--out runs/clicks_val.json]
    python -m benchmarks.bench_clicks --split train --every 6 --per-image 6 --grid   # choose the settings
    python -m benchmarks.bench_clicks --page [--port 7921]      # per-click latency in the page (Chromium)

An object is an 8-connected region of one class (void excluded) of at least
``--min-area`` pixels (400) in a CamVid label map. Each object is clicked by the
standard simulator (``models.click_object.next_click``, as in RITM): the first click at
the object's interior point farthest from its boundary, each next click at the
interior point of the largest error region, positive for a missed part, negative for a
wrongly included part; void pixels count neither way. NoC@85 (@90) is the number of
clicks until the IoU reaches 85% (90%), at most ``--max-clicks`` (20; an object that
never gets there counts 20 and is reported as a miss).

Tools, both fed exactly the same click sequence logic:

- ``object``: ``models.click_object.object_from_clicks`` over the shipped model's stride-4 pixel
  embeddings of the image (one forward pass per image, label set = CamVid's 11 classes,
  as the app caches them) and the image itself (the edge snap after each click,
  ``--edge-radius``, 0 = off), with the app's SLIC superpixels for the (off) superpixel snap;
- ``head``: ``models.click_head`` (the small click-conditioned network, weights in
  ``--head``, default ``weights/click_head``; skipped when they are missing or with
  ``--no-head``) over the image, the same embeddings and class probabilities;
- ``superpixel``: each positive click adds the SLIC superpixel under it (the app's
  ``segui.smart_tools.superpixels``, ~300 px each), each negative click removes it.

Sampling: every ``--every``-th image of the split (sorted by name) and, with
``--per-image K``, K objects per image drawn at random (seed ``--seed``); 0 = all.
``--page`` measures instead the per-click latency as the labeller sees it: the app on
the demo project in headless Chromium at 1440x900, the O tool on three images (features
made ready when the tool is picked, as the page does), ten clicks each (positive and
negative in turn, at fixed points), from the click to the preview drawn (the server
call, the PNG's decoding and the preview's painting), and the server's own part.

``--grid`` evaluates a grid of settings on the chosen images (for train) and prints
them sorted by NoC@85; otherwise one run with ``--threshold/--spatial/--snap`` (the
defaults are the settings the app uses, ``ObjectSettings()``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.click_head import HeadFeatures, head_from_clicks, load_head  # noqa: E402
from models.click_object import (ObjectFeatures, ObjectSettings, clicks_to_iou,  # noqa: E402
                                 object_from_clicks, objects_of, superpixel_clicks)

ROOT = Path(__file__).resolve().parents[1]


def load_split(a) -> tuple[list[str], int, list[dict]]:
    """Images, their embeddings, superpixels and sampled objects."""
    import torch

    from models.adapt import embed_image, word_adapter
    from models.inference import Predictor
    from segui.smart_tools import superpixels

    torch.set_num_threads(a.threads)
    meta = json.loads((a.data / "classes.json").read_text())
    names = [c["name"] for c in meta["classes"]]
    ignore = int(meta["ignore_index"])
    pred = Predictor.load(a.model, device="cpu")
    adapter = word_adapter(pred, names)
    rng = np.random.default_rng(a.seed)
    files = sorted((a.data / "images" / a.split).glob("*"))[::a.every]
    items = []
    for f in files:
        image = np.asarray(Image.open(f).convert("RGB"))
        label = np.asarray(Image.open(a.data / "labels" / a.split / (f.stem + ".png")))
        objs = objects_of(label, ignore, a.min_area)
        if a.per_image and len(objs) > a.per_image:
            objs = [objs[i] for i in sorted(rng.choice(len(objs), a.per_image, replace=False))]
        if not objs:
            continue
        emb = embed_image(pred, image, names, with_base_map=False, scale=a.input_scale, flip=a.flip)
        seg = superpixels(image)
        feat = ObjectFeatures.from_embeddings(emb, adapter, seg, image)
        item = {"name": f.name, "valid": label != ignore, "objects": objs, "feat": feat, "seg": seg}
        if a.head_model is not None:
            item["head"] = HeadFeatures(a.head_model, image, feat.grid.reshape(feat.e, feat.h, feat.w),
                                        feat.probs.reshape(-1, feat.h, feat.w))
        items.append(item)
    return names, ignore, items


def run(items, settings: ObjectSettings | str | None, max_clicks: int) -> list[dict]:
    """One row per object: class, area, NoC@85/90 and whether they were reached.
    ``settings``: the grow's, None for the superpixel tool, "head" for the click head."""
    rows = []
    for it in items:
        for c, gt in it["objects"]:
            if settings == "head":
                states_h: dict = {}

                def tool(clicks, feat=it["head"], states=states_h):
                    return head_from_clicks(feat, clicks, states)
            elif settings is None:
                def tool(clicks, seg=it["seg"]):
                    return superpixel_clicks(seg, clicks)
            else:
                states: dict = {}   # as the app does: the mask after each click prefix is kept

                def tool(clicks, feat=it["feat"], states=states):
                    return object_from_clicks(feat, clicks, settings, states)
            r = clicks_to_iou(gt, tool, it["valid"], max_clicks)
            rows.append({"image": it["name"], "class": c, "area": int(gt.sum()),
                         "noc85": r["noc"][0.85], "noc90": r["noc"][0.90],
                         "miss85": not r["reached"][0.85], "miss90": not r["reached"][0.90],
                         "iou1": round(r["ious"][0], 4) if r["ious"] else None})
    return rows


def summarise(rows: list[dict], names: list[str]) -> dict:
    def agg(rs):
        return {"objects": len(rs), "noc85": round(float(np.mean([r["noc85"] for r in rs])), 2),
                "noc90": round(float(np.mean([r["noc90"] for r in rs])), 2),
                "miss85": round(float(np.mean([r["miss85"] for r in rs])), 3),
                "miss90": round(float(np.mean([r["miss90"] for r in rs])), 3),
                "iou1": round(float(np.mean([r["iou1"] for r in rs])), 3)}
    out = {"all": agg(rows)}
    for c in sorted({r["class"] for r in rows}):
        out[names[c]] = agg([r for r in rows if r["class"] == c])
    return out


CLICKS = [(240, 320, 1), (100, 200, 0), (380, 300, 1), (240, 250, 0), (60, 330, 1),
          (420, 60, 0), (300, 340, 1), (200, 120, 0), (150, 300, 1), (330, 200, 0)]


def page_latency(port: int) -> dict:
    """Click-to-preview latency of the O tool in the page (see the module's doc)."""
    import platform
    import statistics
    import tempfile

    from playwright.sync_api import sync_playwright

    from segui.handlers import DEMO_PROJECT, Studio
    from segui.ui import LAUNCH_OPTIONS, build_app
    from storage import Store
    from tests.app.canvas_page import CanvasPage, launch

    st = Studio(Store(data_dir=Path(tempfile.mkdtemp(prefix="bench-clicks-")) / "data"))
    st.ensure_demo()
    st.wait_idle()
    st.warm_up()
    build_app(st).queue(default_concurrency_limit=2).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    S = "document.querySelector('.seg-root').__seg.S"
    page_ms, server_ms = [], []
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        c = CanvasPage(page)
        c.wait_image()
        ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")][:3]
        for iid in ids:
            if c.state()["image"] != iid:
                page.click(f".seg-strip [data-open='{iid}']")
                c.wait_image(iid)
            c.wait_idle()
            c.key("o")
            page.wait_for_timeout(3000)          # the warm-up call: the image's features
            page.evaluate(f"() => {{ {S}.objTimes = []; }}")
            for k, (x, y, positive) in enumerate(CLICKS):
                c.click(x + 0.5, y + 0.5, button="left" if positive else "right")
                page.wait_for_function(f"() => ({S}.objTimes || []).length >= {k + 1} || ({S}.obj && {S}.obj.clicks < {k + 1})",
                                       timeout=60_000)
            times = page.evaluate(f"() => {S}.objTimes")
            page_ms += [t[0] for t in times]
            server_ms += [t[1] for t in times]
            c.key("Escape")
        version = browser.version
        browser.close()

    def summ(xs):
        s = sorted(xs)
        return {"n": len(s), "median_ms": round(statistics.median(s), 1), "p90_ms": round(s[int(0.9 * (len(s) - 1))], 1),
                "max_ms": round(s[-1], 1)}
    return {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, no GPU, headless Chromium "
                       f"{version} --disable-gpu", "date": time.strftime("%Y-%m-%d"),
            "click_to_preview": summ(page_ms), "server": summ(server_ms)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "camvid")
    ap.add_argument("--model", default=str(ROOT / "weights" / "camvid"))
    ap.add_argument("--split", default="val", choices=("train", "val"))
    ap.add_argument("--every", type=int, default=1, help="every N-th image of the split")
    ap.add_argument("--per-image", type=int, default=0, help="objects drawn per image (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-area", type=int, default=400)
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", action="store_true", help="evaluate a grid of settings (tuning)")
    d = ObjectSettings()
    ap.add_argument("--threshold", type=float, default=d.threshold)
    ap.add_argument("--class-weight", type=float, default=d.class_weight)
    ap.add_argument("--spatial", type=float, default=d.spatial)
    ap.add_argument("--snap", type=int, default=int(d.snap), choices=(0, 1))
    ap.add_argument("--local", type=float, default=d.local)
    ap.add_argument("--far", type=float, default=d.far)
    ap.add_argument("--edge-radius", type=int, default=d.edge_radius,
                    help="the edge snap's guided-filter radius after each click (0: off, the grow of 2026-12-04)")
    ap.add_argument("--edge-eps", type=float, default=d.edge_eps)
    ap.add_argument("--edge-grid", action="store_true",
                    help="with --grid: the edge snap's grid of 2026-12-05 instead of the grow's")
    ap.add_argument("--gate-radius", type=float, default=d.gate_radius,
                    help="a correction disc wider than this (px) keeps only the click's own grow (0: off, before 2026-12-06)")
    ap.add_argument("--gate-grid", action="store_true",
                    help="with --grid: the disc gate's screen of 2026-12-06 (off, 12, 20, 32 px) instead of the grow's")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="the network sees each image enlarged this much for its embeddings (a finer grid)")
    ap.add_argument("--flip", action="store_true",
                    help="the embeddings also from the mirrored image, the two views averaged "
                         "(the app's O tool uses one view)")
    ap.add_argument("--no-superpixel", action="store_true", help="skip the superpixel baseline")
    ap.add_argument("--head", type=Path, default=ROOT / "weights" / "click_head",
                    help="the click head's folder (models.click_head); also measured when its weights are there")
    ap.add_argument("--no-head", action="store_true", help="skip the click head")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--page", action="store_true", help="per-click latency in the page instead")
    ap.add_argument("--port", type=int, default=7921)
    a = ap.parse_args(argv)
    if a.page:
        report = page_latency(a.port)
        print(json.dumps(report, indent=1))
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(report, indent=1))
        return report

    a.head_model = None if a.no_head or a.grid else load_head(a.head)
    t0 = time.perf_counter()
    names, _, items = load_split(a)
    n_obj = sum(len(it["objects"]) for it in items)
    print(f"{a.split}: {len(items)} images, {n_obj} objects (>= {a.min_area} px), "
          f"loaded in {time.perf_counter() - t0:.0f} s", flush=True)
    report: dict = {"split": a.split, "every": a.every, "per_image": a.per_image, "seed": a.seed,
                    "input_scale": a.input_scale, "flip": a.flip,
                    "images": len(items), "objects": n_obj, "min_area": a.min_area, "max_clicks": a.max_clicks}
    if a.grid:
        grid = []
        settings_grid = [ObjectSettings(threshold=th, class_weight=cw, local=local, edge_radius=a.edge_radius,
                                        gate_radius=0)
                         for cw, th, local in itertools.product((0.7, 1.0), (0.4, 0.5, 0.6), (0.8, 1.0, 1.3))]
        if a.edge_grid:     # the edge snap (chosen 2026-12-05): off, and radius x eps, at the grow's settings
            settings_grid = [ObjectSettings(edge_radius=0, threshold=0.6, gate_radius=0)] + [
                ObjectSettings(edge_radius=r, edge_eps=e, edge_subsample=sub, threshold=th, gate_radius=0)
                for r, e, sub, th in ((2, 1e-3, 2, 0.6), (2, 1e-2, 2, 0.6), (2, 1e-4, 2, 0.6), (2, 1e-3, 1, 0.6),
                                      (4, 1e-3, 2, 0.6), (2, 1e-3, 2, 0.5))]
        if a.gate_grid:     # the gate of wide correction discs (chosen 2026-12-06), on today's settings
            settings_grid = [ObjectSettings(gate_radius=g) for g in (0, 12, 20, 32)]
        # (a first look on 13 train images: the global grow alone, local=0, needed 9 to 11
        # clicks; snapping to the app's superpixels and a distance penalty made it worse)
        for s in settings_grid:
            t = time.perf_counter()
            summ = summarise(run(items, s, a.max_clicks), names)["all"]
            grid.append({"settings": s.to_dict(), **summ, "seconds": round(time.perf_counter() - t, 1)})
            print(json.dumps(grid[-1]), flush=True)
        grid.sort(key=lambda g: (g["noc85"], g["noc90"]))
        report["grid"] = grid
        print("best:", json.dumps(grid[0]))
    else:
        s = ObjectSettings(threshold=a.threshold, class_weight=a.class_weight, spatial=a.spatial, snap=bool(a.snap),
                           local=a.local, far=a.far, edge_radius=a.edge_radius, edge_eps=a.edge_eps,
                           gate_radius=a.gate_radius)
        t = time.perf_counter()
        rows = run(items, s, a.max_clicks)
        report["object"] = {"settings": s.to_dict(), "summary": summarise(rows, names),
                            "seconds": round(time.perf_counter() - t, 1)}
        print("object    ", json.dumps(report["object"]["summary"]["all"]), flush=True)
        head_rows = None
        if a.head_model is not None:
            t = time.perf_counter()
            head_rows = run(items, "head", a.max_clicks)
            report["head"] = {"weights": str(a.head), "summary": summarise(head_rows, names),
                              "seconds": round(time.perf_counter() - t, 1)}
            print("head      ", json.dumps(report["head"]["summary"]["all"]), flush=True)
        if not a.no_superpixel:
            t = time.perf_counter()
            sp_rows = run(items, None, a.max_clicks)
            report["superpixel"] = {"summary": summarise(sp_rows, names), "seconds": round(time.perf_counter() - t, 1)}
            print("superpixel", json.dumps(report["superpixel"]["summary"]["all"]), flush=True)
        report["rows"] = {"object": rows, **({"superpixel": sp_rows} if not a.no_superpixel else {}),
                          **({"head": head_rows} if head_rows is not None else {})}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
