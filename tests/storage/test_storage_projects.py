import numpy as np
import pytest

from storage import NotFoundError, ValidationError


def test_create_project_orders_classes_and_palette(store):
    p = store.create_project("roads", ["road", {"name": "car", "color": [255, 0, 0]}, "sky"],
                             ignore_index=1)
    # the ignore index is skipped when numbering classes
    assert [c.index for c in p.classes] == [0, 2, 3]
    assert p.class_names == ["road", "car", "sky"]
    assert p.palette.shape == (3, 3) and p.palette.dtype == np.uint8
    assert tuple(p.palette[1]) == (255, 0, 0)
    assert p.ignore_index == 1
    again = store.get_project("roads")
    assert again == p
    assert store.get_project(p.id) == p
    assert [x.name for x in store.list_projects()] == ["roads"]


def test_camvid_classes_keep_their_indices(store, camvid):
    from storage.datasets import read_classes_json
    classes, ignore = read_classes_json(camvid / "classes.json")
    p = store.create_project("camvid", classes, ignore_index=ignore)
    assert p.ignore_index == 11
    assert p.class_indices == list(range(11))
    assert p.class_names[6] == "sign symbol"
    assert tuple(p.palette[4]) == (60, 40, 222)


@pytest.mark.parametrize("classes, msg", [
    ([], "at least one class"),
    (["road", ""], "non-empty"),
    (["road", "   "], "non-empty"),
    (["road", "Road"], "duplicate class name"),
    ([{"name": "a", "index": 3}, {"name": "b", "index": 3}], "duplicate class index"),
    ([{"name": "a", "index": 255}], "ignore index"),
    ([{"name": "a", "color": "red"}], "#rrggbb"),
])
def test_invalid_class_sets_are_rejected(store, classes, msg):
    with pytest.raises(ValueError, match=msg):
        store.create_project("x", classes)
    assert store.list_projects() == []


def test_duplicate_project_name_rejected(store):
    store.create_project("x", ["a"])
    with pytest.raises(ValidationError, match="already exists"):
        store.create_project("x", ["b"])


def test_add_and_rename_class(store):
    store.create_project("p", [{"name": "a", "index": 0}, {"name": "b", "index": 1}], ignore_index=2)
    p = store.add_class("p", "c", color=(1, 2, 3))
    assert p.classes[-1].index == 3 and p.classes[-1].color == (1, 2, 3)  # 2 is the ignore index
    p = store.rename_class("p", 1, "bus")
    assert p.class_names == ["a", "bus", "c"]
    with pytest.raises(ValidationError, match="duplicate"):
        store.rename_class("p", 0, "BUS")
    with pytest.raises(ValidationError, match="duplicate"):
        store.add_class("p", "a")
    with pytest.raises(NotFoundError):
        store.rename_class("p", 42, "x")
    assert store.get_project("p").class_names == ["a", "bus", "c"]


def test_added_class_is_valid_in_class_maps(store, image):
    cm = np.zeros((image.height, image.width), np.uint8)
    cm[0, 0] = 3
    from storage import InvalidClassMapError
    with pytest.raises(InvalidClassMapError):
        store.save_annotation(image.id, cm, "ann", base_revision=0)
    store.add_class("p", "bike")
    assert store.save_annotation(image.id, cm, "ann", base_revision=0).revision == 1


def test_remove_a_class_only_no_saved_revision_uses(store, image):
    """A class painted in any revision (an old one, a removed image's) stays: every
    revision loads as it was saved. An unused one goes and leaves a gap in the indices;
    its index is free for the next class. The last class stays."""
    store.add_class("p", "bike")                               # index 3
    store.add_class("p", "bus")                                # index 4
    cm = np.zeros((image.height, image.width), np.uint8)
    cm[0, 0] = 3
    store.save_annotation(image.id, cm, "ann", base_revision=0)
    store.save_annotation(image.id, np.zeros_like(cm), "ann", base_revision=1)   # bike only in revision 1
    store.remove_image(image.id)
    with pytest.raises(ValidationError, match=r"'bike' is painted in 1 saved revision\(s\) \(a\.png first\).*rename it"):
        store.remove_class("p", 3)
    p = store.remove_class("p", 4)
    assert p.class_names == ["road", "car", "sky", "bike"] and p.class_indices == [0, 1, 2, 3]
    with pytest.raises(NotFoundError):
        store.remove_class("p", 4)
    assert store.add_class("p", "tram").classes[-1].index == 4
    solo = store.create_project("solo", ["road"])
    with pytest.raises(ValidationError, match="only class"):
        store.remove_class(solo.id, 0)


def test_unknown_project(store):
    with pytest.raises(NotFoundError, match="nope"):
        store.get_project("nope")


