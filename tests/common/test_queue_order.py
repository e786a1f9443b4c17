"""common.queue_order: the layout descriptor that sees near-duplicate frames, and the queue's pick."""
import numpy as np

from common.queue_order import diverse_pick, layout_descriptor


def test_layout_descriptor_tells_near_duplicates_from_other_scenes():
    a = np.zeros((36, 48), np.uint8)
    a[:12] = 1                      # sky on top
    a[24:] = 2                      # road below
    b = a.copy()
    b[12:14, :5] = 3                # the same scene a moment later: a few pixels differ
    c = np.zeros_like(a)
    c[:, :24] = 4                   # another scene: a wall on the left
    c[:, 24:] = 2
    da, db, dc = (layout_descriptor(m, 5) for m in (a, b, c))
    assert abs(np.linalg.norm(da) - 1) < 1e-9
    assert da @ db > 0.99 and da @ dc < 0.5
    void = a.copy()
    void[:12] = 255                 # void (>= the class count) is left out, not counted as a class
    dv = layout_descriptor(void, 5)
    assert dv[1::5].sum() == 0 and abs(np.linalg.norm(dv) - 1) < 1e-9


def test_diverse_pick_prefers_an_uncertain_image_unlike_those_chosen():
    a = layout_descriptor(np.repeat(np.arange(4, dtype=np.uint8), 12)[None].repeat(36, 0), 4)   # four stripes
    b = layout_descriptor(np.full((36, 48), 3, np.uint8), 4)                                  # one class
    assert diverse_pick([0.5, 0.4], [a, b], []) == 0       # nothing chosen yet: the most uncertain
    assert diverse_pick([0.5, 0.4], [a, b], [a]) == 1      # the more uncertain one repeats a chosen scene
    assert diverse_pick([0.5, 0.4], [a, b], [b]) == 0


def test_descriptor_of_a_map_with_no_class_is_zero_and_bad_shapes_are_refused():
    import pytest

    assert not layout_descriptor(np.full((8, 8), 255, np.uint8), 4).any()
    with pytest.raises(ValueError):
        layout_descriptor(np.zeros((2, 3, 4), np.uint8), 4)
    with pytest.raises(ValueError):
        diverse_pick([], [], [])
