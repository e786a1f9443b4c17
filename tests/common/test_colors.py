import itertools

import pytest

from common.colors import (MIN_DISTANCE, as_hex, as_rgb, color_distance, default_color_for, default_colors,
                           fill_colors, known_color, palette, too_close)

CAMVID = ["sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
          "pedestrian", "bicyclist"]


def _h(rgb):
    return as_hex(rgb)


@pytest.mark.parametrize("names, rgb", [
    (["road", "Road", "ROADS"], (128, 64, 128)),
    (["sky"], (70, 130, 180)),
    (["vegetation", "tree", "Trees", "tree_s"], (107, 142, 35)),
    (["building", "buildings", "house"], (70, 70, 70)),
    (["car", "cars"], (0, 0, 142)),
    (["person", "pedestrian", "pedestrians", "people"], (220, 20, 60)),
    (["sidewalk", "pavement"], (244, 35, 232)),
    (["pole"], (153, 153, 153)),
    (["traffic sign", "Traffic_Sign", "sign", "signsymbol", "sign symbol", "Sign-Symbol"], (220, 220, 0)),
    (["traffic light", "traffic-lights", "TrafficLight"], (250, 170, 30)),
    (["fence"], (190, 153, 153)),
    (["rider", "bicyclist", "cyclist"], (255, 0, 0)),
    (["bus", "buses"], (0, 60, 100)),
])
def test_known_names_and_synonyms_get_recognisable_colours(names, rgb):
    for n in names:
        assert known_color(n) == rgb, n
        assert default_color_for(n) == _h(rgb), n
    assert known_color("flibbertigibbet") is None


def test_camvid_colours_are_recognisable_and_well_separated():
    cols = default_colors(CAMVID)
    by = dict(zip(CAMVID, cols))
    for n, rgb in [("sky", (70, 130, 180)), ("building", (70, 70, 70)), ("pole", (153, 153, 153)),
                   ("road", (128, 64, 128)), ("pavement", (244, 35, 232)), ("tree", (107, 142, 35)),
                   ("sign symbol", (220, 220, 0)), ("car", (0, 0, 142)), ("pedestrian", (220, 20, 60))]:
        assert by[n] == _h(rgb), n
    # fence's Cityscapes pink-grey is too close to pole grey, rider red to pedestrian crimson
    assert by["fence"] != _h((190, 153, 153)) and by["bicyclist"] != _h((255, 0, 0))
    for a, b in itertools.combinations(CAMVID, 2):
        assert color_distance(by[a], by[b]) >= MIN_DISTANCE, (a, b)
    assert color_distance(by["bicyclist"], by["pedestrian"]) >= 25
    assert color_distance(by["tree"], by["pedestrian"]) >= 25


def test_the_old_demo_lookalikes_are_too_close():
    assert too_close((128, 128, 0), [(64, 64, 0)])           # old tree vs old pedestrian
    assert too_close((255, 0, 0), ["#dc143c"])                # rider red vs pedestrian crimson
    assert not too_close((255, 0, 0), [])


def test_thirty_made_up_names_get_distinct_palette_colours():
    names = [f"class {i}" for i in range(30)]
    cols = default_colors(names)
    assert len(set(cols)) == 30
    assert cols == [_h(c) for c in palette()[:30]]
    assert min(color_distance(a, b) for a, b in itertools.combinations(cols, 2)) >= MIN_DISTANCE


def test_palette_is_well_separated_and_away_from_black_and_white():
    assert len(palette()) >= 30
    for c in palette():
        assert color_distance(c, (0, 0, 0)) >= MIN_DISTANCE and color_distance(c, (255, 255, 255)) >= MIN_DISTANCE
    assert min(color_distance(a, b) for a, b in itertools.combinations(palette(), 2)) >= MIN_DISTANCE


def test_taken_colours_are_avoided():
    assert default_color_for("rider", taken=["#dc143c"]) != _h((255, 0, 0))
    assert not too_close(default_color_for("rider", taken=["#dc143c"]), ["#dc143c"])
    # a known colour already used by another class is not reused
    assert default_color_for("road", taken=[(128, 64, 128)]) != _h((128, 64, 128))
    taken = [_h(c) for c in palette()[:5]]
    new = default_color_for("whatever", taken)
    assert new == _h(palette()[5]) and not too_close(new, taken)


def test_many_classes_still_get_colours():
    cols = default_colors([f"c{i}" for i in range(100)])
    assert len(cols) == 100 and all(len(c) == 7 and c.startswith("#") for c in cols)
    assert len(set(cols)) == 100


def test_deterministic_and_order_of_recognisable_first():
    assert default_colors(["x", "road"]) == default_colors(["x", "road"])
    # an unknown name first does not take a colour a later recognisable name needs
    assert default_colors(["x", "road"])[1] == _h((128, 64, 128))


def test_fill_colors_keeps_given_ones():
    out = fill_colors(["road", "car", "sky"], [None, "#FF0000", (1, 2, 3)])
    assert out == [_h((128, 64, 128)), "#ff0000", "#010203"]
    out = fill_colors(["pedestrian", "rider"], [None, (220, 20, 60)])
    assert out[1] == "#dc143c" and out[0] != "#dc143c" and not too_close(out[0], ["#dc143c"])


def test_colour_values():
    assert as_rgb("#0A0b0C") == (10, 11, 12) and as_hex((10, 11, 12)) == "#0a0b0c"
    for bad in ("red", "#12345", (1, 2), (0, 0, 256), None):
        with pytest.raises(ValueError):
            as_rgb(bad)


def test_demo_label_set_uses_the_default_colours():
    import json
    from pathlib import Path
    spec = json.loads((Path(__file__).resolve().parents[2] / "segui" / "demo" / "classes.json").read_text())
    names = [c["name"] for c in spec["classes"]]
    assert names == CAMVID and [c["index"] for c in spec["classes"]] == list(range(11))
    assert spec["ignore_index"] == 11
    assert [as_hex(c["color"]) for c in spec["classes"]] == default_colors(names)
