"""The scripted labeller's operation count (benchmarks/scripted_labeller.py)."""
import numpy as np
import pytest

from benchmarks.scripted_labeller import scripted_ops

VOID = 255


def test_a_right_map_needs_nothing_and_void_is_ignored():
    truth = np.zeros((60, 80), np.uint8)
    truth[:10] = VOID
    pred = truth.copy()
    pred[:10] = 3  # wrong only where the truth is void
    assert scripted_ops(pred, truth, VOID) == 0


def test_a_wrongly_labelled_blob_is_one_fill():
    truth = np.zeros((100, 100), np.uint8)
    pred = truth.copy()
    pred[20:70, 20:70] = 2  # 2500 px the model called class 2: one bucket fill with 0
    assert scripted_ops(pred, truth, VOID) == 1


def test_a_missed_object_inside_its_surroundings_takes_brush_strokes():
    truth = np.zeros((100, 100), np.uint8)
    truth[20:70, 20:70] = 1  # an object the model swallowed into the background
    pred = np.zeros_like(truth)
    # filling would turn the whole background into the object: the labeller paints it
    assert scripted_ops(pred, truth, VOID, target=0.999) == 2  # 2500 px, 1500 per stroke
    assert 5 <= scripted_ops(pred, truth, VOID, target=0.999, stroke_pixels=500) <= 7  # >= 2500 / 500


def test_two_separate_wrong_blobs_are_two_operations_and_98_percent_stops_early():
    truth = np.zeros((100, 100), np.uint8)
    pred = truth.copy()
    pred[5:45, 5:45] = 4     # 1600 px
    pred[60:70, 60:70] = 5   # 100 px: under 2% of 10,000, left alone at 98%
    assert scripted_ops(pred, truth, VOID) == 1
    assert scripted_ops(pred, truth, VOID, target=1.0) == 2


def test_sizes_must_match():
    with pytest.raises(ValueError, match="differ in size"):
        scripted_ops(np.zeros((4, 4)), np.zeros((4, 5)), VOID)


def test_click_to_object_is_used_when_it_fixes_more_per_click():
    from benchmarks.scripted_labeller import scripted_detail
    from scipy import ndimage

    truth = np.zeros((100, 100), np.uint8)
    truth[20:70, 20:70] = 1              # an object the model swallowed: 2 strokes without the O tool
    pred = np.zeros_like(truth)
    calls = []

    def perfect(clicks):                 # the 8-connected region of the truth's class under the first click
        calls.append(list(clicks))
        x, y, _ = clicks[0]
        lab, _ = ndimage.label(truth == truth[y, x], structure=np.ones((3, 3), bool))
        return lab == lab[y, x]

    plain = scripted_detail(pred, truth, VOID, target=0.999)
    assert plain["ops"] == 2 and plain["brush"] == 2 and plain["object"] == 0
    d = scripted_detail(pred, truth, VOID, target=0.999, object_tool=perfect)
    assert d == {"ops": 1, "fill": 0, "brush": 0, "object": 1, "objects": 1, "reached": True}
    x, y, positive = calls[0][0]
    assert positive and 20 <= x < 70 and 20 <= y < 70

    def useless(clicks):                 # only the clicked pixels: never worth a click
        m = np.zeros(truth.shape, bool)
        for x, y, p in clicks:
            m[y, x] = p
        return m

    d = scripted_detail(pred, truth, VOID, target=0.999, object_tool=useless)
    assert d["ops"] == 2 and d["object"] == 0 and d["brush"] == 2
    assert scripted_ops(pred, truth, VOID, target=0.999) == plain["ops"]
