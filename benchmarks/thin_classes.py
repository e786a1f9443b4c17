"""Per-class region widths on CamVid labels: the data behind ``thin_classes``' threshold.

    python benchmarks/thin_classes.py [--data ../shared/datasets/camvid]

Prints, for train and val, the per-class median width of the 8-connected regions
(``segui.smart_tools.region_widths``) — plain median over regions, and the median
weighted by region area (the width of the region holding the class's median pixel) —
in pixels and as a fraction of the image's shorter side; then which classes a range of
thresholds selects at the labels' resolution (480x360) and at half and double that
(nearest-neighbour rescaling, as if the project's images had another size); then the
time ``thin_classes`` and ``clean_up`` take and what clean-up does to poles.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segui.smart_tools import (  # noqa: E402
    clean_up, region_widths_areas, thin_classes, weighted_median)

HERE = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val")


def load(data: Path, split: str, scale: float = 1.0) -> list[np.ndarray]:
    maps = []
    for f in sorted((data / "labels" / split).glob("*.png")):
        im = Image.open(f)
        if scale != 1.0:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST)
        maps.append(np.array(im))
    return maps


def per_class(maps: list[np.ndarray], ignore: int) -> dict[int, dict[str, float]]:
    """class -> plain and area-weighted median widths (px and fraction of shorter side)."""
    acc: dict[int, list] = {}
    for m in maps:
        short = min(m.shape)
        for c, (w, a) in region_widths_areas(m, ignore).items():
            acc.setdefault(c, []).append((w, a, np.full(len(w), short, float)))
    out = {}
    for c, parts in acc.items():
        w, a, s = (np.concatenate([p[i] for p in parts]) for i in range(3))
        out[c] = {"px": float(np.median(w)), "frac": float(np.median(w / s)),
                  "wpx": weighted_median(w, a), "wfrac": weighted_median(w / s, a),
                  "n": len(w)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent / "shared" / "datasets" / "camvid"))
    args = ap.parse_args()
    data = Path(args.data)
    meta_file = data / "classes.json"
    if not meta_file.exists():
        meta_file = HERE / "segui" / "demo" / "classes.json"
    meta = json.loads(meta_file.read_text())
    ignore = int(meta.get("ignore_index", 11))
    names = {c["index"]: c["name"] for c in meta["classes"]}

    stats = {scale: {s: per_class(load(data, s, scale), ignore) for s in SPLITS} for scale in (0.5, 1.0, 2.0)}
    st = stats[1.0]
    print("median width of a class's 8-connected regions at 480x360 "
          "(width = 2*r+1, r = max distance to the region's border; frac = width / 360)")
    print(f"{'':>12} | {'train':^40} | {'val':^40}")
    hdr = f"{'median':>7} {'':>6} {'area-weighted':>15} {'regions':>8}"
    print(f"{'class':>12} | {hdr:>40} | {hdr:>40}")
    print(f"{'':>12} | " + f"{'px':>7} {'frac':>6} {'px':>7} {'frac':>7} {'':>8} | " * 2)
    for c in sorted(names, key=lambda c: st["train"].get(c, {}).get("wpx", 1e9)):
        row = f"{names[c]:>12} |"
        for s in SPLITS:
            d = st[s].get(c)
            row += (f" {d['px']:7.1f} {d['frac']:6.3f} {d['wpx']:7.1f} {d['wfrac']:7.3f} {d['n']:8d} |"
                    if d else f"{'absent':>40} |")
        print(row)

    print("\nclasses selected as thin by the area-weighted median (train; val in brackets where different)")
    for scale in (0.5, 1.0, 2.0):
        print(f"-- labels at {round(480 * scale)}x{round(360 * scale)}")
        for key, thresholds in (("wpx", (10, 15, 20, 25, 30, 40)),
                                ("wfrac", (0.03, 0.04, 0.05, 0.06, 0.08, 0.1))):
            for t in thresholds:
                sel = {s: sorted(c for c, d in stats[scale][s].items() if d[key] <= t) for s in SPLITS}
                txt = ", ".join(names[c] for c in sel["train"]) or "-"
                if sel["val"] != sel["train"]:
                    txt += "  [val: " + (", ".join(names[c] for c in sel["val"]) or "-") + "]"
                unit = "px" if key == "wpx" else "x short side"
                print(f"   <= {t:<5} {unit:>12}: {txt}")

    # how stable the decision is on a project-sized sample (the app passes a handful of maps)
    rng = np.random.default_rng(0)
    print("\nagreement with the whole split's decision on 200 random 10-map samples, per class, "
          "counting samples where the class is present (train / val)")
    per_map = {s: [region_widths_areas(m, ignore) for m in load(data, s)] for s in SPLITS}

    def decide(results: list[dict], t: float) -> set[int]:
        acc: dict[int, list] = {}
        for r in results:
            for c, (w, a) in r.items():
                acc.setdefault(c, []).append((w / 360, a))
        return {c for c, p in acc.items()
                if weighted_median(np.concatenate([x[0] for x in p]), np.concatenate([x[1] for x in p])) <= t}

    for t in (0.02, 0.06, 0.08, 0.1, 0.12):
        line = f"   <= {t:<5}:"
        for s in SPLITS:
            full = decide(per_map[s], t)
            agree = {c: [0, 0] for c in names}
            for _ in range(200):
                sample = [per_map[s][j] for j in rng.choice(len(per_map[s]), 10, replace=False)]
                chosen = decide(sample, t)
                for c in set().union(*[r.keys() for r in sample]) - {ignore}:
                    agree[c][1] += 1
                    agree[c][0] += (c in chosen) == (c in full)
            rates = {c: a / n for c, (a, n) in agree.items() if n}
            worst = sorted(rates, key=rates.get)[:3]
            line += (f" {s} mean {np.mean(list(rates.values())):.3f}, worst "
                     + ", ".join(f"{names[c]} {rates[c]:.2f}" for c in worst) + " |")
        print(line)

    val = load(data, "val")
    few = val[:10]
    t = time.perf_counter()
    for _ in range(5):
        chosen = thin_classes(few, ignore)
    print(f"\nthin_classes(first 10 val maps, 480x360): {(time.perf_counter() - t) / 5 * 1000:.0f} ms -> "
          + ", ".join(names[c] for c in sorted(chosen)))
    for i in range(0, len(val), 10):
        part = thin_classes(val[i:i + 10], ignore)
        print(f"   val maps {i:3d}-{min(i + 10, len(val)) - 1:3d}: " + ", ".join(names[c] for c in sorted(part)))
    print("thin_classes(all 101 val maps): " + ", ".join(names[c] for c in sorted(thin_classes(val, ignore))))
    big = load(data, "val", 2.0)[:5]
    for keep in ((), tuple(sorted(chosen))):
        ts = []
        for m in big:
            t = time.perf_counter()
            clean_up(m, 400, ignore, keep=keep)
            ts.append(time.perf_counter() - t)
        print(f"clean_up(960x720, min_size=400, keep={keep}): median {np.median(ts) * 1000:.0f} ms, "
              f"max {max(ts) * 1000:.0f} ms over {len(big)} maps")
    chosen_val = thin_classes(val, ignore)
    print("pixels of each class that clean_up(min_size=400) changes on the 101 val maps "
          "(keep=() / keep=thin_classes(val)):")
    totals = {c: [0, 0, 0] for c in names}
    for m in val:
        a, b = clean_up(m, 400, ignore), clean_up(m, 400, ignore, keep=chosen_val)
        for c in names:
            mask = m == c
            totals[c][0] += int(mask.sum())
            totals[c][1] += int((mask & (a != c)).sum())
            totals[c][2] += int((mask & (b != c)).sum())
    for c, (n, la, lb) in totals.items():
        print(f"   {names[c]:>12}: {n:8d} px, erased {la:7d} ({la / max(n, 1):6.1%}) / {lb:7d} ({lb / max(n, 1):6.1%})")


if __name__ == "__main__":
    main()
