"""Editor value <-> class map: exact round trips and the documented reading rule."""
import numpy as np
import pytest

from segui.editor import ALPHA_MIN, class_layer, class_map_from_editor, editor_value, resize_nearest

IDX = [0, 1, 2, 5]                       # project indices (not contiguous on purpose)
PAL = np.array([[128, 128, 128], [128, 0, 0], [64, 0, 128], [0, 128, 192]], dtype=np.uint8)
IGN = 11


def random_map(h=36, w=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice(IDX + [IGN], size=(h, w)).astype(np.uint8)


def read(layers, h, w):
    return class_map_from_editor({"background": None, "layers": layers, "composite": None}, IDX, PAL, IGN, h, w)


@pytest.mark.parametrize("opacity", [0.3, 0.6, 1.0])
def test_round_trip_is_exact_at_every_opacity(opacity):
    cm = random_map()
    value = editor_value(np.zeros((36, 48, 3), np.uint8), cm, IDX, PAL, IGN, opacity)
    layer = value["layers"][0]
    assert layer.shape == (36, 48, 4)
    assert (layer[cm == IGN, 3] == 0).all() and (layer[cm != IGN, 3] >= int(0.3 * 255)).all()
    np.testing.assert_array_equal(read(value["layers"], 36, 48), cm)


def test_upscaled_canvas_maps_back_exactly():
    cm = random_map(seed=1)
    layer = class_layer(cm, IDX, PAL, IGN)
    big = np.repeat(np.repeat(layer, 2, 0), 2, 1)          # the editor at 2x
    np.testing.assert_array_equal(read([big], 36, 48), cm)
    odd = resize_nearest(layer, 50, 67)                     # non-integer scale both ways
    back = read([odd], 36, 48)
    np.testing.assert_array_equal(back, resize_nearest(resize_nearest(cm, 50, 67), 36, 48))


def test_antialiased_and_premultiplied_colours_snap_to_palette():
    cm = np.full((10, 10), 0, np.uint8)
    layer = class_layer(cm, IDX, PAL, IGN, 1.0)
    layer[2, 2] = [120, 4, 2, 255]        # near class 1's colour (128, 0, 0)
    layer[3, 3] = [96, 64, 128, 255]      # between class 0 and class 2: nearest is (64, 0, 128)? (128,128,128)?
    layer[4, 4] = [62, 1, 126, 140]       # class 2, semi-transparent
    out = read([layer], 10, 10)
    assert out[2, 2] == 1 and out[4, 4] == 2
    d = ((PAL.astype(int) - [96, 64, 128]) ** 2).sum(1)
    assert out[3, 3] == IDX[int(d.argmin())]
    assert set(np.unique(out)) <= set(IDX + [IGN])   # never an unknown value


def test_transparent_and_faint_pixels_are_void_and_top_layer_wins():
    cm = np.full((8, 8), 0, np.uint8)
    bottom = class_layer(cm, IDX, PAL, IGN, 0.6)
    bottom[0, :, 3] = 0                    # erased row
    bottom[1, :, 3] = ALPHA_MIN - 1        # faint stroke fringe
    top = np.zeros((8, 8, 4), np.uint8)
    top[5, 5] = [0, 128, 192, 255]        # class 5 painted on a second layer
    out = read([bottom, top], 8, 8)
    assert (out[0] == IGN).all() and (out[1] == IGN).all()
    assert out[5, 5] == 5 and out[6, 6] == 0


def test_rgb_and_greyscale_layers_and_empty_value():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:] = [128, 0, 0]
    assert (read([rgb], 4, 4) == 1).all()          # opaque without alpha
    assert (read([], 4, 4) == IGN).all()           # nothing painted: void
    with pytest.raises(ValueError):
        class_map_from_editor(None, IDX, PAL, IGN, 4, 4)
