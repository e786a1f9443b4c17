"""The model as a second reviewer: how much does it confidently disagree with an annotation?

A submitted annotation (a class map) is compared with the model's prediction. The
default score, ``"objects"``, looks at the model's *objects*: 8-connected regions of
labelled pixels that it predicts as one class (argmax). For each object it finds the
class the annotation gives most of its pixels among the other classes (``top``), and
counts ``x``: the pixels labelled ``top`` where the model's probability of its own
class is above ``threshold`` (0.8). An object is *kept* when it has at least
``min_region`` (150) px and ``x`` is at least ``min_share`` (0.3) of it; its evidence
is ``x * share`` (= x^2 / area). The score is the largest evidence, as a share of the
labelled (non-void) pixels. A planted error (an object relabelled, or erased into the
class around it) is an object the model sees whole while the annotation calls it
something else (share ~1), whereas the model's usual disagreement with a fine
annotation is a part of a bigger object (a building seen through a railing, predicted
fence). Void pixels never count.

*Pair statistics* (optional, ``pair_stats=``): the (K, K) evidence per pair (labelled
class, predicted class) summed over annotations that were fine, e.g. the project's
accepted ones (:func:`pair_evidence` per annotation). Each object's evidence is then
multiplied by :func:`pair_weights`: -log of the pair's smoothed frequency among that
disagreement, scaled to (0, 1], so a confusion the project sees all the time counts
little and one never seen counts fully. With statistics, ``STATS_RULE`` (min_share 0)
ranked best on train.

*The probability of the labelled class* (third round; full probabilities only):
:data:`PROBS_RULE` also counts, in each model object, the pixels labelled ``top`` whose
label the model gives less than ``low_prob`` (0.03), sure of its own class or not, and
(``components``) scores the annotation's own 8-connected one-class regions by their
pixels with p(label) < ``low_prob``, in the same way (evidence y^2 / area, pair (label,
the class the model predicts most there)). A region relabelled to a wrong class gets
almost no probability for its label even where the model hesitates between two others.
:func:`annotation_evidence_from_probs` builds the :class:`Evidence` that
:func:`queue_scores` ranks. It is meant for use *with* queue statistics: alone, it counts
the clean images' usual confusions too.

The earlier *pixel* scores stay (``score="regions"``, ``"largest"``, ``"share"``;
:data:`REGIONS_RULE` is the earlier default): a labelled pixel disagrees when the model
gives another class a probability above ``threshold``; pixels within
``boundary_band`` px of an annotation boundary are dropped, the rest grouped into
8-connected regions, regions under ``min_region`` px dropped, and the score is their
area (``"largest"``: of the largest) as a share of the labelled pixels.

The returned mask holds the pixels that were counted (``"objects"``: the sure,
disagreeing pixels of every kept object): what to show a reviewer.
``boundary_band`` and ``min_region`` are given for a 480x360 image and scale with the
image: the band with its side, the region area with its area.

The rules were chosen on CamVid *train* (5 seeds of planted errors) and reported on
val: BENCHMARKS.md, "The model as a second reviewer (issue 11)". On val the shipped
model puts 47% of the planted errors in the first 20% of the queue with the default
(the earlier pixel rule: 45%), 62% with pair statistics of train's clean annotations,
70% with statistics of the submitted queue itself, and 76% with :data:`PROBS_RULE` and
the queue's statistics (random order: 20%; target 80%, not met).
A fourth round (issue 20) chose on train only, with the model's input at half size as a
proxy for unseen images and one queue per drive (``benchmarks/tune_second_reviewer_fourth.py``):
no component rule or other queue weighting beat :data:`PROBS_RULE` with :func:`queue_scores`,
which stays the app's order (val 0.76 again; 0.67 with the weaker model). Erased objects are
missed where the model does not predict them: no ranking of its output finds those.

The app calls :func:`review_score` (model + rule) or, with a ``Prediction`` it already
has, :func:`disagreement_from_prediction` (the same result for ``"objects"``, and for
the pixel scores with threshold >= 0.5; not for rules with ``low_prob``, which need the
full probabilities).

No storage or app imports: numpy, scipy.ndimage and (for :func:`review_score`) torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

REFERENCE_PIXELS = 480 * 360  # the image size the rule's pixel parameters are given for
SCORES = ("objects", "largest", "regions", "share")
EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ReviewRule:
    """Parameters of the disagreement score (defaults: chosen on CamVid train).

    ``score="objects"`` (the default) uses ``threshold``, ``min_region`` (the smallest
    predicted object, px) and ``min_share``; the pixel scores ``"regions"``,
    ``"largest"`` and ``"share"`` use ``threshold``, ``boundary_band`` and ``min_region``
    (the smallest disagreeing region, px). The earlier default, the pixel rule chosen
    first, is :data:`REGIONS_RULE`.
    """

    threshold: float = 0.8  # model probability of another class above this = confident disagreement
    boundary_band: int = 2  # px (at 480x360) either side of annotation boundaries not counted (pixel scores)
    min_region: int = 150  # px (at 480x360): smaller objects ("objects") / disagreeing regions are dropped
    score: str = "objects"  # "objects" | "regions" | "largest" | "share": see the module doc
    min_share: float = 0.3  # "objects": an object counts when at least this share of it disagrees
    # "objects" from full probabilities only (0 / False = off): a labelled pixel also disagrees where the
    # model's probability of its *label* is below low_prob; components: the annotation's own 8-connected
    # one-class regions give evidence too (their pixels with p(label) < low_prob). See PROBS_RULE.
    low_prob: float = 0.0
    components: bool = False

    def __post_init__(self):
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.boundary_band < 0 or self.min_region < 0:
            raise ValueError("boundary_band and min_region must be >= 0")
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"min_share must be in [0, 1], got {self.min_share}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if not 0.0 <= self.low_prob < 1.0:
            raise ValueError(f"low_prob must be in [0, 1), got {self.low_prob}")
        if (self.low_prob > 0 or self.components) and self.score != "objects":
            raise ValueError('low_prob and components apply to the "objects" score')
        if self.components and self.low_prob <= 0:
            raise ValueError("components need low_prob > 0")

    @property
    def needs_probs(self) -> bool:
        """True when the rule reads the probability of the labelled class (full probabilities)."""
        return self.low_prob > 0

    def scaled(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(band px, min region px) for an image of ``shape`` (H, W)."""
        s = math.sqrt(shape[0] * shape[1] / REFERENCE_PIXELS)
        return int(round(self.boundary_band * s)), int(round(self.min_region * s * s))


