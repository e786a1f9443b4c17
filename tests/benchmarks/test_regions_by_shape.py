"""benchmarks/regions_by_shape.py's region census: which wrong regions count and how thick they are."""
import numpy as np

from benchmarks.regions_by_shape import regions

IGNORE = 11


def test_wrong_regions_are_counted_from_20_px_with_their_thickness():
    truth = np.zeros((60, 80), np.uint8)
    pred = truth.copy()
    pred[5, 10:40] = 1            # a 1-px sliver, 30 px: counted, thickness 1
    pred[20:30, 20:30] = 2        # a 10x10 blob: counted, thickness 5
    pred[50, 50:60] = 3           # 10 px: too small to count
    truth[40:45, 0:30] = IGNORE   # void never counts
    pred[40:45, 0:30] = 4
    lab, ids, thick = regions(pred, truth, IGNORE)
    assert len(ids) == 2
    got = sorted(float(thick[i]) for i in ids)
    assert got[0] == 1.0 and got[1] == 5.0
    sizes = sorted(int((lab == i).sum()) for i in ids)
    assert sizes == [30, 100]
