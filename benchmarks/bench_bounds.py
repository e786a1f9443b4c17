"""The app's peak memory while it refuses oversized inputs (issue 17, finding 3).

    python benchmarks/bench_bounds.py [--out benchmarks/results/cpu_bench_bounds.json]

Launches the app in this process on a fresh data folder (the demo project) on a
loopback port, opens an image (the model loaded and one prediction made, as in use),
then measures the process's resident memory (``VmRSS``, idle) and, for each input after
resetting the high-water mark (``/proc/self/clear_refs``), its peak (``VmHWM``) while the
app refuses it, sent through ``gradio_client`` as any annotator could:

- a zip bomb: 4 members of 190 MB of zeros (under 1 MB on disk), uploaded to ``/upload``;
- a 13000x13000 class-map PNG (under 1 MB) sent with ``/save`` for the open image;
- a 250 MB file (sparse on disk) posted to the upload route (``/gradio_api/upload``).

Target: peak within 200 MB of idle. Linux only (reads /proc/self/status). The inputs
are built in a temp folder and deleted afterwards; nothing leaves loopback.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


# ------------------------------------------------------------------ inputs, small on disk

def blank_png(width: int, height: int, channels: int = 1) -> bytes:
    """A PNG of zeros of any size, built row by row (a 13000x13000 greyscale one is
    ~170 KB, RGBA ~660 KB) without holding its pixels."""
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width * channels)          # filter byte + pixels
    parts = [comp.compress(row) for _ in range(height)]
    idat = b"".join(parts) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_bomb(path: Path, members: int = 4, member_bytes: int = 190 * MB) -> Path:
    """A zip of ``members`` files of zeros named like images, written in 1 MB steps."""
    block = b"\x00" * MB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(members):
            info = zipfile.ZipInfo(f"bomb/{i}.png")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                left = member_bytes
                while left:
                    n = min(left, MB)
                    f.write(block[:n])
                    left -= n
    return path


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# ------------------------------------------------------------------ memory of this process

def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    import httpx
    from gradio_client import Client, handle_file

    from common import limits
    from segui.canvas import codec
    from segui.handlers import DEMO_DIR, DEMO_PROJECT, Studio
    from segui.ui import LAUNCH_OPTIONS, build_app
    from storage import Store
    from tests.app.conftest import free_port

    figures: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "python": platform.python_version()},
                     "limits": {k: getattr(limits, k) for k in dir(limits) if k.isupper() and k != "MB"}}
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        bomb = zip_bomb(tmp / "bomb.zip")
        big_map = blank_png(13000, 13000, channels=4)
        huge = sparse_file(tmp / "huge.png", 250 * MB)
        figures["inputs"] = {"zip_bytes": bomb.stat().st_size, "zip_unpacked": 4 * 190 * MB,
                             "map_png_bytes": len(big_map), "map_size": "13000x13000",
                             "upload_bytes": huge.stat().st_size, "built_s": round(time.perf_counter() - t, 1)}
        print("inputs:", figures["inputs"], flush=True)

        studio = Studio(Store(data_dir=tmp / "data"))
        studio.ensure_demo(DEMO_DIR)
        app = build_app(studio)
        port = free_port()
        app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                           **LAUNCH_OPTIONS)
        url = f"http://127.0.0.1:{port}/"
        try:
            c = Client(url, verbose=False)
            c.predict(api_name="/init")
            iid = studio.store.list_images(DEMO_PROJECT, order="id")[0].id
            value = {"image_id": None, "map": None, "request": 1, "args": {"open": iid, "filter": "any"}}
            out, _ = c.predict(DEMO_PROJECT, value, "bench", api_name="/open_image")
            h, w = out["image"]["height"], out["image"]["width"]
            ok = {"image_id": iid, "map": out["map"], "request": 2, "args": {}}
            c.predict(DEMO_PROJECT, ok, "bench", api_name="/save")      # the save path warmed up
            time.sleep(1.0)
            idle = status_kb("VmRSS")
            refusals, rise = {}, {}

            def measured(name, fn):
                """fn's result; rise[name]: how far the peak RSS went above idle while it ran."""
                reset_peak()
                out = fn()
                rise[name] = round((status_kb("VmHWM") - idle) / 1024)
                return out

            refusals["zip_bomb"] = measured("zip_bomb", lambda: c.predict(
                DEMO_PROJECT, [handle_file(str(bomb))], ok, "bench", api_name="/upload")[2])

            bad = {"image_id": iid, "map": codec.PNG_PREFIX + base64.b64encode(big_map).decode("ascii"),
                   "request": 3, "args": {}}

            def save_big_map():
                try:
                    c.predict(DEMO_PROJECT, bad, "bench", api_name="/save")
                    return "accepted (!)"
                except Exception as e:       # the app's refusal reaches the client as an error
                    return str(e)
            refusals["map"] = measured("map_13000", save_big_map)

            def post_huge():
                with open(huge, "rb") as f:
                    r = httpx.post(url + "gradio_api/upload", files={"files": ("huge.png", f, "image/png")},
                                   timeout=120)
                return f"HTTP {r.status_code}: {r.text[:200]}"
            refusals["upload_route"] = measured("upload_250mb", post_huge)
        finally:
            app.close()
            studio.store.close()
    figures["memory_mb"] = {"idle_rss": round(idle / 1024), "peak_minus_idle": rise,
                            "worst_minus_idle": max(rise.values()), "target_minus_idle": 200,
                            "open_image": f"{w}x{h}"}
    figures["refusals"] = refusals
    print(json.dumps(figures, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if figures["memory_mb"]["worst_minus_idle"] <= 200 else 1


if __name__ == "__main__":
    sys.exit(main())