DEFAULT_RULE = ReviewRule()
# the first default (pixel regions; chosen on train before the objects score existed)
REGIONS_RULE = ReviewRule(threshold=0.95, boundary_band=2, min_region=50, score="regions")
# with pair statistics (pair_stats=...), counting every disagreeing object ranked best on train
STATS_RULE = ReviewRule(min_share=0.0)
# third round (full probabilities): STATS_RULE, plus pixels whose label the model gives < 3%, plus the
# annotation's own regions; with queue statistics it ranked best on train (0.908 vs 0.854), val 0.76 vs 0.70
PROBS_RULE = ReviewRule(min_share=0.0, low_prob=0.03, components=True)


def _check_map(class_map: np.ndarray, shape: tuple[int, int], num_classes: int | None, ignore_index: int) -> np.ndarray:
    m = np.asarray(class_map)
    if m.shape != tuple(shape):
        raise ValueError(f"class map is {m.shape} but the model's output is {tuple(shape)}: sizes must match")
    if m.dtype.kind not in "iub":
        raise ValueError(f"class map must hold integer class indices, got {m.dtype}")
    if num_classes is None:
        return m
    bad = (m != ignore_index) & ((m < 0) | (m >= num_classes))
    if bad.any():
        raise ValueError(
            f"class map has indices outside 0..{num_classes - 1} (ignore index {ignore_index}): "
            f"{sorted(set(np.unique(m[bad]).tolist()))[:5]}"
        )
    return m


