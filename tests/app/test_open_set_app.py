"""A project whose label set names only some of what its images show (models.open_set in
the app): with "others unlabelled" on, what the hidden scene words win is predicted void,
not painted with the nearest class; the setting is an admin's, recorded, and re-predicts."""
import numpy as np
import pytest
from PIL import Image

from segui.access import ENDPOINTS, Act
from segui.handlers import DEMO_DIR, Studio, UserError
from storage import Store

from .conftest import _PREDICTORS

WORDS = "road\nbicycle\ntraffic light"     # a street's road, and nothing of its sky, buildings, trees


@pytest.fixture
def few(tmp_path):
    st = Studio(Store(data_dir=tmp_path / "data"), predictors=_PREDICTORS, instant=True)
    p = st.create_project("furniture", WORDS)
    rep = st.upload("furniture", sorted((DEMO_DIR / "labelled").glob("*.jpg"))[:2])
    ids = [im.id for im in st.store.list_images(p.id, order="id")]
    assert len(ids) == 2, rep
    yield st, p, ids
    st.wait_idle()
    st.store.close()


def truth(i=0):
    """The CamVid labels of the first labelled demo image: 3 road; 0, 1, 4, 5 sky, building,
    pavement, tree (none of the project's words)."""
    return np.array(Image.open(sorted((DEMO_DIR / "labelled").glob("*.png"))[i]))


def test_others_unlabelled_leaves_the_rest_of_the_street_void_and_keeps_the_road(few):
    st, p, ids = few
    void, road = p.ignore_index, p.classes[0].index
    gt = truth()
    is_road, is_other = gt == 3, np.isin(gt, [0, 1, 4, 5])
    assert is_road.mean() > 0.1 and is_other.mean() > 0.3
    closed = st.predict(p.id, ids[0])
    assert (closed == void).mean() == 0                   # every pixel painted with one of 3 words
    st.set_others_unlabelled("furniture", True)
    assert st.others_unlabelled("furniture") and st.store.get_project(p.id).others_unlabelled
    opened = st.predict(p.id, ids[0])
    # sky, buildings, pavement, trees: most left void now; the road stays road
    assert (opened[is_other] == void).mean() > 0.7 > 0.0 == (closed[is_other] == void).mean()
    assert (opened[is_road] == road).mean() > 0.9
    act = [a for a in st.activity(p.id) if a[2] == "classes changed"]
    assert act and "left unlabelled" in act[0][3]
    # off again: as before, and the stored predictions were made again the closed way
    st.set_others_unlabelled("furniture", False)
    assert np.array_equal(st.predict(p.id, ids[0]), closed)
    stored = st.store.get_prediction(ids[1], st.model_version(p.id).id)
    assert stored is None or (stored.class_map == void).mean() == 0


def test_the_setting_is_an_admins_and_checked(few):
    st, p, _ = few
    assert ENDPOINTS["others_unlabelled"] == Act.ADMIN
    with pytest.raises(UserError, match="pick a project"):
        st.set_others_unlabelled("", True)
    with pytest.raises(UserError, match="on or off"):
        st.set_others_unlabelled("furniture", "yes")
    assert not st.store.get_project(p.id).others_unlabelled
    assert st.catch_all_classes(p.id) == []
    st.add_class("furniture", "background")
    assert st.catch_all_classes(p.id) == ["background"]


def test_instant_adaptation_learns_what_the_labeller_left_void(few):
    st, p, ids = few
    st.set_others_unlabelled("furniture", True)
    loaded = st.prepare(ids[0]).loaded
    cm = loaded.class_map.copy()
    assert (cm == p.ignore_index).any()
    st.save_edits(loaded, cm, "ann", "submitted")
    assert st.wait_idle(60)
    session = st.instant_session(p.id)
    assert session is not None and len(session.class_names) > len(p.classes)   # the hidden words too
    labels = session.examples[ids[0]].labels
    # the void pixels became examples of hidden words (positions past the project's classes)
    assert int((labels >= len(p.classes)).sum()) > 0 and int((labels < len(p.classes)).sum()) > 0
    after = st.predict(p.id, ids[1])
    assert (after == p.ignore_index).mean() > 0.3          # the adapter still leaves the rest void
