"""models.refine: the guided filter that makes predicted boundaries follow image edges."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.refine import RefineSettings, box_filter, guided_refine, merge_small_pieces, refined_classes


@pytest.mark.parametrize("channels", [3, 12])      # plain and channels-last layouts
@pytest.mark.parametrize("r", [1, 3, 6])
def test_box_filter_is_the_window_mean_clipped_at_borders(r, channels):
    x = torch.rand(channels, 37, 53)
    a = x.numpy()
    ref = np.empty_like(a)
    for i in range(37):
        for j in range(53):
            ref[:, i, j] = a[:, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean(axis=(1, 2))
    assert np.allclose(box_filter(x, r).numpy(), ref, atol=1e-5)
    assert np.allclose(box_filter(x[None], r)[0].numpy(), ref, atol=1e-5)


def edge_scene(edge=30, blurred_at=33, h=40, w=64):
    """An image dark left of column ``edge``, bright right of it; class-0 probability
    falling smoothly around column ``blurred_at`` (a stride-4 model's upsampled boundary)."""
    img = np.full((h, w, 3), 40, np.uint8)
    img[:, edge:] = 200
    x = torch.arange(w, dtype=torch.float32)
    p0 = torch.sigmoid((blurred_at - x) / 2.0).expand(h, w)
    return img, torch.stack([p0, 1 - p0])


@pytest.mark.parametrize("subsample", [1, 2])
@pytest.mark.parametrize("blurred_at", [27, 33])
def test_the_boundary_moves_to_the_image_edge(subsample, blurred_at):
    img, probs = edge_scene(blurred_at=blurred_at)
    plain = probs.argmax(0)
    assert int((plain[0] == 0).sum()) == blurred_at + 1  # the blurred boundary: 3-4 columns off
    refined = guided_refine(probs, img, RefineSettings(radius=8, eps=1e-3, subsample=subsample)).argmax(0)
    assert (refined[:, :30] == 0).all() and (refined[:, 30:] == 1).all()  # on the edge, every row
    nearer = guided_refine(probs, img, RefineSettings(radius=4, eps=1e-3, subsample=subsample)).argmax(0)
    assert abs(int((nearer[20] == 0).sum()) - 30) < abs(blurred_at + 1 - 30)  # a smaller window moves it less


def test_radius_zero_is_the_identity_and_sizes_must_match():
    img, probs = edge_scene()
    assert guided_refine(probs, img, RefineSettings(radius=0)) is probs
    with pytest.raises(ValueError, match="differ in size"):
        guided_refine(probs, img[:, :10], RefineSettings())
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        guided_refine(probs[0], img, RefineSettings())


def test_predictor_refines_its_class_maps_and_keeps_its_logits():
    from models.inference import Predictor, prediction_from_probs

    img, probs = edge_scene()
    flat = prediction_from_probs(probs, img, RefineSettings(radius=0))
    sharp = prediction_from_probs(probs, img, RefineSettings(radius=8, subsample=1, keep=0))
    assert int((flat.class_map[20] == 0).sum()) == 34 and int((sharp.class_map[20] == 0).sum()) == 30
    # with keep, a pixel the model is >= 0.8 sure of stays (column 30 is: 0.82), the unsure ones move
    kept = prediction_from_probs(probs, img, RefineSettings(radius=8, subsample=1, keep=0.8))
    assert int((kept.class_map[20] == 0).sum()) == 31 and float(probs[0, 20, 30]) > 0.8 > float(probs[0, 20, 31])
    # confidence is the model's probability of the class shown
    shown = torch.from_numpy(sharp.class_map.astype(np.int64))
    assert np.allclose(sharp.confidence, probs.gather(0, shown[None])[0].numpy())
    import inspect
    assert inspect.signature(Predictor.__init__).parameters["refine"].default is None  # None means RefineSettings()


@pytest.mark.parametrize("form", ["grey", "grey1", "rgba", "float"])
def test_every_image_form_the_model_takes_guides_the_same(form):
    img, probs = edge_scene()
    other = {"grey": img[..., 0], "grey1": img[..., :1],
             "rgba": np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], 2),
             "float": img.astype(np.float32) / 255.0}[form]
    s = RefineSettings(radius=8, subsample=1)
    assert torch.equal(guided_refine(probs, other, s).argmax(0), guided_refine(probs, img, s).argmax(0))


