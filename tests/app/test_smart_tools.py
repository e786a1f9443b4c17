from pathlib import Path

import numpy as np
import pytest

from segui.smart_tools import (clean_up, region_widths, snap_strokes, superpixel_fill, superpixels,
                               thin_classes)

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "camvid"


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


def test_a_big_image_is_segmented_smaller_and_its_ids_cover_it_at_full_size():
    img = np.kron(two_region_image(), np.ones((20, 20, 1), np.uint8))          # 1200 x 1600
    seg = superpixels(img, pixels_per_segment=200, max_pixels=60 * 80)
    assert seg.shape == (1200, 1600) and seg.dtype == np.int32
    assert seg.max() + 1 <= 60 * 80 // 200 + 8                 # counted at the small size
    assert not set(np.unique(seg[:, :800])) & set(np.unique(seg[:, 800:]))   # the edge still holds
    full = superpixels(img[:240, :320], pixels_per_segment=200, max_pixels=None)
    assert full.max() + 1 > 200                                 # uncapped: segments of 200 px


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


def poles_and_blocks(h=120, w=160):
    """Big blocks of road (3) and building (1), sky (0) above, 3-px-wide poles (2)."""
    cm = np.zeros((h, w), np.uint8)
    cm[h // 3:, :] = 1
    cm[2 * h // 3:, :] = 3
    for x in (20, 60, 100, 140):
        cm[10:h - 10, x:x + 3] = 2
    return cm


def test_clean_up_never_erases_keep_classes_but_they_feed_their_neighbours():
    cm = np.zeros((40, 40), np.uint8)
    cm[5:35, 10:12] = 2          # 60-px pole, smaller than min_size
    cm[20, 13] = 4               # 1-px island next to it
    cm[20, 12] = 4
    cm[36:40, 0:40] = 4          # class 4 also has a big region, so its island may go
    cm[30:32, 30:32] = 5         # 4-px island of another class
    cm[0:20, 30:40] = 5          # ... which has a big region too
    out = clean_up(cm, min_size=100, ignore_index=11, keep=[2])
    assert (out[cm == 2] == 2).all()
    assert out[20, 12] == 2 and out[20, 13] == 0         # nearest pixel outside small regions: the pole
    assert (out[30:32, 30:32] == 0).all()                # class 5 is not in keep: its island goes
    old = clean_up(cm, min_size=100, ignore_index=11)
    assert (old[cm == 2] == 2).all()                     # pole survives as the last of its class
    cm2 = cm.copy()
    cm2[0:20, 0:5] = 2                                   # a big pole region elsewhere
    old = clean_up(cm2, min_size=100, ignore_index=11)
    assert (old[5:35, 10:12] == 0).all()                 # without keep the small pole is erased
    assert (clean_up(cm2, 100, 11, keep=(2,))[5:35, 10:12] == 2).all()


def test_clean_up_never_removes_a_whole_class():
    cm = np.zeros((50, 50), np.uint8)
    cm[10:13, 10:13] = 6         # class 6: two regions of 9 px, both small
    cm[30:33, 30:33] = 6
    cm[40, 5] = 7                # class 7: one pixel
    cm[20:22, 40:42] = 3         # class 3: one small region ...
    cm[45:50, 30:50] = 3         # ... and a big one (100 px)
    cm[5, 45] = 11               # a 1-px void hole
    out = clean_up(cm, min_size=50, ignore_index=11)
    assert (out[cm == 6] == 6).all() and (out == 6).sum() == 18     # all its regions kept
    assert out[40, 5] == 7
    assert (out[20:22, 40:42] == 0).all()                # class 3 keeps its big region: island goes
    assert (out[45:50, 30:50] == 3).all()
    assert out[5, 45] == 0                               # void is not a class: hole filled
    assert set(np.unique(out)) == {0, 3, 6, 7}


def test_clean_up_fills_void_holes_keeps_big_void_with_keep():
    cm = np.zeros((40, 40), np.uint8)
    cm[:, 20:] = 3
    cm[10:12, 25] = 11           # 2-px void hole in class 3
    cm[30:40, 0:10] = 11         # big void
    cm[0:40, 19] = 2             # a thin keep class along the edge
    out = clean_up(cm, min_size=20, ignore_index=11, keep={2})
    assert (out[10:12, 25] == 3).all()
    assert (out[30:40, 0:10] == 11).all()
    assert (out[:, 19] == 2).all()
    assert (out != cm).sum() == 2


def test_region_widths_measure_inscribed_disc():
    cm = poles_and_blocks()
    widths = region_widths(cm, ignore_index=11)
    np.testing.assert_array_equal(widths[2], [3, 3, 3, 3])
    assert widths[3].tolist() == [37.0]                  # 40-px road band, poles reach into it
    one = np.zeros((20, 20), np.uint8)
    one[:, 7] = 1
    assert region_widths(one)[1].tolist() == [1.0]
    assert 11 not in region_widths(np.full((10, 10), 11, np.uint8), 11)


def test_thin_classes_finds_poles_not_blocks():
    maps = [poles_and_blocks(), poles_and_blocks(240, 320)]
    assert thin_classes(maps, ignore_index=11) == {2}
    assert thin_classes(maps, 11, max_width_px=2) == set()
    assert thin_classes(maps, 11, max_width_px=500) == {0, 1, 2, 3}
    # specks do not make a big class thin: widths are weighted by area
    noisy = poles_and_blocks()
    noisy[2:12:3, 2:60:3] = 1                            # 80 one-pixel specks of building in the sky
    assert np.median(region_widths(noisy, 11)[1]) == 1
    assert thin_classes([noisy], 11) == {2}
    assert thin_classes([], 11) == set()


def test_thin_classes_of_a_big_map_are_measured_smaller_and_come_out_the_same(monkeypatch):
    """A 12-megapixel map is measured at 960x720 (seconds less on each Label-screen load of
    a young project of phone photos), and finds what its full size finds."""
    from segui import smart_tools

    big = np.kron(poles_and_blocks(300, 400), np.ones((10, 10), np.uint8))   # 3000 x 4000, poles 30 px
    assert thin_classes([big], 11, measure_side=None) == {2}
    measured = []
    full = smart_tools.region_widths_areas
    monkeypatch.setattr(smart_tools, "region_widths_areas", lambda cm, ig: measured.append(cm.shape) or full(cm, ig))
    assert thin_classes([big, poles_and_blocks()], 11) == {2}
    assert measured == [(720, 960), (120, 160)]                   # a small map stays as it is
    assert thin_classes([big], 11, max_width_px=40) == {2}       # pixels are the big map's own
    assert measured[-1] == (3000, 4000)


VAL_MAPS = ("0016E5_08079", "0016E5_07989", "0016E5_08055")


@pytest.mark.skipif(not (CAMVID / "labels" / "val").is_dir(), reason=f"CamVid not found at {CAMVID}")
def test_clean_up_with_thin_classes_keeps_camvid_poles():
    from PIL import Image
    maps = [np.array(Image.open(CAMVID / "labels" / "val" / f"{n}.png")) for n in VAL_MAPS]
    keep = thin_classes(maps, ignore_index=11)
    assert 2 in keep                                      # pole
    assert not keep & {0, 1, 3, 5, 8}                     # sky, building, road, tree, car
    for cm in maps:
        poles = cm == 2
        old = clean_up(cm, 400, 11)
        new = clean_up(cm, 400, 11, keep=keep)
        assert (old[poles] != 2).sum() > 0.3 * poles.sum()   # the old tool erased a third or more
        assert (new[poles] == 2).all()                        # every pole pixel is kept
        assert (new != cm).sum() > 1000                       # and it still cleans up


def test_the_studio_keeps_superpixel_maps_compact_and_bounded_in_bytes(studio, monkeypatch):
    """A 12-megapixel photo's map is kept as uint16 (24 MB, not int32's 48 MB), and no
    more of them than SEGMENTS_KEEP_BYTES; small images still keep SEGMENTS_KEEP."""
    from segui import labelling_tools, smart_tools as st_mod
    monkeypatch.setattr(st_mod, "superpixels", lambda image: np.arange(image.shape[0] * image.shape[1],
                                                                        dtype=np.int32).reshape(image.shape[:2]) % 2000)
    big = np.zeros((3000, 4000, 3), np.uint8)
    for iid in range(1, 7):
        seg = studio.segments(iid, big)
        assert seg.dtype == np.uint16 and seg.shape == (3000, 4000) and int(seg.max()) == 1999
    kept = list(studio._segments)
    assert kept == [3, 4, 5, 6]          # the latest four: 4 x 24 MB = 96 MB
    assert sum(m.nbytes for m in studio._segments.values()) <= labelling_tools.SEGMENTS_KEEP_BYTES
    small = np.zeros((360, 480, 3), np.uint8)
    for iid in range(10, 30):
        studio.segments(iid, small)
    assert len(studio._segments) == labelling_tools.SEGMENTS_KEEP
    fill = studio.segments(29, small)     # kept: the same map, no new computation
    assert fill is studio._segments[29]
