import numpy as np
import pytest

from common.labels import (MAX_NAME_LENGTH, LabelSetError, check_new_class_name, clean_class_name,
                           parse_label_text, validate_class_names)


def test_clean_class_name_collapses_whitespace():
    assert clean_class_name("  traffic \t  light\n") == "traffic light"


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", None, 3, ["road"]])
def test_clean_class_name_refuses_empty_and_non_text(bad):
    with pytest.raises(LabelSetError, match="class name must be non-empty text"):
        clean_class_name(bad)


def test_clean_class_name_length_limit_counts_the_cleaned_name():
    assert clean_class_name("a" * MAX_NAME_LENGTH) == "a" * 200
    assert clean_class_name(" " * 50 + "a" * 200 + " " * 50) == "a" * 200
    with pytest.raises(LabelSetError, match="longer than 200 characters"):
        clean_class_name("a" * 201)


def test_label_set_error_is_a_value_error():
    assert issubclass(LabelSetError, ValueError)


def test_validate_cleans_names_in_order():
    assert validate_class_names(["sky", "  traffic   light ", "Road"]) == ["sky", "traffic light", "Road"]
    assert validate_class_names(("a", "b")) == ["a", "b"]


@pytest.mark.parametrize("names, first, second", [
    (["road", "Road"], "road", "Road"),
    (["traffic light", "traffic  light"], "traffic light", "traffic light"),
    (["Traffic Light", " traffic\tlight "], "Traffic Light", "traffic light"),
    (["Straße", "STRASSE"], "Straße", "STRASSE"),            # casefold, not lower()
])
def test_names_that_differ_by_case_or_spacing_are_duplicates(names, first, second):
    with pytest.raises(LabelSetError, match="duplicate class name") as err:
        validate_class_names(names)
    msg = str(err.value)
    assert repr(second) in msg and "positions 0 and 1" in msg and "rename or remove one" in msg
    if first != second:
        assert f"the same as {first!r}" in msg


def test_validate_messages_say_what_to_fix():
    with pytest.raises(LabelSetError, match="the label set is empty: give at least one class name"):
        validate_class_names([])
    with pytest.raises(LabelSetError, match="class name at position 1 must be non-empty text"):
        validate_class_names(["road", "  "])
    with pytest.raises(TypeError, match="list of strings"):
        validate_class_names("road, sky")


def test_check_new_class_name():
    assert check_new_class_name("  bus ", ["road", "car"]) == "bus"
    with pytest.raises(LabelSetError, match="duplicate class name 'CAR' \\(the same as 'car'"):
        check_new_class_name("CAR", ["road", "car"])


def test_parse_label_text_lines_commas_semicolons_and_colours():
    assert parse_label_text("road\ncar #4000ff, traffic light") == [
        {"name": "road"}, {"name": "car", "color": "#4000ff"}, {"name": "traffic light"}]
    assert parse_label_text(" sky ;\n\n tree  #00FF00 ;;  traffic   sign ") == [
        {"name": "sky"}, {"name": "tree", "color": "#00FF00"}, {"name": "traffic sign"}]


@pytest.mark.parametrize("text, msg", [
    (None, "the label set is empty"),
    ("", "the label set is empty"),
    ("  \n ", "the label set is empty"),
    (",;\n,", "the label set is empty"),
    ("road\nRoad", "duplicate class name 'Road'"),
    ("road, #ff0000", "a class has a colour but no name: '#ff0000'"),
    ("x" * 201, "longer than 200 characters"),
])
def test_parse_label_text_refuses_bad_sets(text, msg):
    with pytest.raises(LabelSetError, match=msg):
        parse_label_text(text)


def test_model_and_storage_use_the_same_rule(tmp_path):
    from models.text_encoder import validate_class_names as model_rule
    from storage import Store, ValidationError
    assert model_rule is validate_class_names
    with pytest.raises(ValueError, match="duplicate class name"):
        model_rule(["car", " CAR"])
    store = Store(None, tmp_path)
    try:
        with pytest.raises(ValidationError, match="duplicate class name 'CAR' \\(the same as 'car'"):
            store.create_project("p", ["car", "CAR"])
        p = store.create_project("p", ["car", "traffic   light"])
        assert p.class_names == ["car", "traffic light"]
        with pytest.raises(ValidationError, match="the same as 'traffic light'"):
            store.add_class("p", "Traffic Light")
    finally:
        store.close()


# ------------------------------------------------------------------ relabel_by_name

def test_relabel_matches_classes_by_name_whatever_their_order_case_and_spacing():
    from common.labels import relabel_by_name
    source = {0: "sky", 1: "Traffic  light", 2: "road"}
    target = {0: "road", 1: "car", 2: "traffic light", 3: "SKY"}
    r = relabel_by_name(source, 255, target, 9)
    cm = np.array([[0, 1, 2, 255]], np.uint8)
    assert r(cm).tolist() == [[3, 2, 0, 9]]         # the source's ignore index -> the target's
    assert r(cm).dtype == np.uint8


def test_relabel_refuses_only_maps_that_use_a_class_the_target_lacks():
    from common.labels import relabel_by_name
    r = relabel_by_name({0: "sky", 1: "pole", 2: "road"}, 255, {0: "road", 1: "sky"}, 255, "project 'streets'")
    assert r(np.array([[0, 2, 255]], np.uint8)).tolist() == [[1, 0, 255]]   # no pole in it: fine
    with pytest.raises(LabelSetError, match=r"class\(es\) 'pole' that project 'streets' does not have: add"):
        r(np.array([[0, 1]], np.uint8))
    with pytest.raises(LabelSetError, match=r"value\(s\) 7 that classes.json does not name"):
        r(np.array([[0, 7]], np.uint8))


@pytest.mark.parametrize("source, ignore, match", [
    ({0: "sky", 1: "SKY"}, 255, "duplicate class name"),
    ({0: "sky", 300: "road"}, 255, "indices are 0-255"),
    ({0: "sky", 255: "road"}, 255, "not the ignore index"),
])
def test_relabel_refuses_a_source_label_set_that_is_not_one(source, ignore, match):
    from common.labels import relabel_by_name
    with pytest.raises(LabelSetError, match=match):
        relabel_by_name(source, ignore, {0: "sky"}, 255)
