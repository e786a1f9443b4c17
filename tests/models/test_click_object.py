"""models.click_object: the object grow over pixel embeddings, the click simulator and
the superpixel baseline, on small synthetic images whose answer is known."""
import numpy as np
import pytest

from models.click_object import (ObjectFeatures, ObjectSettings, clicks_to_iou, iou, next_click,
                                 object_from_clicks, object_mask, snap_to_edges, superpixel_clicks)


def two_blobs(h=32, w=48):
    """Embeddings on a (h/4, w/4) grid: class A left of x=24 except a B square, B elsewhere;
    a second A region on the far right (not connected to the first)."""
    H, W = h, w
    gh, gw = h // 4, w // 4
    a, b = np.zeros(8, np.float32), np.zeros(8, np.float32)
    a[0], b[1] = 1, 1
    lab = np.zeros((gh, gw), int)              # 0 = A, 1 = B
    lab[:, gw // 2:] = 1
    lab[2:5, 1:4] = 1                          # a B hole inside the left A part
    lab[:, -2:] = 0                            # a separate A strip on the right
    emb = np.where(lab[None] == 0, a[:, None, None], b[:, None, None])
    probs = np.stack([lab == 0, lab == 1]).astype(np.float32) * 0.9 + 0.05
    return ObjectFeatures(emb, (H, W), probs=probs), lab


def test_one_click_grows_over_its_connected_region_only():
    feat, lab = two_blobs()
    m = object_mask(feat, [(2, 30)])                     # in the left A part, bottom left
    assert m.shape == (32, 48) and m[30, 2] and m[2, 2]
    assert not m[:, 30:40].any()                          # B: not similar
    assert not m[:, -4:].any()                            # the right A strip: similar but not connected
    assert not m[14, 8]                                   # the B hole (grid cells 2..4 -> pixels 8..19)
    both = object_mask(feat, [(2, 30), (46, 5)])          # a positive click in the strip adds it
    assert both[:, -3:].all() and both.sum() > m.sum()


def test_a_negative_click_removes_what_is_more_like_it():
    feat, _ = two_blobs()
    m = object_mask(feat, [(2, 30)], settings=ObjectSettings(threshold=-1.0))   # no threshold: everything
    assert m.all()
    cut = object_mask(feat, [(2, 30)], [(35, 10)], ObjectSettings(threshold=-1.0))
    assert not cut[:, 28:44].any() and cut[30, 2]
    assert not cut[10, 35]                                # a negative click's own pixel is out


def test_the_class_probabilities_weigh_in():
    feat, _ = two_blobs()
    same = feat.click_score((2, 30), class_weight=1.0)    # same-class chance: 0.95^2 + 0.05^2
    assert same.max() == pytest.approx(0.95 ** 2 + 0.05 ** 2, abs=1e-5)
    assert same.min() == pytest.approx(2 * 0.95 * 0.05, abs=1e-5)
    half = feat.click_score((2, 30), class_weight=0.5)     # half cosine (1 or 0), half that
    assert half.max() == pytest.approx(0.5 + 0.5 * (0.95 ** 2 + 0.05 ** 2), abs=1e-5)


def test_object_from_clicks_replays_and_corrects_locally():
    feat, _ = two_blobs()
    s = ObjectSettings(threshold=0.5, local=1.0)
    first = object_from_clicks(feat, [(2, 30, True)], s)
    np.testing.assert_array_equal(first, object_mask(feat, [(2, 30)], settings=s))
    # a positive click in the hole next to the mask fills a disc there, not the whole of B
    states = {}
    fixed = object_from_clicks(feat, [(2, 30, True), (10, 14, True)], s, states)
    assert fixed[14, 10] and fixed.sum() > first.sum() and not fixed[:, 30:40].any()
    assert len(states) == 2                               # each prefix kept
    again = object_from_clicks(feat, [(2, 30, True), (10, 14, True)], s, states)
    np.testing.assert_array_equal(again, fixed)
    # a negative click removes a disc around it
    cut = object_from_clicks(feat, [(2, 30, True), (4, 4, False)], s)
    assert not cut[4, 4] and cut[30, 2]
    # no positive click: nothing
    assert not object_from_clicks(feat, [(4, 4, False)], s).any()
    with pytest.raises(ValueError, match="outside"):
        object_from_clicks(feat, [(48, 0, True)], s)


def test_a_click_on_a_separate_thing_nearby_adds_that_thing_not_a_disc():
    """Found in the page: a car clicked, then a positive click on a traffic light 50 px
    away painted a 50 px disc over the sky around it. A disc wider than ``gate_radius``
    keeps only what the click grows to on its own."""
    gh, gw = 60, 80                                  # a 240x320 image on a stride-4 grid
    lab = np.full((gh, gw), 2)                       # 2: background
    lab[20:40, 5:20] = 0                             # 0: the object clicked first
    lab[28:32, 31:35] = 1                            # 1: a small separate thing 50 px right of it
    vecs = np.eye(8, dtype=np.float32)[:3]
    emb = vecs[lab].transpose(2, 0, 1)
    probs = np.stack([lab == k for k in range(3)]).astype(np.float32) * 0.9 + 0.1 / 3
    feat = ObjectFeatures(emb, (240, 320), probs=probs)
    clicks = [(48, 120, True), (131, 119, True)]
    first = object_from_clicks(feat, clicks[:1])
    assert first[120, 48] and not first[:, 90:].any()
    thing = np.zeros((240, 320), bool)
    thing[112:128, 124:140] = True
    gated = object_from_clicks(feat, clicks)          # the default gate (32 px)
    added = gated & ~first
    assert added[119, 131] and added.sum() >= 0.9 * thing.sum()
    assert not (added & ~thing).any() or (added & ~thing).sum() < 0.15 * thing.sum()
    assert not gated[100, 110] and not gated[150, 131]          # the background around it stays out
    disc = object_from_clicks(feat, clicks, ObjectSettings(gate_radius=0))   # the rule before
    assert disc[100, 110] and disc[150, 131] and (disc & ~first & ~thing).sum() > 10 * thing.sum()
    # a small disc (a sliver next to the mask) is not gated: the click fills it
    near = object_from_clicks(feat, [(48, 120, True), (84, 120, True)])
    assert near[120, 82] and near[120, 86]


def test_next_click_is_the_centre_of_the_largest_error():
    gt = np.zeros((20, 30), bool)
    gt[2:18, 2:20] = True
    x, y, pos = next_click(gt, np.zeros_like(gt))
    assert pos and 9 <= y <= 10 and 8 <= x <= 12       # the centre of the object (farthest from its border)
    pred = gt.copy()
    pred[5:15, 20:29] = True                           # a false positive 10 x 9 px
    pred[2:18, 2:6] = False                            # a missed strip 16 x 4 px
    x, y, pos = next_click(gt, pred)
    assert not pos and 20 <= x <= 28 and 5 <= y < 15   # the wider error wins
    assert next_click(gt, gt) is None
    valid = ~pred | gt                                  # the false positive on void does not count
    x, y, pos = next_click(gt, pred, valid)
    assert pos and 2 <= x < 6


def test_clicks_to_iou_counts_clicks_and_misses():
    gt = np.zeros((20, 20), bool)
    gt[5:15, 5:15] = True
    r = clicks_to_iou(gt, lambda clicks: gt.copy())
    assert r["noc"] == {0.85: 1, 0.90: 1} and r["reached"][0.85]
    r = clicks_to_iou(gt, lambda clicks: np.zeros_like(gt), max_clicks=5)
    assert r["noc"] == {0.85: 5, 0.90: 5} and not r["reached"][0.9] and len(r["ious"]) == 5
    assert iou(gt, gt) == 1.0 and iou(gt, ~gt) == 0.0


def test_superpixel_clicks_add_and_remove_whole_segments():
    seg = np.repeat(np.arange(4), 5)[None].repeat(3, 0)        # 4 vertical bands of 5 px
    m = superpixel_clicks(seg, [(1, 1, True), (7, 0, True), (6, 2, False)])
    assert m[:, :5].all() and not m[:, 5:].any()



def sliver_scene(right=29):
    """A bright object (y 4..43, x 8..right-1) on a dark image whose stride-4 embeddings
    see only its x 8..27: the grow's outline, on the grid, misses a sliver along its
    right edge, as the upsampled stride-4 score misses slivers along CamVid boundaries."""
    H, W = 48, 64
    image = np.full((H, W, 3), 30, np.uint8)
    image[4:44, 8:right] = 220
    gt = image[..., 0] > 100
    gh, gw = H // 4, W // 4
    lab = np.zeros((gh, gw), int)
    lab[1:11, 2:7] = 1                                     # grid cells -> pixels x 8..27
    a, b = np.zeros(8, np.float32), np.zeros(8, np.float32)
    a[0], b[1] = 1, 1
    emb = np.where(lab[None] == 1, a[:, None, None], b[:, None, None])
    probs = np.stack([lab == 0, lab == 1]).astype(np.float32) * 0.9 + 0.05
    return emb, probs, image, gt


def test_the_edge_snap_takes_in_a_sliver_the_grid_misses():
    emb, probs, image, gt = sliver_scene(right=29)           # a 1 px sliver, 40 px long, at x 28
    plain = ObjectFeatures(emb, gt.shape, probs=probs)       # no image: no snap (the grow as before)
    feat = ObjectFeatures(emb, gt.shape, probs=probs, image=image)
    first = [(16, 24, True)]
    old = object_from_clicks(plain, first)
    assert not old[:, 28].any() and iou(gt, old) < 0.95
    assert np.array_equal(old, object_from_clicks(feat, first, ObjectSettings(edge_radius=0)))
    new = object_from_clicks(feat, first)                    # the default snaps to the image's edges
    assert new[4:44, 28].sum() >= 36 and not new[:, 29:].any() and iou(gt, new) > 0.99
    # with a disc the sliver takes a click for every few px of its length
    disc = object_from_clicks(plain, first + [(28, 24, True)])
    assert disc[24, 28] and disc[4:44, 28].sum() <= 8


def test_the_edge_snap_trims_a_correction_at_the_edge():
    emb, probs, image, gt = sliver_scene(right=32)           # a 4 px sliver at x 28..31
    clicks = [(16, 24, True), (30, 24, True)]
    disc = object_from_clicks(ObjectFeatures(emb, gt.shape, probs=probs), clicks)
    snapped = object_from_clicks(ObjectFeatures(emb, gt.shape, probs=probs, image=image), clicks)
    assert disc[:, 32:].sum() >= 10                          # the disc spills past the object's edge
    assert snapped[:, 32:].sum() < disc[:, 32:].sum() / 2 and iou(gt, snapped) > iou(gt, disc)
    assert snapped[24, 30] and snapped[24, 16]


def test_snap_to_edges_moves_the_outline_by_a_pixel_and_drops_specks():
    _, _, image, gt = sliver_scene(right=32)
    for d in (1, -1):                                        # the outline 1 px outside / inside the object
        m = np.zeros_like(gt)
        m[4 - d:44 + d, 8 - d:32 + d] = True
        m[20, 50] = True                                     # a speck on the uniform background
        s = snap_to_edges(m, image)
        assert s.dtype == bool and s.shape == gt.shape
        assert iou(gt, s) > 0.98 > 0.9 > iou(gt, m) and not s[18:23, 48:53].any()
    flat = np.full_like(image, 128)                          # no edges: the mask stays (but its corners)
    m = np.zeros_like(gt)
    m[6:42, 10:29] = True
    assert iou(m, snap_to_edges(m, flat)) > 0.95
