"""benchmarks/thin_domain.py: the power-line domain the loop benchmark runs on."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.thin_domain import draw_wires, make, wire_coverage
from models.data import list_pairs, load_label, read_classes

DEMO = Path(__file__).resolve().parents[2] / "segui" / "demo"


def test_lines_are_thin_and_the_label_is_where_they_cover_half_a_pixel():
    rng = np.random.default_rng(3)
    cov = wire_coverage(90, 120, rng)
    assert 0 < (cov >= 0.5).mean() < 0.15
    img = np.full((90, 120, 3), 230, np.uint8)
    out, lab = draw_wires(img, np.random.default_rng(3))
    assert set(np.unique(lab)) == {0, 1}
    assert (out[lab == 0] <= 0.5 * 230 + 0.5 * 78).all()   # at least half line colour (<= 78) where labelled line
    assert (out[cov == 0] == 230).all()         # untouched where no line passes
    assert np.array_equal(lab == 0, cov >= 0.5)


def test_make_writes_a_dataset_the_loop_reads(tmp_path):
    src = tmp_path / "src"
    (src / "images" / "val").mkdir(parents=True)
    for f in sorted(DEMO.glob("*.jpg"))[:2]:
        shutil.copy(f, src / "images" / "val" / f.name)
    assert make(src, tmp_path / "a") == 2
    assert make(src, tmp_path / "b") == 2
    ls = read_classes(tmp_path / "a")
    assert ls.names == ["power line", "background"] and ls.ignore_index == 2
    pairs = list_pairs(tmp_path / "a", "val", ["0016E5"])
    assert len(pairs) == 2
    for name, ip, lp in pairs:
        with Image.open(ip) as im:
            assert im.size == (480, 360)
        lab = load_label(lp, (480, 360))
        assert 0 < (lab == 0).mean() < 0.1
        # repeatable: the same frame gets the same lines
        assert np.array_equal(lab, load_label(tmp_path / "b" / "labels" / "val" / lp.name))