def test_default_colours_are_recognisable_and_avoid_taken_ones(store):
    p = store.create_project("c", ["road", "sky", {"name": "car", "color": "#dc143c"}, "pedestrian", "widget"])
    road, sky, car, ped, widget = (c.color for c in p.classes)
    assert road == (128, 64, 128) and sky == (70, 130, 180) and car == (220, 20, 60)
    # pedestrian crimson is taken by "car": another, clearly different colour
    from common.colors import MIN_DISTANCE, color_distance
    assert ped != (220, 20, 60) and color_distance(ped, car) >= MIN_DISTANCE
    assert min(color_distance(widget, c) for c in (road, sky, car, ped)) >= MIN_DISTANCE
    p = store.add_class("c", "rider")             # Cityscapes red is too close to the crimson
    rider = p.classes[-1].color
    assert min(color_distance(rider, c.color) for c in p.classes[:-1]) >= MIN_DISTANCE
    store.create_project("d", ["road"])
    assert store.add_class("d", "Trees").classes[-1].color == (107, 142, 35)


def test_image_filenames_name_only_the_projects_own_images(store, project, rgb_image, png_bytes):
    a = store.add_image("p", png_bytes(rgb_image), "a.png", split="train")
    b = store.add_image("p", png_bytes(rgb_image[::-1].copy()), "b.png", split="val")
    store.create_project("q", ["road"])
    other = store.add_image("q", png_bytes(rgb_image[:, ::-1].copy()), "other.png", split="train")
    assert store.image_filenames("p") == {a.id: "a.png", b.id: "b.png"}
    # asked for by id: an id of another project is not named, whatever the caller sends
    assert store.image_filenames("p", [b.id, other.id, b.id]) == {b.id: "b.png"}
    assert store.image_filenames("p", []) == {}


def test_a_renamed_project_keeps_everything_and_its_name_is_unique(store, project, png_bytes):
    iid = store.add_image("p", png_bytes(np.zeros((32, 48, 3), np.uint8)), "a.png").id
    other = store.create_project("q", ["sky"])
    with pytest.raises(ValidationError, match="already exists"):
        store.rename_project("p", "q")
    with pytest.raises(ValidationError):
        store.rename_project("p", "   ")
    r = store.rename_project("p", "  streets ", by="ada")
    assert (r.id, r.name, r.classes) == (project.id, "streets", project.classes)
    assert store.get_image(iid).project_id == r.id and store.count_images("streets")["total"] == 1
    with pytest.raises(NotFoundError):
        store.get_project("p")
    assert store.rename_project(r.id, "streets").name == "streets"      # the same name: nothing recorded
    assert store.renamed_project("p").id == r.id and store.renamed_project("never") is None
    acts = store.list_activity(r.id, action=["project_renamed"])
    assert [(a.user, a.details) for a in acts] == [("ada", {"from": "p", "to": "streets"})]
    assert store.create_project("p", ["road"]).name == "p"              # the old name is free again
    assert store.get_project(other.id).name == "q"


def test_a_removed_project_leaves_every_list_and_comes_back_as_it_was(store, project, png_bytes):
    iid = store.add_image("p", png_bytes(np.zeros((32, 48, 3), np.uint8)), "a.png").id
    store.create_project("q", ["sky"])
    r = store.remove_project("p", by="ada")
    assert r.removed and [p.name for p in store.list_projects()] == ["q"]
    assert [p.name for p in store.list_projects(include_removed=True)] == ["p", "q"]
    assert [p.name for p in store.removed_projects()] == ["p"]
    assert store.get_project("p").removed and store.get_image(iid).project_id == project.id
    with pytest.raises(ValidationError, match="removed project is named 'p': restore it"):
        store.create_project("p", ["road"])
    with pytest.raises(ValidationError, match="restore it"):
        store.rename_project("q", "p")
    assert store.remove_project("p").removed                           # again: nothing recorded
    back = store.restore_project("p", by="bo")
    assert not back.removed and back.classes == project.classes
    assert [p.name for p in store.list_projects()] == ["p", "q"]
    assert store.count_images("p")["total"] == 1
    acts = [(a.action, a.user) for a in store.list_activity("p", action=["project_removed", "project_restored"])]
    assert acts == [("project_restored", "bo"), ("project_removed", "ada")]


def test_a_project_with_a_live_job_is_not_removed(store, project):
    job = store.create_job("p")
    with pytest.raises(ValidationError, match="cancel it"):
        store.remove_project("p")
    assert not store.get_project("p").removed
    store.cancel_job(job.id)
    assert store.remove_project("p").removed
    # nor does a removed project get a job afterwards (a page still open on it asks)
    with pytest.raises(ValidationError, match="was removed.*restores it"):
        store.create_job("p")
    assert [j.status for j in store.list_jobs("p")] == ["cancelled"]
    store.restore_project("p")
    assert store.create_job("p").status == "queued"
