"""models.review (the model as a second reviewer) on hand-made probabilities where the answer is known,
and the pure helpers of benchmarks/bench_second_reviewer.py. No model is loaded."""

import sys
from pathlib import Path

import numpy as np
import pytest

from models.review import (
    DEFAULT_RULE,
    REGIONS_RULE,
    STATS_RULE,
    ReviewRule,
    boundary_band,
    confident_disagreement,
    disagreement_from_prediction,
    pair_evidence,
    pair_weights,
    predicted_objects,
    review_score,
    score_disagreement,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_second_reviewer as bench  # noqa: E402

H, W, K, VOID = 360, 480, 3, 255  # the rule's reference size: default parameters apply unscaled
RAW = ReviewRule(threshold=0.9, boundary_band=0, min_region=0, score="regions")  # pixels: no band, no size cut


def probs_for(pred: np.ndarray, conf: float = 0.99, k: int = K) -> np.ndarray:
    """(k, H, W) probabilities: ``conf`` on the predicted class, the rest spread evenly."""
    p = np.full((k,) + pred.shape, (1.0 - conf) / (k - 1), dtype=np.float32)
    np.put_along_axis(p, pred[None].astype(np.intp), conf, axis=0)
    return p


def halves() -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[:, W // 2:] = 1
    return m


def test_wrong_square_outranks_boundary_seams():
    label = halves()
    # clean image: the model puts the 0|1 edge 2 px to the right and wobbles along it
    seam_pred = label.copy()
    seam_pred[:, W // 2: W // 2 + 2] = 0
    seam_pred[::7, W // 2 - 2: W // 2] = 1
    seam_score, seam_mask = confident_disagreement(probs_for(seam_pred), label, VOID)
    # planted error: a 20x20 car (class 2) labelled as class 0; the model sees the car
    true = label.copy()
    true[100:120, 50:70] = 2
    wrong_score, wrong_mask = confident_disagreement(probs_for(true), label, VOID)
    assert seam_score == 0.0 and not seam_mask.any()
    assert wrong_score > seam_score
    assert wrong_mask[110, 60] and not wrong_mask[0, 0]
    # the raw share counts the seam (2 px x 360 rows = 720 px) above the 400 px square
    assert confident_disagreement(probs_for(seam_pred), label, VOID, ReviewRule(score="share"))[0] > \
        confident_disagreement(probs_for(true), label, VOID, ReviewRule(score="share"))[0]


def test_relabelled_object_keeps_its_inside_after_the_band():
    """A relabelled object has annotation boundaries all round: the band trims its rim, not its core."""
    true = halves()
    true[100:120, 50:70] = 2
    submitted = true.copy()
    submitted[100:120, 50:70] = 1  # the car labelled as class 1 (wrong), its edges still drawn
    score, mask = confident_disagreement(probs_for(true), submitted, VOID, REGIONS_RULE)
    n = (submitted != VOID).sum()
    assert score == pytest.approx(16 * 16 / n)  # 20x20 minus a 2 px rim
    assert mask.sum() == 16 * 16


def test_void_never_counts():
    label = halves()
    label[:, :100] = VOID
    pred = np.full((H, W), 2, dtype=np.uint8)  # the model disagrees everywhere
    pred[:, 100:] = label[:, 100:]
    score, mask = confident_disagreement(probs_for(pred), label, VOID, RAW)
    assert score == 0.0 and not mask.any()
    all_void = np.full((H, W), VOID, dtype=np.uint8)
    for rule in (DEFAULT_RULE, RAW, ReviewRule(score="share")):
        score, mask = confident_disagreement(probs_for(pred), all_void, VOID, rule)
        assert score == 0.0 and not mask.any()
    # the share is of labelled pixels only
    label2 = np.zeros((H, W), dtype=np.uint8)
    label2[:, : W // 2] = VOID
    pred2 = np.where(np.arange(W)[None, :] >= 3 * W // 4, 1, 0).astype(np.uint8).repeat(H, 0)
    assert confident_disagreement(probs_for(pred2), label2, VOID, RAW)[0] == pytest.approx(0.5)


def test_threshold_is_strict_and_only_other_classes_count():
    label = np.zeros((H, W), dtype=np.uint8)
    pred = label.copy()
    pred[:50, :50] = 1
    for conf, counted in ((0.89, False), (0.9, False), (0.91, True)):
        p = probs_for(pred, conf=conf)
        score, mask = confident_disagreement(p, label, VOID, RAW)
        assert bool(mask[:50, :50].all()) is counted and mask.sum() == (2500 if counted else 0)
    # a confident model that agrees never counts, whatever the threshold
    agree = ReviewRule(threshold=0.5, boundary_band=0, min_region=0, score="regions")
    assert confident_disagreement(probs_for(label, conf=0.999), label, VOID, agree)[0] == 0.0


def test_low_threshold_counts_a_non_top_class():
    """Below 0.5 a class that is not the argmax can pass: only the full-probability form sees it."""
    label = np.zeros((8, 8), dtype=np.uint8)
    p = np.zeros((3, 8, 8), dtype=np.float32)
    p[0], p[1], p[2] = 0.2, 0.35, 0.45  # argmax 2, and class 1 above 0.3 too
    rule = ReviewRule(threshold=0.3, boundary_band=0, min_region=0, score="share")
    assert confident_disagreement(p, label, VOID, rule)[0] == 1.0
    p[2], p[0] = 0.25, 0.4  # argmax 0 = the label, but class 1 (0.35) is above 0.3
    assert confident_disagreement(p, label, VOID, rule)[0] == 1.0
    with pytest.raises(ValueError, match="threshold >= 0.5"):
        disagreement_from_prediction(p.argmax(0).astype(np.uint8), p.max(0), label, VOID, rule)


@pytest.mark.parametrize("rule", [DEFAULT_RULE, STATS_RULE, REGIONS_RULE, RAW,
                                  ReviewRule(threshold=0.3, min_region=10, min_share=0.1),
                                  ReviewRule(threshold=0.5, boundary_band=1, min_region=30, score="regions"),
                                  ReviewRule(threshold=0.7, score="largest"), ReviewRule(score="share")])
def test_argmax_form_equals_full_probabilities(rule):
    """Exact for the objects score at any threshold, and for the pixel scores at >= 0.5."""
    rng = np.random.default_rng(0)
    h, w = 120, 160
    # blocky random probabilities (8x8 blocks) so regions and boundaries exist, sharpened
    logits = rng.normal(size=(4, h // 8, w // 8)).repeat(8, 1).repeat(8, 2) * 4
    e = np.exp(logits - logits.max(0))
    p = (e / e.sum(0)).astype(np.float32)
    label = rng.integers(0, 4, size=(h // 8, w // 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    label[:10] = VOID
    full = confident_disagreement(p, label, VOID, rule)
    short = disagreement_from_prediction(p.argmax(0).astype(np.uint8), p.max(0), label, VOID, rule)
    assert full[0] == short[0] and (full[1] == short[1]).all()
    assert 0.0 < full[0] < 1.0


def test_torch_probabilities_are_accepted():
    """As they come from Predictor.logits(...).softmax(0). (Importing torch is most of this test's time.)"""
    torch = pytest.importorskip("torch")
    true = halves()
    true[100:120, 50:70] = 2
    p = probs_for(true)
    assert confident_disagreement(torch.from_numpy(p), halves(), VOID)[0] == \
        confident_disagreement(p, halves(), VOID)[0] > 0


def test_parameters_scale_with_image_size():
    assert DEFAULT_RULE.scaled((360, 480)) == (DEFAULT_RULE.boundary_band, DEFAULT_RULE.min_region)
    assert ReviewRule(boundary_band=2, min_region=50).scaled((720, 960)) == (4, 200)
    assert ReviewRule(boundary_band=2, min_region=50).scaled((180, 240)) == (1, 12)
    # the same picture at twice the size scores the same (scores are shares of labelled pixels)
    true = halves()
    true[100:120, 50:70] = 2
    true[200:204, 300:306] = 2  # a 24 px speck: under min_region at either size
    label = halves()
    label[:, W // 2 - 1: W // 2 + 1] = VOID  # a void seam between the halves
    small = confident_disagreement(probs_for(true), label, VOID)
    big = confident_disagreement(probs_for(true.repeat(2, 0).repeat(2, 1)), label.repeat(2, 0).repeat(2, 1), VOID)
    assert small[0] > 0 and big[0] == pytest.approx(small[0])
    assert big[1].sum() == 4 * small[1].sum()


def test_min_region_and_scores():
    label = np.zeros((H, W), dtype=np.uint8)
    pred = label.copy()
    pred[10:20, 10:20] = 1  # 100 px
    pred[100:105, 100:105] = 1  # 25 px
    pred[200:230, 200:230] = 2  # 900 px
    p, n = probs_for(pred), H * W
    regions = ReviewRule(boundary_band=0, min_region=50, score="regions")
    largest = ReviewRule(boundary_band=0, min_region=50, score="largest")
    assert confident_disagreement(p, label, VOID, regions)[0] == pytest.approx(1000 / n)
    assert confident_disagreement(p, label, VOID, largest)[0] == pytest.approx(900 / n)
    score, mask = confident_disagreement(p, label, VOID, ReviewRule(boundary_band=0, min_region=1000, score="regions"))
    assert score == 0.0 and not mask.any()
    share, mask = confident_disagreement(p, label, VOID, ReviewRule(score="share"))
    assert share == pytest.approx(1025 / n) and mask.sum() == 1025
    # score_disagreement takes the raw mask directly
    assert score_disagreement(pred != label, label, VOID, regions)[0] == pytest.approx(1000 / n)


def test_boundary_band():
    m = halves()[:4, W // 2 - 4: W // 2 + 4]  # 4x8: 0000|1111
    assert boundary_band(m, 0).sum() == 0
    assert boundary_band(m, 1)[0].tolist() == [False] * 3 + [True] * 2 + [False] * 3
    assert boundary_band(m, 2)[0].tolist() == [False] * 2 + [True] * 4 + [False] * 2


def test_bad_input_raises_clear_errors():
    label = np.zeros((6, 8), dtype=np.uint8)
    p = probs_for(label)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        confident_disagreement(p[0], label, VOID)
    with pytest.raises(ValueError, match="sizes must match"):
        confident_disagreement(p, np.zeros((6, 9), dtype=np.uint8), VOID)
    with pytest.raises(ValueError, match="integer class indices"):
        confident_disagreement(p, label.astype(np.float32), VOID)
    with pytest.raises(ValueError, match="outside 0..2"):
        confident_disagreement(p, np.full((6, 8), 7, dtype=np.uint8), VOID)
    with pytest.raises(ValueError, match="NaN"):
        confident_disagreement(np.full_like(p, np.nan), label, VOID)
    with pytest.raises(ValueError, match="sizes must match"):
        score_disagreement(np.zeros((6, 9), bool), label, VOID, REGIONS_RULE)
    with pytest.raises(ValueError, match="needs the prediction"):
        score_disagreement(np.zeros((6, 8), bool), label, VOID, DEFAULT_RULE)
    with pytest.raises(ValueError, match='"objects" score'):
        confident_disagreement(p, label, VOID, REGIONS_RULE, pair_stats=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="for 3 classes"):
        confident_disagreement(p, label, VOID, pair_stats=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="beyond the 2 classes"):
        disagreement_from_prediction(label + 2, np.ones((6, 8), np.float32), label, VOID, pair_stats=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(K, K\)"):
        pair_weights(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(K, K\)"):
        pair_weights(-np.ones((3, 3)))
    with pytest.raises(ValueError, match="same \\(H, W\\)"):
        disagreement_from_prediction(label, np.ones((6, 9), np.float32), label, VOID)
    with pytest.raises(ValueError, match="sizes must match"):
        disagreement_from_prediction(label, np.ones((6, 8), np.float32), np.zeros((5, 8), np.uint8), VOID)
    for kwargs in ({"threshold": 1.0}, {"threshold": -0.1}, {"boundary_band": -1}, {"min_region": -1},
                   {"score": "max"}, {"min_share": 1.5}, {"min_share": -0.1}):
        with pytest.raises(ValueError):
            ReviewRule(**kwargs)


class FakeLogits:
    """Stands in for the (K, H, W) torch tensor Predictor.logits returns: review_score only calls softmax(0)."""

    def __init__(self, probs: np.ndarray):
        self.probs = probs

    def softmax(self, dim):
        assert dim == 0
        return self.probs


class FakePredictor:
    """What review_score needs of models.inference.Predictor: logits(image, class_names)."""

    def __init__(self, pred: np.ndarray):
        self.pred, self.calls = pred, []

    def logits(self, image, class_names):
        self.calls.append((image.shape, list(class_names)))
        return FakeLogits(probs_for(self.pred, k=len(class_names)))


def test_review_score_runs_the_predictor_and_scores():
    true = halves()
    true[100:120, 50:70] = 2
    predictor = FakePredictor(true)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    score, mask = review_score(predictor, image, halves(), ["road", "sky", "car"], VOID)
    assert predictor.calls == [((H, W, 3), ["road", "sky", "car"])]
    assert score == pytest.approx(400 / (H * W)) and mask[100:120, 50:70].all() and mask.sum() == 400
    score, mask = review_score(predictor, image, true, ["road", "sky", "car"], VOID)
    assert score == 0.0 and not mask.any()


# -- the "objects" score (the default) and pair statistics


def test_objects_a_wholly_wrong_small_object_outranks_a_partly_disagreed_big_one():
    """What the pixel rules get wrong on CamVid val: a big object of the model that the
    annotation partly calls something else (building seen through a fence) has more
    disagreeing pixels than a small wrong object, but a smaller share of itself."""
    label = halves()  # 0 | 1
    # clean: the model's 60x60 class-2 object sits over a labelled 2 block; 1080 px of it are labelled 1
    label_clean = label.copy()
    label_clean[100:160, 300:342] = 2  # 60 x 42 labelled 2 ...
    pred_clean = label.copy()
    pred_clean[100:160, 300:360] = 2  # ... the model's object is 60 x 60: 60 x 18 = 1080 px labelled 1
    # planted: a 20x20 car (class 2) erased into road (class 0); the model still sees it
    pred_planted = label.copy()
    pred_planted[100:120, 50:70] = 2
    clean = confident_disagreement(probs_for(pred_clean), label_clean, VOID)
    planted = confident_disagreement(probs_for(pred_planted), label, VOID)
    n = H * W
    assert planted[0] == pytest.approx(400 / n)  # the whole object disagrees: evidence = its area
    assert clean[0] == pytest.approx(1080 * (1080 / 3600) / n)  # 1080 px x share 0.3
    assert planted[0] > clean[0]
    assert planted[1].sum() == 400 and planted[1][110, 60]
    assert clean[1].sum() == 1080 and clean[1][100:160, 342:360].all()
    # the pixel rule ranks them the other way round
    assert confident_disagreement(probs_for(pred_clean), label_clean, VOID, REGIONS_RULE)[0] > \
        confident_disagreement(probs_for(pred_planted), label, VOID, REGIONS_RULE)[0]
    # below min_share (0.3) the clean object is not counted at all
    assert confident_disagreement(probs_for(pred_clean), label_clean, VOID, ReviewRule(min_share=0.31))[0] == 0.0


def test_objects_relabel_size_cut_and_confidence():
    true = halves()
    true[100:120, 50:70] = 2
    submitted = halves()
    submitted[100:120, 50:70] = 1  # the car relabelled as class 1 inside class 0
    score, mask = confident_disagreement(probs_for(true), submitted, VOID)
    assert score == pytest.approx(400 / (H * W)) and (mask == (true == 2)).all()
    # an object under min_region (150 px at 480x360) never counts
    small = halves()
    small[100:110, 50:64] = 2  # 140 px
    assert confident_disagreement(probs_for(small), halves(), VOID)[0] == 0.0
    assert confident_disagreement(probs_for(small), halves(), VOID, ReviewRule(min_region=100))[0] > 0
    # only pixels where the model is sure (> threshold) are evidence
    assert confident_disagreement(probs_for(true, conf=0.79), submitted, VOID)[0] == 0.0
    assert confident_disagreement(probs_for(true, conf=0.79), submitted, VOID, ReviewRule(threshold=0.7))[0] > 0


def test_predicted_objects_table():
    label = np.zeros((10, 10), dtype=np.uint8)
    label[:, 8:] = VOID
    label[0:4, 0:4] = 1
    pred = np.zeros((10, 10), dtype=np.uint8)
    pred[0:4, 0:6] = 2  # one class-2 object: 16 px labelled 1, 8 px labelled 0
    conf = np.full((10, 10), 0.99, dtype=np.float32)
    conf[0, 0:4] = 0.5  # 4 of the 16 are not sure
    objects, t = predicted_objects(pred, conf, label, VOID, 0.8, 3)
    o = objects[0, 0]
    assert objects[0, 9] == 0  # void is no object
    assert (t["area"][o], t["cls"][o], t["top"][o], t["agree_top"][o]) == (24, 2, 1, 12)
    zero = objects[9, 0]  # the rest of the 80 labelled px, predicted 0 and all labelled 0
    assert (t["cls"][zero], t["area"][zero], t["top"][zero], t["agree_top"][zero]) == (0, 56, -1, 0)
    assert len(t["area"]) == 3 and t["top"][0] == -1  # row 0: no object


def test_pair_statistics_weigh_typical_confusions_down():
    """Disagreement the project sees in its accepted annotations all the time (here:
    labelled 1, predicted 2) counts less than a pair never seen (labelled 0, predicted 2)."""
    label = halves()  # 0 | 1
    typical = label.copy()
    typical[200:230, 300:330] = 2  # 900 px predicted 2 inside labelled 1
    rare = label.copy()
    rare[100:120, 50:70] = 2  # 400 px predicted 2 inside labelled 0
    conf = np.full((H, W), 0.99, dtype=np.float32)
    ev = pair_evidence(typical, conf, label, VOID, K)
    assert ev.shape == (K, K) and ev[1, 2] == pytest.approx(900) and ev.sum() == pytest.approx(900)
    stats = sum(pair_evidence(typical, conf, label, VOID, K) for _ in range(20))  # 20 accepted annotations
    w = pair_weights(stats)
    assert w[0, 2] == pytest.approx(1.0) and 0 < w[1, 2] < 0.2
    assert (pair_weights(np.zeros((K, K))) == 1.0).all()  # no statistics: every pair weighs 1
    no_stats = [disagreement_from_prediction(p, conf, label, VOID)[0] for p in (typical, rare)]
    assert no_stats[0] > no_stats[1]
    with_stats = [disagreement_from_prediction(p, conf, label, VOID, pair_stats=stats)[0] for p in (typical, rare)]
    assert with_stats[1] > with_stats[0]
    assert with_stats[1] == pytest.approx(no_stats[1])  # an unseen pair keeps its full weight
    # the full-probability form and review_score take the same statistics
    assert confident_disagreement(probs_for(typical), label, VOID, pair_stats=stats)[0] == pytest.approx(with_stats[0])
    predictor = FakePredictor(rare)
    got = review_score(predictor, np.zeros((H, W, 3), np.uint8), label, ["road", "sky", "car"], VOID, pair_stats=stats)
    assert got[0] == pytest.approx(with_stats[1])


# -- the benchmark's pure helpers


def test_plant_error_changes_one_region():
    label = np.zeros((60, 80), dtype=np.uint8)  # road
    label[10:30, 10:30] = 2  # a 400 px car
    label[40:45, 60:65] = 1  # a 25 px speck: too small to plant in
    label[:, 79] = VOID
    seen = set()
    for seed in range(20):
        planted, info = bench.plant_error(label, np.random.default_rng(seed), 4, VOID, min_object=300)
        changed = planted != label
        assert info["area"] == changed.sum()
        assert (label[changed] == info["from"]).all() and (planted[changed] == info["to"]).all()
        assert info["to"] != info["from"] and info["to"] != VOID
        if info["mode"] == "erase" and info["from"] == 2:
            assert info["to"] == 0  # the class around the car
        seen.add((info["mode"], info["from"]))
    assert {m for m, _ in seen} == {"relabel", "erase"}
    assert bench.plant_error(label, np.random.default_rng(0), 4, VOID, min_object=10_000) is None


def test_queue_metrics_and_random_baseline():
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    planted = np.zeros(10, bool)
    planted[[0, 2]] = True
    m = bench.queue_metrics(scores, planted, np.random.default_rng(0), share=0.2)
    assert (m["queue_head"], m["recall_at_head"], m["precision_at_planted"], m["auc"]) == (2, 1.0, 1.0, 1.0)
    planted[:] = False
    planted[[1, 4]] = True  # 0.1: above four clean zeros; 0.0: tied with them
    m = bench.queue_metrics(scores, planted, np.random.default_rng(0), share=0.2)
    assert m["recall_at_head"] == 0.0 and m["auc"] == pytest.approx((4 / 8 + 0.5 * 4 / 8) / 2)
    base = bench.random_order_baseline(101, 10, 20, 0.8)
    assert base["expected_recall_at_queue_share"] == pytest.approx(20 / 101)
    assert 1e-5 < base["p_reaching_target"] < 1e-4  # 8+ of 10 planted in 20 of 101 by chance
    assert bench.random_order_baseline(10, 2, 10, 0.8)["p_reaching_target"] == pytest.approx(1.0)


def test_bench_evaluate_with_pair_statistics():
    """Ten images where the model always calls a block of labelled 1 class 2 (a typical
    confusion) and one planted error of a rare pair (a class-2 object erased into 0):
    without statistics the planted image ties with the clean ones; with statistics of
    the clean ground truth (leave one out, or fixed) or of the queue itself it comes first."""
    h, w = 60, 80
    labels, preds = [], []
    for _ in range(10):
        lbl = np.zeros((h, w), dtype=np.uint8)
        lbl[:, w // 2:] = 1
        lbl[5:11, 5:11] = 2  # a small class-2 object, labelled right
        pred = lbl.copy()
        pred[30:40, 50:60] = 2  # the typical confusion: labelled 1, predicted 2
        labels.append(lbl)
        preds.append(pred)
    confs = [np.full((h, w), 0.99, dtype=np.float32)] * 10
    planted = labels[3].copy()
    planted[5:11, 5:11] = 0  # erased into the class around it
    plantings = [(0, {3: (planted, {"mode": "erase", "from": 2, "to": 0, "area": 36})})]
    fixed = sum(pair_evidence(p, c, lbl, VOID, K) for p, c, lbl in zip(preds, confs, labels))
    _, none = bench.evaluate(labels, preds, confs, VOID, plantings, STATS_RULE, 0.2, num_classes=K)
    assert none["auc"] == 0.5  # 100 px of evidence everywhere: a tie
    for stats in ("loo", "queue", ("fixed", fixed)):
        per_seed, mean = bench.evaluate(labels, preds, confs, VOID, plantings, STATS_RULE, 0.2, stats=stats,
                                        num_classes=K)
        assert mean["recall_at_head"] == 1.0 and mean["auc"] == 1.0, stats
        assert per_seed[0]["planted_images"][0]["rank"] == 1


def test_queue_scores_are_the_leave_one_out_pair_statistics_score():
    """What the app stores per submission (Evidence) scores the same as the rule with
    the statistics of every other annotation in the queue, and survives JSON."""
    from models.review import STATS_RULE, Evidence, annotation_evidence, pair_evidence, queue_scores

    rng = np.random.default_rng(1)
    K, maps = 5, []
    for i in range(6):
        m = rng.integers(0, K, (40, 60))
        m[:15, :20], m[20:, 30:] = 2, 4
        pred = m.copy()
        pred[rng.random(m.shape) < 0.1] = 1
        pred[: 10 + i, : 12 + i] = 3                       # a wrong object of varying size
        maps.append((pred, 0.5 + 0.5 * rng.random(m.shape), m))
    ev = [Evidence.from_json(annotation_evidence(p, c, m, 255, K).to_json()) for p, c, m in maps]
    got = queue_scores(ev, K)
    pairs = [pair_evidence(p, c, m, 255, K, STATS_RULE) for p, c, m in maps]
    for i, (p, c, m) in enumerate(maps):
        stats = sum(pairs[:i] + pairs[i + 1:])
        want, _ = disagreement_from_prediction(p, c, m, 255, STATS_RULE, pair_stats=stats)
        assert got[i] == pytest.approx(want, rel=1e-3)
    assert queue_scores(ev[:1], K) == [pytest.approx(ev[0].score())]   # no statistics from one
    with pytest.raises(ValueError, match="not an Evidence record"):
        Evidence.from_json({"top": [1]})


# -- third round: the probability of the labelled class (PROBS_RULE)


def unsure_probs(true: np.ndarray, k: int = 4) -> np.ndarray:
    """(k, H, W): where ``true`` is 2 the model is unsure between 2 (0.6) and 3 (0.37) and
    gives 0 and 1 0.015 each; elsewhere it is sure (0.99) of ``true``."""
    p = probs_for(true, 0.99, k)
    car = true == 2
    p[:, car] = np.array([0.015, 0.015, 0.6, 0.37], dtype=np.float32)[:, None]
    return p


def test_probs_evidence_without_low_prob_is_the_argmax_evidence():
    from models.review import annotation_evidence, annotation_evidence_from_probs

    rng = np.random.default_rng(3)
    for _ in range(3):
        m = rng.integers(0, K, (H, W)).astype(np.uint8)
        m[:200, :300] = 1
        m[250:, 100:] = VOID
        p = rng.random((K, H, W)).astype(np.float32) ** 4
        p[2, 50:150, 50:200] += 3.0  # a confident class-2 object labelled 1
        p /= p.sum(0)
        a = annotation_evidence_from_probs(p, m, VOID, K, STATS_RULE)
        b = annotation_evidence(p.argmax(0), p.max(0), m, VOID, K, STATS_RULE)
        assert a.labelled == b.labelled and a.evidence.size > 0
        assert (a.top == b.top).all() and (a.cls == b.cls).all() and np.allclose(a.evidence, b.evidence)


def test_low_label_probability_finds_a_relabel_the_model_is_unsure_about():
    from models.review import PROBS_RULE, annotation_evidence_from_probs

    label = halves()  # 0 | 1
    true = label.copy()
    true[100:120, 50:70] = 2  # a 400 px car on the 0 side ...
    submitted = true.copy()
    submitted[100:120, 50:70] = 1  # ... relabelled 1 (not touching the 1 half)
    p = unsure_probs(true)
    k = p.shape[0]
    # the model is not > 0.8 sure of the car: the argmax rules see nothing
    assert confident_disagreement(p, submitted, VOID, STATS_RULE)[0] == 0.0
    # p(label = 1) = 0.015 < 0.03 on all 400 px: evidence 400 (share 1), pair (1, car)
    ev = annotation_evidence_from_probs(p, submitted, VOID, k)
    n = int((submitted != VOID).sum())
    assert ev.labelled == n and ev.evidence.max() == pytest.approx(400)
    assert set(zip(ev.top.tolist(), ev.cls.tolist())) == {(1, 2)}  # the model's object and the region agree
    score, mask = confident_disagreement(p, submitted, VOID, PROBS_RULE)
    assert score == pytest.approx(ev.score()) == pytest.approx(400 / n)
    assert (mask == (true == 2)).all()
    # where the model gives the label 0.05, 0.03 does not rule it out (0.1 would)
    p2 = p.copy()
    p2[:, true == 2] = np.array([0.0, 0.05, 0.6, 0.35], dtype=np.float32)[:, None]
    assert confident_disagreement(p2, submitted, VOID, PROBS_RULE)[0] == 0.0
    assert confident_disagreement(p2, submitted, VOID, ReviewRule(min_share=0, low_prob=0.1))[0] > 0
    # the clean annotation scores 0: the model gives every label 0.99 (the car: 0.6)
    assert annotation_evidence_from_probs(p, true, VOID, k).evidence.size == 0
    # torch probabilities are accepted
    torch = pytest.importorskip("torch")
    ev_t = annotation_evidence_from_probs(torch.from_numpy(p).half(), submitted, VOID, k)
    assert ev_t.evidence.max() == pytest.approx(400)


def test_components_catch_an_object_the_model_splits_into_small_pieces():
    """The model is unsure between 2 and 3 row by row: its objects are 20 px strips, all
    under 150 px, so only the annotation's own region (400 px labelled 1, which the
    model rules out) is evidence."""
    from models.review import PROBS_RULE, annotation_components, annotation_evidence_from_probs, label_probability

    label = halves()
    true = label.copy()
    true[100:120, 50:70] = 2
    submitted = true.copy()
    submitted[100:120, 50:70] = 1
    p = unsure_probs(true)
    p[2:, 100:120:2, 50:70] = p[2:, 100:120:2, 50:70][::-1]  # every other row: 3 wins
    assert (p.argmax(0)[100:104, 50] == [3, 2, 3, 2]).all()
    objects_only = annotation_evidence_from_probs(p, submitted, VOID, 4, ReviewRule(min_share=0, low_prob=0.03))
    assert objects_only.evidence.size == 0
    ev = annotation_evidence_from_probs(p, submitted, VOID, 4, PROBS_RULE)
    assert ev.evidence.tolist() == [pytest.approx(400)] and ev.top.tolist() == [1] and ev.cls[0] in (2, 3)
    pl = label_probability(p, submitted, VOID)
    assert pl[110, 60] == pytest.approx(0.015) and pl[0, 0] == pytest.approx(0.99)
    comps, t = annotation_components(submitted, VOID, pl, 0.03, p.argmax(0), 4)
    c = comps[110, 60]
    assert (t["area"][c], t["top"][c], t["agree_top"][c]) == (400, 1, 400)
    assert comps[0, 0] != c and t["agree_top"][comps[0, 0]] == 0 and t["top"][0] == -1


def test_probs_rule_queue_scores_and_refusals():
    from models.review import (PROBS_RULE, Evidence, annotation_evidence, annotation_evidence_from_probs,
                               queue_scores)

    label = halves()
    true = label.copy()
    true[100:120, 50:70] = 2
    planted = true.copy()
    planted[100:120, 50:70] = 1
    typical = true.copy()
    typical[200:240, 300:340] = 3  # the model calls 1600 px of labelled 1 class 3, sure, in every clean image
    p_clean = unsure_probs(typical)
    clean = [annotation_evidence_from_probs(p_clean, true, VOID, 4) for _ in range(6)]
    bad = annotation_evidence_from_probs(unsure_probs(true), planted, VOID, 4)
    assert clean[0].score() > bad.score()  # without statistics the usual confusion is bigger
    ev = [Evidence.from_json(e.to_json()) for e in clean + [bad]]
    scores = queue_scores(ev, 4)
    assert scores[-1] == max(scores) and scores[-1] > scores[0]  # the queue's own statistics put it first
    # rules that read p(label) need the full probabilities
    conf = np.full((H, W), 0.99, np.float32)
    for call in (lambda: disagreement_from_prediction(true, conf, planted, VOID, PROBS_RULE),
                 lambda: annotation_evidence(true, conf, planted, VOID, 4, PROBS_RULE),
                 lambda: pair_evidence(true, conf, planted, VOID, 4, PROBS_RULE)):
        with pytest.raises(ValueError, match="full probabilities"):
            call()
    with pytest.raises(ValueError, match="low_prob"):
        ReviewRule(components=True)
    with pytest.raises(ValueError, match="objects"):
        ReviewRule(score="regions", low_prob=0.03)
    with pytest.raises(ValueError, match="class probabilities"):
        annotation_evidence_from_probs(unsure_probs(true), planted, VOID, 5)


def test_bench_evaluate_probs():
    h, w = 60, 80
    labels, probs = [], []
    for _ in range(10):
        lbl = np.zeros((h, w), dtype=np.uint8)
        lbl[:, w // 2:] = 1
        lbl[20:36, 5:20] = 2  # 240 px, labelled right
        labels.append(lbl)
        p = np.full((4, h, w), 0.005, np.float32)
        np.put_along_axis(p, lbl[None].astype(np.intp), 0.985, axis=0)
        p[:, lbl == 2] = np.array([0.015, 0.015, 0.6, 0.37], np.float32)[:, None]  # unsure car
        probs.append(p.astype(np.float16))
    planted = labels[4].copy()
    planted[20:36, 5:20] = 3  # relabelled: the model gives 3 0.37, not < 0.03 ...
    plantings = [(0, {4: (planted, {"mode": "relabel", "from": 2, "to": 3, "area": 240})})]
    from models.review import PROBS_RULE

    rule = ReviewRule(min_region=0, min_share=0, low_prob=0.03, components=True)
    _, mean = bench.evaluate_probs(labels, probs, VOID, plantings, rule, 0.2, None, "queue", 4)
    assert mean["auc"] == 0.5  # ... so nothing is seen anywhere
    planted[20:36, 5:20] = 1  # relabelled 1: p = 0.015
    per_seed, mean = bench.evaluate_probs(labels, probs, VOID, plantings, rule, 0.2, None, "queue", 4)
    assert mean["recall_at_head"] == 1.0 and per_seed[0]["planted_images"][0]["rank"] == 1
    assert PROBS_RULE.needs_probs and not STATS_RULE.needs_probs


def test_swapped_classes_needs_both_ways_in_most_images():
    from models.review import label_confusion, swapped_classes
    k = 3
    lab = np.zeros((20, 30), np.uint8)
    lab[10:] = 1
    lab[:, :5] = 2
    swap = np.array([1, 0, 2], np.uint8)[lab]                  # 0 and 1 exchanged, 2 right
    per = [label_confusion(lab, swap, k, 255, min_pixels=20) for _ in range(4)]
    conf, mostly = sum(c for c, _ in per), sum(m for _, m in per)
    assert conf[0, 1] == 4 * int((lab == 0).sum()) and mostly[0, 1] == 4 and mostly[2, 2] == 4
    assert swapped_classes(conf, mostly) == [(0, 1)]
    # one way only (a class the model does not recognise): not a swap
    one_way = np.where(lab == 0, 1, lab).astype(np.uint8)
    per = [label_confusion(lab, one_way, k, 255, min_pixels=20) for _ in range(4)]
    assert swapped_classes(sum(c for c, _ in per), sum(m for _, m in per)) == []
    # too few images to say
    c, m = label_confusion(lab, swap, k, 255, min_pixels=20)
    assert swapped_classes(2 * c, 2 * m) == []
    # unlabelled pixels and predictions outside the label set count for nothing
    lab2 = lab.copy()
    lab2[:2] = 255
    c2, _ = label_confusion(lab2, np.full_like(lab2, 7), k, 255)
    assert c2.sum() == 0
