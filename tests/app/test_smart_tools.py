import numpy as np

from segui.smart_tools import clean_up, snap_strokes, superpixel_fill, superpixels


def two_region_image():
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :40] = [200, 30, 30]
    img[:, 40:] = [30, 30, 200]
    return img


def test_superpixels_respect_a_strong_edge_and_fill_takes_the_class():
    img = two_region_image()
    seg = superpixels(img, pixels_per_segment=200)
    left, right = set(np.unique(seg[:, :40])), set(np.unique(seg[:, 40:]))
    assert not (left & right)                      # no superpixel crosses the edge
    cm = np.zeros((60, 80), np.uint8)
    out = superpixel_fill(cm, seg, 10, 10, 3)
    region = seg == seg[10, 10]
    assert (out[region] == 3).all() and (out[~region] == 0).all()
    assert region.sum() > 50


def test_snap_extends_strokes_to_mostly_covered_superpixels_only():
    seg = np.zeros((10, 10), np.int32)
    seg[:, 5:] = 1
    before = np.zeros((10, 10), np.uint8)
    after = before.copy()
    after[:, :4] = 7                               # 40 of 50 pixels of segment 0
    after[0, 9] = 7                                # 1 of 50 pixels of segment 1
    out = snap_strokes(before, after, seg)
    assert (out[:, :5] == 7).all()                 # segment 0 filled
    assert out[0, 9] == 7 and (out[1:, 5:] == 0).all()   # segment 1: stroke kept, not extended
    np.testing.assert_array_equal(snap_strokes(before, before, seg), before)


def test_clean_up_removes_islands_fills_holes_keeps_big_void():
    cm = np.zeros((40, 40), np.uint8)
    cm[:, 20:] = 3
    cm[5:7, 5:7] = 3          # island of 4 px in class 0
    cm[30, 30] = 11           # 1 px void hole in class 3
    cm[30:40, 0:10] = 11      # big void (100 px) stays
    out = clean_up(cm, min_size=20, ignore_index=11)
    assert (out[5:7, 5:7] == 0).all()
    assert out[30, 30] == 3
    assert (out[30:40, 0:10] == 11).all()
    assert ((out != cm).sum()) == 5
    np.testing.assert_array_equal(clean_up(cm, 1, 11), cm)
