import numpy as np

import pytest

from benchmarks.output_stride import oracle_map, parse_views
from common.effort import wrong_regions


def test_a_perfect_map_at_stride_1_is_the_truth_and_coarser_strides_lose_thin_things():
    truth = np.zeros((64, 96), np.uint8)
    truth[:, 40:42] = 1            # a 2 px pole
    truth[30:, :] = 2              # road below
    truth[30:, 40:42] = 1
    truth[:3, :5] = 255            # void
    assert np.array_equal(oracle_map(truth, 3, 1)[3:], truth[3:])
    s2, s4, s8 = (oracle_map(truth, 3, s) for s in (2, 4, 8))
    assert s2.shape == truth.shape
    pole = [int(((m == 1) & (truth == 1)).sum()) for m in (s2, s4, s8)]
    assert pole[0] >= pole[1] >= pole[2] and pole[0] > pole[2]
    errs = [wrong_regions(m, truth, 255) for m in (s2, s4, s8)]
    assert errs[0] <= errs[2]
    assert set(np.unique(s8)) <= {0, 1, 2}          # void is never a class of the map


def test_views_name_their_input_scales_and_the_mirror():
    assert parse_views("1, 1f,1.5+1f") == [("1", [(1.0, False)]), ("1f", [(1.0, True)]),
                                           ("1.5+1f", [(1.5, True), (1.0, True)])]
    with pytest.raises(ValueError, match="bad view 'x'"):
        parse_views("1,x")