def boundary_band(class_map: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` px (chessboard distance) of a pixel of another value (void included)."""
    m = np.asarray(class_map)
    if width <= 0:
        return np.zeros(m.shape, dtype=bool)
    size = 2 * width + 1
    return ndimage.maximum_filter(m, size=size, mode="nearest") != ndimage.minimum_filter(m, size=size, mode="nearest")


def disagreement_regions(
    disagree: np.ndarray, class_map: np.ndarray, ignore_index: int, band: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Steps 1-2 of the rule without the size cut: ``(regions, areas, labelled)``.

    ``regions`` (H, W) int labels the 8-connected regions of labelled, disagreeing pixels
    outside the ``band`` px boundary band (0 = none), ``areas[r]`` is the area of region
    ``r`` (``areas[0]`` = 0) and ``labelled`` the number of non-void pixels.
    """
    m = np.asarray(class_map)
    d = np.asarray(disagree)
    if d.shape != m.shape:
        raise ValueError(f"disagreement mask is {d.shape} but the class map is {m.shape}: sizes must match")
    labelled = m != ignore_index
    kept = d.astype(bool) & labelled
    if band > 0:
        kept &= ~boundary_band(m, band)
    regions, count = ndimage.label(kept, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(regions.ravel(), minlength=count + 1)
    areas[0] = 0
    return regions, areas, int(labelled.sum())


def score_disagreement(
    disagree: np.ndarray, class_map: np.ndarray, ignore_index: int, rule: ReviewRule = DEFAULT_RULE
) -> tuple[float, np.ndarray]:
    """Raw per-pixel confident disagreement (H, W) bool -> (score, mask of the counted pixels).

    Pixel scores only (``"regions"``, ``"largest"``, ``"share"``): the ``"objects"`` score
    needs the model's prediction, see :func:`disagreement_from_prediction`."""
    m = np.asarray(class_map)
    if rule.score == "objects":
        raise ValueError('the "objects" score needs the prediction: use disagreement_from_prediction')
    if rule.score == "share":
        d = np.asarray(disagree)
        if d.shape != m.shape:
            raise ValueError(f"disagreement mask is {d.shape} but the class map is {m.shape}: sizes must match")
        labelled = m != ignore_index
        n = int(labelled.sum())
        mask = d.astype(bool) & labelled
        return (float(mask.sum()) / n if n else 0.0), mask
    band, min_region = rule.scaled(m.shape)
    regions, areas, n = disagreement_regions(disagree, m, ignore_index, band)
    big = areas >= max(min_region, 1)
    big[0] = False
    mask = big[regions]
    if n == 0 or not big.any():
        return 0.0, mask
    area = int(areas.max()) if rule.score == "largest" else int(areas[big].sum())
    return area / n, mask


def _regions_by_value(values: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected regions of one value within ``where``: ``(regions, value)``, the
    (H, W) int map of region numbers (0 = outside ``where``) and each region's value
    (row 0 = -1), numbered value by value."""
    regions = np.zeros(values.shape, dtype=np.int64)
    value = [-1]
    for c in np.unique(values[where]):
        r, cnt = ndimage.label((values == c) & where, structure=EIGHT)
        if cnt:
            inside = r > 0
            regions[inside] = r[inside] + len(value) - 1
            value += [int(c)] * cnt
    return regions, np.array(value)


def predicted_objects(
    predicted: np.ndarray, confidence: np.ndarray, class_map: np.ndarray, ignore_index: int, threshold: float,
    num_classes: int, *, label_prob: np.ndarray | None = None, low_prob: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's objects and how much of each the annotation calls something else.

    An *object* is an 8-connected region of labelled (non-void) pixels that the model
    predicts (argmax) as one class. For each object ``o`` (1..n; row 0 = no object)
    the table holds ``area``, its predicted class ``cls``, ``top``: the class the
    annotation gives most of its pixels among the classes other than ``cls`` (-1: none),
    and ``agree_top``: its pixels labelled ``top`` where the model's probability of
    ``cls`` is above ``threshold`` (with ``label_prob``, the (H, W) model probability of
    each pixel's labelled class: or where that is below ``low_prob``). Returns
    ``(objects, table)``: the (H, W) int map of object numbers (0 = void) and the table
    (numpy arrays of n + 1 rows).
    """
    pred = np.asarray(predicted)
    conf = np.asarray(confidence)
    m = np.asarray(class_map)
    labelled = m != ignore_index
    objects, cls = _regions_by_value(pred, labelled)
    n, K = len(cls), int(num_classes)
    lab = np.where(labelled, m, 0).astype(np.int64)
    hist = np.bincount((objects * K + lab)[labelled], minlength=n * K).reshape(n, K)
    sure = labelled & (conf > threshold)
    if label_prob is not None and low_prob > 0:
        sure |= labelled & (np.asarray(label_prob) < low_prob)
    hist_sure = np.bincount((objects * K + lab)[sure], minlength=n * K).reshape(n, K)
    area = hist.sum(axis=1)
    other = hist.copy()
    other[np.arange(1, n), cls[1:]] = 0  # the object's own class is agreement
    top = np.where(other.max(axis=1) > 0, other.argmax(axis=1), -1)
    top[0] = -1
    agree_top = np.where(top >= 0, hist_sure[np.arange(n), np.maximum(top, 0)], 0)
    return objects, {"area": area, "cls": cls, "top": top, "agree_top": agree_top}


def object_evidence(table: dict[str, np.ndarray], min_area: int, min_share: float) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, evidence)`` per object of :func:`predicted_objects`' table: an object is
    kept when it has at least ``min_area`` px and the annotation calls at least
    ``min_share`` of it (and at least one pixel) ``top`` where the model is sure; its
    evidence is ``agree_top * share`` (= agree_top**2 / area) px, so a small object that
    disagrees whole weighs as much as a part of a large one that is four times bigger."""
    area = table["area"]
    x = table["agree_top"].astype(float)
    share = x / np.maximum(area, 1)
    kept = (area >= max(min_area, 1)) & (x > 0) & (share >= min_share) & (table["top"] >= 0)
    kept[0] = False
    return kept, np.where(kept, x * share, 0.0)


def pair_weights(pair_stats, alpha: float = 1.0) -> np.ndarray:
    """(K, K) weights in (0, 1] from pair statistics (see :func:`pair_evidence`):
    ``-log`` of the frequency of the pair (labelled class, predicted class) among the
    disagreement of accepted annotations (add-``alpha`` smoothed), divided by its largest
    possible value. A pair never seen weighs 1; the common confusions of the project
    (in CamVid: building labelled, fence, pavement or tree predicted) weigh little."""
    s = np.asarray(pair_stats, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"pair statistics must be a (K, K) array of evidence >= 0, got shape {s.shape}")
    total = s.sum() + alpha * s.size
    return np.log(total / (s + alpha)) / np.log(total / alpha)


def _objects_score(pred, conf, m, ignore_index, rule, pair_stats, num_classes):
    labelled = m != ignore_index
    n = int(labelled.sum())
    K = num_classes
    if pair_stats is not None:
        K = np.asarray(pair_stats).shape[0]
    if K is None:
        K = int(max(pred.max(initial=0), m[labelled].max(initial=0))) + 1
    if n and (int(pred[labelled].max()) >= K or int(m[labelled].max()) >= K):
        raise ValueError(f"class indices beyond the {K} classes of the pair statistics")
    _, min_area = rule.scaled(m.shape)
    objects, table = predicted_objects(pred, conf, m, ignore_index, rule.threshold, K)
    kept, evidence = object_evidence(table, min_area, rule.min_share)
    if pair_stats is not None:
        w = pair_weights(pair_stats)
        evidence = evidence * w[np.maximum(table["top"], 0), np.maximum(table["cls"], 0)]
    # the mask: the sure, disagreeing pixels of the kept objects (labelled as their top class)
    mask = kept[objects] & (m == table["top"][objects]) & (conf > rule.threshold) & labelled
    if n == 0 or not kept.any():
        return 0.0, mask
    return float(evidence.max()) / n, mask


def pair_evidence(
    predicted: np.ndarray, confidence: np.ndarray, class_map: np.ndarray, ignore_index: int, num_classes: int,
    rule: ReviewRule = DEFAULT_RULE,
) -> np.ndarray:
    """(K, K) evidence (px, unweighted) of one annotation's kept objects per pair
    (labelled class, predicted class). Summed over a project's *accepted* annotations it
    is the ``pair_stats`` argument of the scores: how the model usually disagrees with
    annotations that were fine."""
    _no_probs_rule(rule)
    pred, conf = np.asarray(predicted), np.asarray(confidence)
    m = _check_map(class_map, pred.shape, num_classes, ignore_index)
    _, min_area = rule.scaled(m.shape)
    _, table = predicted_objects(pred, conf, m, ignore_index, rule.threshold, num_classes)
    kept, evidence = object_evidence(table, min_area, rule.min_share)
    out = np.zeros((num_classes, num_classes))
    np.add.at(out, (table["top"][kept], table["cls"][kept]), evidence[kept])
    return out


def _no_probs_rule(rule: ReviewRule) -> None:
    if rule.needs_probs:
        raise ValueError("this rule reads the probability of the labelled class: pass full probabilities "
                         "(confident_disagreement, annotation_evidence_from_probs)")


def _no_stats_unless_objects(rule: ReviewRule, pair_stats) -> None:
    if pair_stats is not None and rule.score != "objects":
        raise ValueError(f'pair statistics apply to the "objects" score, not {rule.score!r}')


def confident_disagreement(
    probs, class_map: np.ndarray, ignore_index: int, rule: ReviewRule = DEFAULT_RULE, *, pair_stats=None,
) -> tuple[float, np.ndarray]:
    """How much the model confidently disagrees with an annotation.

    ``probs``: (K, H, W) per-pixel class probabilities (softmax of
    :meth:`models.inference.Predictor.logits`, numpy or torch); ``class_map``: (H, W)
    class indices 0..K-1, ``ignore_index`` = void (never counted). ``pair_stats``:
    optional (K, K) statistics of the project's accepted annotations
    (:func:`pair_evidence` summed), ``"objects"`` score only; None = no statistics.
    Returns ``(score, mask)``: the score in [0, 1] (0 = no confident disagreement; see
    the module doc for the rules) and the (H, W) bool mask of the disagreeing pixels
    that were counted.
    """
    _no_stats_unless_objects(rule, pair_stats)
    p = probs.detach().cpu().numpy() if hasattr(probs, "detach") else np.asarray(probs)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError(f"probs must be (K, H, W) class probabilities, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs hold NaN or infinite values")
    m = _check_map(class_map, p.shape[1:], p.shape[0], ignore_index)
    if pair_stats is not None and np.asarray(pair_stats).shape != (p.shape[0], p.shape[0]):
        raise ValueError(f"pair statistics are {np.asarray(pair_stats).shape} for {p.shape[0]} classes")
    if rule.score == "objects" and rule.needs_probs:
        ev, mask = _probs_evidence(p, m, ignore_index, p.shape[0], rule)
        return ev.score(pair_stats), mask
    if rule.score == "objects":
        return _objects_score(p.argmax(axis=0), p.max(axis=0), m, ignore_index, rule, pair_stats, p.shape[0])
    labelled = m != ignore_index
    idx = np.where(labelled, m, 0).astype(np.intp)
    others = p.copy()
    np.put_along_axis(others, idx[None], -1.0, axis=0)  # the labelled class does not count
    disagree = (others.max(axis=0) > rule.threshold) & labelled
    return score_disagreement(disagree, m, ignore_index, rule)


def disagreement_from_prediction(
    predicted: np.ndarray, confidence: np.ndarray, class_map: np.ndarray, ignore_index: int,
    rule: ReviewRule = DEFAULT_RULE, *, pair_stats=None,
) -> tuple[float, np.ndarray]:
    """The same score from an argmax map and its max probability (a ``Prediction``'s
    ``class_map`` and ``confidence``): exact for the ``"objects"`` score, and for the
    pixel scores with ``threshold >= 0.5``, where only the top class can pass the
    threshold. ``pair_stats`` as in :func:`confident_disagreement`."""
    _no_stats_unless_objects(rule, pair_stats)
    _no_probs_rule(rule)
    if rule.threshold < 0.5 and rule.score != "objects":
        raise ValueError("the argmax/confidence form needs threshold >= 0.5; pass full probabilities instead")
    pred = np.asarray(predicted)
    conf = np.asarray(confidence)
    if pred.ndim != 2 or conf.shape != pred.shape:
        raise ValueError(f"predicted {pred.shape} and confidence {conf.shape} must be the same (H, W)")
    m = _check_map(class_map, pred.shape, None, ignore_index)
    if rule.score == "objects":
        return _objects_score(pred, conf, m, ignore_index, rule, pair_stats, None)
    disagree = (pred != m) & (conf > rule.threshold) & (m != ignore_index)
    return score_disagreement(disagree, m, ignore_index, rule)


def review_score(
    predictor, image: np.ndarray, class_map: np.ndarray, class_names: list[str], ignore_index: int,
    rule: ReviewRule = DEFAULT_RULE, *, pair_stats=None,
) -> tuple[float, np.ndarray]:
    """Run ``predictor`` (a :class:`models.inference.Predictor`) on ``image`` (H, W, 3)
    with the label set ``class_names`` and score ``class_map`` ((H, W) indices into
    ``class_names``, ``ignore_index`` = void) against it: ``(score, mask)``.

    Order the review queue by ``score``, highest first; scores from different
    ``pair_stats`` do not compare. ``pair_stats`` (optional, keyword): the (K, K) sum of
    :func:`pair_evidence` over the project's accepted annotations, in the order of
    ``class_names``; None (the default) = no statistics. ``mask`` is the (H, W) bool map
    of the disagreeing pixels to show the reviewer. Raises ``ValueError`` when the map
    does not fit the image or label set.
    """
    probs = predictor.logits(image, class_names).softmax(0)
    return confident_disagreement(probs, class_map, ignore_index, rule, pair_stats=pair_stats)


# --------------------------------------------------------------------------- a queue's scores

@dataclass(frozen=True, eq=False)
class Evidence:
    """What the objects score needs of one annotation, so that a review queue can be
    scored again when its pair statistics change, without running the model again:
    the labelled pixel count and, per kept object, its ``top`` (labelled) class, its
    predicted class ``cls`` and its evidence (px). Plain lists in :meth:`to_json`."""
    labelled: int
    top: np.ndarray
    cls: np.ndarray
    evidence: np.ndarray

    def pairs(self, num_classes: int) -> np.ndarray:
        """(K, K) evidence per (labelled class, predicted class): :func:`pair_evidence`."""
        out = np.zeros((num_classes, num_classes))
        np.add.at(out, (self.top, self.cls), self.evidence)
        return out

    def score(self, pair_stats=None) -> float:
        """The objects score of the annotation (as :func:`disagreement_from_prediction`
        with the rule it was made with), weighted by ``pair_stats`` when given."""
        if self.labelled == 0 or self.evidence.size == 0:
            return 0.0
        e = self.evidence
        if pair_stats is not None:
            e = e * pair_weights(pair_stats)[self.top, self.cls]
        return float(e.max()) / self.labelled

    def to_json(self) -> dict:
        return {"labelled": int(self.labelled), "top": self.top.tolist(), "cls": self.cls.tolist(),
                "evidence": [round(float(v), 3) for v in self.evidence]}

    @classmethod
    def from_json(cls, d: dict) -> "Evidence":
        try:
            top, pcls, ev = (np.asarray(d[k]) for k in ("top", "cls", "evidence"))
            labelled = int(d["labelled"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an Evidence record: {e}") from None
        if not (top.shape == pcls.shape == ev.shape) or top.ndim != 1:
            raise ValueError("an Evidence record needs top, cls and evidence lists of one length")
        return cls(labelled, top.astype(np.intp), pcls.astype(np.intp), ev.astype(float))


def annotation_evidence(
    predicted: np.ndarray, confidence: np.ndarray, class_map: np.ndarray, ignore_index: int, num_classes: int,
    rule: ReviewRule = STATS_RULE,
) -> Evidence:
    """The :class:`Evidence` of one annotation under an ``"objects"`` rule (default
    :data:`STATS_RULE`, the one that ranked best with statistics)."""
    if rule.score != "objects":
        raise ValueError(f'evidence is kept for the "objects" score, not {rule.score!r}')
    _no_probs_rule(rule)
    pred, conf = np.asarray(predicted), np.asarray(confidence)
    m = _check_map(class_map, pred.shape, num_classes, ignore_index)
    if conf.shape != pred.shape:
        raise ValueError(f"confidence is {conf.shape} but the prediction is {pred.shape}")
    _, min_area = rule.scaled(m.shape)
    _, table = predicted_objects(pred, conf, m, ignore_index, rule.threshold, num_classes)
    kept, evidence = object_evidence(table, min_area, rule.min_share)
    return Evidence(int((m != ignore_index).sum()), table["top"][kept].astype(np.intp),
                    table["cls"][kept].astype(np.intp), evidence[kept].astype(float))


def label_probability(probs: np.ndarray, class_map: np.ndarray, ignore_index: int) -> np.ndarray:
    """(H, W) float32: the model's probability of each pixel's labelled class (1 on void)."""
    m = np.asarray(class_map)
    labelled = m != ignore_index
    idx = np.where(labelled, m, 0).astype(np.intp)
    pl = np.take_along_axis(np.asarray(probs), idx[None], axis=0)[0].astype(np.float32)
    return np.where(labelled, pl, np.float32(1.0))


def annotation_components(
    class_map: np.ndarray, ignore_index: int, label_prob: np.ndarray, low_prob: float, predicted: np.ndarray,
    num_classes: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The annotation's own regions (8-connected, one labelled class, void excluded) and
    how much of each the model rules out. Returns ``(components, table)`` like
    :func:`predicted_objects`: per component (row 0 = none) its ``area``, ``top``: its
    labelled class, ``agree_top``: its pixels where the model's probability of that
    class is below ``low_prob``, and ``cls``: the class the model predicts most on those
    pixels (its own label when there are none)."""
    m = np.asarray(class_map)
    labelled = m != ignore_index
    comp, lab = _regions_by_value(m, labelled)
    n, K = len(lab), int(num_classes)
    area = np.bincount(comp[labelled], minlength=n)
    area[0] = 0
    low = labelled & (np.asarray(label_prob) < low_prob)
    x = np.bincount(comp[low], minlength=n)
    x[0] = 0
    hist = np.bincount((comp * K + np.asarray(predicted).astype(np.int64))[low], minlength=n * K).reshape(n, K)
    cls = np.where(x > 0, hist.argmax(axis=1), np.maximum(lab, 0))
    return comp, {"area": area, "top": lab, "agree_top": x, "cls": cls}


def _probs_evidence(p: np.ndarray, m: np.ndarray, ignore_index: int, num_classes: int, rule: ReviewRule):
    """(Evidence, mask) of the objects score from full probabilities (``rule.low_prob``, ``rule.components``)."""
    pred, conf = p.argmax(axis=0), p.max(axis=0)
    labelled = m != ignore_index
    pl = label_probability(p, m, ignore_index)
    _, min_area = rule.scaled(m.shape)
    objects, table = predicted_objects(pred, conf, m, ignore_index, rule.threshold, num_classes,
                                       label_prob=pl, low_prob=rule.low_prob)
    kept, evidence = object_evidence(table, min_area, rule.min_share)
    disagree = labelled & ((conf > rule.threshold) | (pl < rule.low_prob))
    mask = kept[objects] & (m == table["top"][objects]) & disagree
    tops, clss, evs = [table["top"][kept]], [table["cls"][kept]], [evidence[kept]]
    if rule.components:
        comps, ctab = annotation_components(m, ignore_index, pl, rule.low_prob, pred, num_classes)
        ckept, cev = object_evidence(ctab, min_area, rule.min_share)
        mask |= ckept[comps] & labelled & (pl < rule.low_prob)
        tops.append(ctab["top"][ckept])
        clss.append(ctab["cls"][ckept])
        evs.append(cev[ckept])
    ev = Evidence(int(labelled.sum()), np.concatenate(tops).astype(np.intp), np.concatenate(clss).astype(np.intp),
                  np.concatenate(evs).astype(float))
    return ev, mask


def annotation_evidence_from_probs(
    probs, class_map: np.ndarray, ignore_index: int, num_classes: int, rule: ReviewRule = PROBS_RULE,
) -> Evidence:
    """The :class:`Evidence` of one annotation from the model's full (K, H, W) class
    probabilities (numpy or torch, e.g. ``Predictor.logits(...).softmax(0)``), under an
    ``"objects"`` rule that may read the probability of the labelled class (default
    :data:`PROBS_RULE`). Its kept entries are the model's objects, as in
    :func:`annotation_evidence` but counting also the pixels whose label the model gives
    less than ``rule.low_prob``, and (``rule.components``) the annotation's own regions
    with such pixels: ``top`` = the region's label, ``cls`` = what the model predicts
    there most, evidence = (pixels ruled out)^2 / area. :func:`queue_scores` and
    :meth:`Evidence.score` use it unchanged. With a rule without ``low_prob``
    (e.g. :data:`STATS_RULE`) it equals :func:`annotation_evidence` on the argmax and its
    probability. On CamVid val with queue statistics :data:`PROBS_RULE` put 76% of the
    planted errors in the first 20% of the queue (:data:`STATS_RULE`: 70%)."""
    if rule.score != "objects":
        raise ValueError(f'evidence is kept for the "objects" score, not {rule.score!r}')
    p = probs.detach().cpu().float().numpy() if hasattr(probs, "detach") else np.asarray(probs)
    if p.ndim != 3 or p.shape[0] != int(num_classes):
        raise ValueError(f"probs must be ({num_classes}, H, W) class probabilities, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs hold NaN or infinite values")
    m = _check_map(class_map, p.shape[1:], num_classes, ignore_index)
    return _probs_evidence(p, m, ignore_index, int(num_classes), rule)[0]


def queue_scores(evidence: list[Evidence], num_classes: int) -> list[float]:
    """Each annotation's score with the pair statistics of the *others* in the queue
    (leave-one-out): the project's usual confusions count little. With fewer than two
    annotations there are no statistics, and the plain objects score is used. On
    CamVid val this order put 70% of planted errors in the first 20% of the queue
    (BENCHMARKS.md, "queue statistics")."""
    if len(evidence) < 2:
        return [e.score() for e in evidence]
    per = [e.pairs(num_classes) for e in evidence]
    total = np.sum(per, axis=0)
    return [e.score(total - p) for e, p in zip(evidence, per)]


def label_confusion(class_map: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_index: int,
                    min_pixels: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """One image's (confusion, mostly): ``confusion[c, d]`` its pixels labelled c that the
    model predicts d; ``mostly[c, d]`` 1 when c covers at least ``min_pixels`` and most of
    them are predicted d. Summed over images for :func:`swapped_classes`."""
    m = (class_map != ignore_index) & (class_map < num_classes) & (prediction < num_classes)
    conf = np.bincount(class_map[m].astype(np.int64) * num_classes + prediction[m],
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    mostly = np.zeros_like(conf)
    big = conf.sum(1) >= min_pixels
    mostly[np.flatnonzero(big), conf[big].argmax(1)] = 1
    return conf, mostly


def swapped_classes(confusion: np.ndarray, mostly: np.ndarray, share: float = 0.6, image_share: float = 0.6,
                    min_images: int = 3) -> list[tuple[int, int]]:
    """Pairs of classes (c, d), c < d, whose labels look exchanged against the model: each
    one's labelled pixels mostly predicted as the other (at least ``share`` of them, and
    in at least ``image_share`` of the ``min_images`` or more images that hold it), both
    ways. One way only is a class the model does not recognise (a new word, a new
    domain); both ways is what a label set's two names swapped in an export gives.
    ``confusion`` and ``mostly``: :func:`label_confusion` summed over images."""
    totals = confusion.sum(1)
    held = mostly.sum(1)
    out = []

    def toward(c, d):
        return (totals[c] > 0 and confusion[c, d] >= share * totals[c]
                and held[c] >= min_images and mostly[c, d] >= image_share * held[c])
    for c in range(len(confusion)):
        for d in range(c + 1, len(confusion)):
            if toward(c, d) and toward(d, c):
                out.append((c, d))
    return out