def test_keep_saves_a_confident_thin_object_the_filter_would_smooth_away():
    """A 2 px vertical 'pole' the network is sure of (0.9), on a background it is sure of too,
    in an image where the pole is only faintly brighter: the filter's window (radius 4) spreads
    the pole's probability over the background and loses it; keep holds it, and the unsure
    pixels next to it still follow the filter."""
    h, w = 30, 40
    img = np.full((h, w, 3), 100, np.uint8)
    img[:, 20:22] = 104
    p_pole = torch.full((h, w), 0.05)
    p_pole[:, 20:22] = 0.9
    p_pole[:, 22] = 0.45  # a blurred, unsure column beside it
    probs = torch.stack([1 - p_pole, p_pole])
    off = refined_classes(probs, img, RefineSettings(radius=4, subsample=1, keep=0))
    on = refined_classes(probs, img, RefineSettings(radius=4, subsample=1, keep=0.8))
    assert int((off == 1).sum()) == 0  # smoothed away
    assert bool((on[:, 20:22] == 1).all()) and int((on == 1).sum()) == 2 * h  # kept; the unsure column is not
    assert torch.equal(refined_classes(probs, img, RefineSettings(radius=0)), probs.argmax(0))


def test_small_pieces_take_the_class_around_them_and_large_ones_stay():
    """Pieces of one class (8-connected) smaller than min_area take the most common class of
    the pixels touching them; pieces at least that big stay, however thin."""
    m = np.zeros((20, 20), np.int64)
    m[:, 14:] = 2
    m[2:4, 2:4] = 1                          # 4 px speck inside 0 -> 0
    m[8:11, 5:8] = 1                         # 9 px block: stays at min_area 9
    m[np.arange(4, 16), np.arange(4, 16) // 3 + 8] = 3   # a 1 px line of 12 px: stays
    m[16:18, 12:14] = 1                      # 4 px at the 0 / 2 border: ring 0 x 7, 2 x 4, 3 x 1 -> 0
    out = merge_small_pieces(m, 9)
    assert (out[2:4, 2:4] == 0).all()
    assert (out[8:11, 5:8] == 1).all() and int((out == 1).sum()) == 9
    assert int((out == 3).sum()) == 12
    assert (out[16:18, 12:14] == 0).all()
    assert int((out == 2).sum()) == int((m == 2).sum())
    assert np.array_equal(merge_small_pieces(m, 1), m)


def test_only_unsure_small_pieces_merge_when_asked():
    m = np.zeros((12, 12), np.int64)
    m[2:4, 2:4] = 1
    m[8:10, 8:10] = 1
    top = np.full(m.shape, 0.95)
    top[2:4, 2:4] = 0.5      # the network was unsure of this speck only
    out = merge_small_pieces(m, 10, top, unsure=0.8)
    assert (out[2:4, 2:4] == 0).all() and (out[8:10, 8:10] == 1).all()
    p1 = torch.from_numpy((m == 1) * 0.6 + 0.1).float()  # the specks at 0.7, the rest 0.9 sure of 0
    probs = torch.stack([1 - p1, p1])
    img = np.zeros((12, 12, 3), np.uint8)
    keep_all = dict(radius=1, subsample=1, keep=0.5)  # the filter changes nothing the network is 0.5 sure of
    assert int((refined_classes(probs, img, RefineSettings(**keep_all, min_area=0)) == 1).sum()) == 8
    assert int((refined_classes(probs, img, RefineSettings(**keep_all, min_area=10, unsure=0.6)) == 1).sum()) == 8
    assert int((refined_classes(probs, img, RefineSettings(**keep_all, min_area=10, unsure=0.8)) == 1).sum()) == 0
    assert torch.equal(refined_classes(probs, img, RefineSettings(radius=0)), probs.argmax(0))  # off: nothing merged
