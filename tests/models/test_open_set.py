"""models.open_set: hidden scene words widen a label set; what they win is none of its classes."""
import numpy as np
import pytest
import torch

from models.inference import Predictor
from models.open_set import HIDDEN_WORDS, candidates, catch_all, close_to_words, hidden_words, void_targets
from tests.conftest import SHIPPED


@pytest.fixture(scope="module")
def shipped():
    return Predictor.load(SHIPPED, "cpu")


def test_candidates_leave_out_the_projects_own_words():
    got = candidates(["Sky", "  traffic   light", "bin"])
    assert "sky" not in got and "tree" in got and len(got) == len(HIDDEN_WORDS) - 1
    assert candidates(list(HIDDEN_WORDS)) == []


def test_a_catch_all_class_is_recognised():
    assert catch_all(["power line", "Background"]) == ["Background"]
    assert catch_all(["road", "everything  else", "car"]) == ["everything  else"]
    assert catch_all(["road", "background noise barrier"]) == []


def test_closeness_is_the_largest_cosine_to_the_projects_words():
    v = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 3.0]])   # 2 project words, 2 others
    sim = close_to_words(v, 2)
    assert np.allclose(sim, [0.8, 0.0])


def test_void_targets_give_each_void_pixel_its_best_hidden_word():
    pos = np.array([[0, 255], [255, 1]], np.uint8)          # two project classes, two void pixels
    hidden = torch.tensor([[[9.0, 1.0], [0.0, 0.0]],        # hidden word 0 wins top-right
                           [[0.0, 2.0], [5.0, 0.0]]])       # hidden word 1 wins bottom-left
    out = void_targets(pos, hidden, 2, 255)
    assert out.tolist() == [[0, 3], [3, 1]] and pos[0, 1] == 255      # input untouched
    assert void_targets(pos, torch.zeros(0, 2, 2), 2, 255).tolist() == pos.tolist()
    with pytest.raises(ValueError, match="do not match"):
        void_targets(pos, torch.zeros(2, 3, 3), 2, 255)


def test_hidden_words_keep_out_words_close_to_the_projects(shipped):
    # a label set naming only some of a street: the scene's other words stay hidden
    few = hidden_words(shipped, ["road", "bicycle", "traffic light", "bin"])
    assert {"sky", "building", "car"} <= set(few) and "road" not in few and "bicycle" not in few
    # "streetlight pole" keeps "pole" out (it would take the poles), "greenery" keeps "tree" out
    syn = hidden_words(shipped, ["streetlight pole", "greenery", "driving lane"])
    assert "pole" not in syn and "tree" not in syn and "road" not in syn and "building" in syn
    # nothing left to hide beside CamVid's 11 classes: the full label set predicts as before
    camvid = ["sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
              "pedestrian", "bicyclist"]
    assert hidden_words(shipped, camvid) == []
