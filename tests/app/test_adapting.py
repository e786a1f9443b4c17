"""Instant adaptation in the app (segui.adapting, issue 20 part 1): a submit tunes the
adapter in the background and the queue's stored predictions follow it."""
import threading

import numpy as np
import pytest
import torch

from segui.canvas import payload
from segui.handlers import DEMO_PROJECT, Studio
from storage import Store

from .conftest import _PREDICTORS, bare_demo_dir

ROAD, PAVEMENT, VOID = 3, 4, 11      # demo classes.json indices


def instant_studio(tmp_path, instant=True, fresh=True) -> Studio:
    st = Studio(Store(data_dir=tmp_path / "data"), predictors=_PREDICTORS, instant=instant)
    if fresh:
        st.ensure_demo(bare_demo_dir(tmp_path / "demo"))
    return st


def predictions(st: Studio) -> dict[int, np.ndarray]:
    mv = st.model_version(DEMO_PROJECT)
    return {im.id: st.store.get_prediction(im.id, mv.id).class_map
            for im in st.store.list_images(DEMO_PROJECT, status="unlabelled")}


def submit_road_as_pavement(st: Studio, image_id: int) -> None:
    """The labeller says the model's road is pavement (a class the model gets 'wrong'),
    and marks the top rows void."""
    loaded = st.prepare(image_id).loaded
    cm = loaded.class_map.copy()
    assert (cm == ROAD).sum() > 1000
    cm[cm == ROAD] = PAVEMENT
    cm[:10] = VOID
    st.save_edits(loaded, cm, "ann", "submitted")


@pytest.fixture
def on(tmp_path):
    st = instant_studio(tmp_path)
    yield st
    st.wait_idle()
    st.store.close()


def test_a_submit_moves_the_other_images_predictions_toward_it(on):
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    before = predictions(st)
    assert (before[other] == ROAD).sum() > 1000
    stale = st.prepare(other)                       # prepared ahead, with the model's own prediction
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    session = st.instant_session(DEMO_PROJECT)
    assert session is not None and list(session.examples) == [first]
    ex = session.examples[first]
    assert int(ex.labels.max()) < len(st.store.get_project(DEMO_PROJECT).classes)   # void left out
    assert not torch.allclose(session.adapter.class_vectors, session.base.class_vectors)
    after = predictions(st)
    assert first not in after and set(after) == set(before) - {first}
    for iid in after:                               # every unlabelled image was predicted again
        assert (after[iid] == ROAD).sum() < 0.2 * (before[iid] == ROAD).sum()
        assert (after[iid] == PAVEMENT).sum() > (before[iid] == PAVEMENT).sum()
    again = st.prepare(other)                       # the prepared-ahead image is not served stale
    assert not np.array_equal(again.prediction, stale.prediction)
    assert np.array_equal(again.prediction, after[other])
    assert np.array_equal(again.loaded.class_map, after[other])
    # the page says the map shown is the instant layer's ("adapted to 1 correction")
    from segui.canvas import payload
    assert st.adapted_from(other) == 1 and payload.load(st, DEMO_PROJECT, again)["image"]["adapted"] == 1
    assert payload.load(st, DEMO_PROJECT, st.prepare(first))["image"]["adapted"] == 0   # its annotation is shown
    status = st.instant_status(DEMO_PROJECT)
    assert status["images"] == 1 and status["seconds"] > 0 and status["latency"] >= status["seconds"]   # its speed: bench_instant


def test_the_image_opened_right_after_a_submit_is_predicted_with_it(on):
    """Submit & next: the next image is not shown with a prediction made before the submit,
    even when the background pass has not reached it yet."""
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    assert st.wait_idle(60)
    stale = st.prepare(other)                       # prepared ahead, before the submit
    assert not st._instant_stale(st.store.get_image(other).project_id, other)
    hold = threading.Event()
    st._submit(hold.wait, 30)                       # the worker is busy: nothing after it runs yet
    try:
        submit_road_as_pavement(st, first)
        assert not st.instant_wait(first, timeout=0.2)   # queued behind the busy worker
    finally:
        hold.set()
    assert st.instant_wait(first, timeout=60)       # learnt (the re-predict pass may still be queued)
    pid, vid = st.store.get_image(other).project_id, st.model_version(DEMO_PROJECT).id
    assert st._instant_stale(pid, other, vid) or st.adapted_from(other) == 1
    assert not st._instant_stale(pid, other, vid + 1000)   # a session of another version: not its business
    opened = st.prepare(other)
    assert st.adapted_from(other) == 1
    assert (opened.prediction == ROAD).sum() < 0.2 * (stale.prediction == ROAD).sum()
    assert np.array_equal(opened.loaded.class_map, opened.prediction)
    # the source names the fit, so a page showing the one prepared ahead takes this one (Nav.settle)
    assert opened.loaded.source != stale.loaded.source and "1 corrected image" in opened.loaded.source
    assert st.instant_wait(first, timeout=0)        # nothing queued: at once
    assert st.wait_idle(60)
    assert np.array_equal(st.prepare(other).prediction, opened.prediction)   # the pass did not redo it
    assert np.array_equal(predictions(st)[other], opened.prediction)


def test_c_shows_what_the_corrections_changed_with_one_model_version(on):
    """What changed (C) with one model version: nothing to compare between versions, but the
    instant layer's prediction differs from the model's own; C shows that difference and
    how many corrected images it came from."""
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.model_version(p.id)
    own = st.store.get_prediction(other, mv.id).class_map            # before any correction
    r = st.changes_since_previous(other)
    assert r["from"] is None and r["corrections"] == 0 and r["changed"] == 0
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    shown = st.prepare(other).prediction
    r = st.changes_since_previous(other, top=3)
    assert r["from"] is None and r["to"] == mv.id and r["corrections"] == 1
    assert np.array_equal(r["map"] > 0, own != shown) and r["changed"] == int((own != shown).sum()) > 1000
    assert r["pairs"][0][:2] == ["road", "pavement"]
    from segui.canvas import payload
    assert payload.changes(other, r)["corrections"] == 1
    # another version made active (the same weights): its prediction is the model's own until the
    # instant layer is rebuilt on it, and C compares the versions
    v2 = st.store.add_model_version(p.id, mv.weights_dir, name="again")
    st.instant = False                                   # (no rebuild: v2's prediction is the plain one)
    st.activate_model(DEMO_PROJECT, v2.id)
    st.instant = True
    r = st.changes_since_previous(other)
    assert (r["from"], r["to"]) == (mv.id, v2.id) and r["corrections"] == 0
    assert st.adapted_from(other, v2.id) == 0


def test_word_and_uncertainty_maps_use_the_instant_layers_class_vectors(on):
    """W and U show what made the mask on screen: after a correction that calls the road
    pavement, the road's map fades where the mask moved to pavement, and the answer says
    how many corrections its class vectors came from."""
    from models.heatmap import normalised_entropy
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    before = st.heatmap(other, "road")
    assert before["corrections"] == 0 and st.uncertainty_map(other)["corrections"] == 0
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    shown = st.prepare(other).prediction
    road = st.heatmap(other, "road")
    assert road["corrections"] == 1 and road["cached"]           # same embeddings, other vectors
    pav = st.heatmap(other, "pavement")
    moved = shown == PAVEMENT
    assert road["map"][moved].mean() < 0.5 * before["map"][moved].mean()
    assert pav["map"][moved].mean() > road["map"][moved].mean()
    # U: the entropy of the same adapted softmax
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.model_version(p.id)
    adapter = st.instant_adapter(p.id, mv.id, list(p.class_names))
    emb = st.predictors.embed(mv.weights_dir, st.store.load_image(other), list(p.class_names))
    unc = st.uncertainty_map(other)
    assert unc["corrections"] == 1
    want = normalised_entropy(adapter.logits(emb).softmax(0))
    assert abs(unc["mean"] - float(want.mean())) < 1e-3
    # another version: the layer was learnt on the old one, the maps use the words again
    assert st.instant_adapter(p.id, mv.id + 1000, list(p.class_names)) is None
    assert st.instant_adapter(p.id, mv.id, list(p.class_names)[:-1]) is None


def test_embeddings_of_images_opened_are_kept_for_the_instant_layer(monkeypatch):
    """PredictorCache.embed(keep=True) remembers an image's embeddings: asked again (its submit
    learnt, or it is predicted again after another submit) they come without a forward pass,
    as a copy the caller may change; without keep nothing is remembered."""
    import models.adapt
    from segui import predicting
    from segui.predicting import PredictorCache

    cache = PredictorCache()
    cache._predictors = _PREDICTORS._predictors          # the loaded model, not a second one
    calls = []
    real = models.adapt.embed_image
    monkeypatch.setattr(models.adapt, "embed_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    names = ["road", "sky", "car"]
    from segui.handlers import DEFAULT_MODEL_DIR
    plain = cache.embed(DEFAULT_MODEL_DIR, image, names)
    cache.embed(DEFAULT_MODEL_DIR, image, names)
    assert len(calls) == 2                                # not kept: computed each time
    first = cache.embed(DEFAULT_MODEL_DIR, image, names, keep=True)
    first.base_map = np.zeros((64, 96), np.uint8)         # a caller's change stays its own
    again = cache.embed(DEFAULT_MODEL_DIR, image, names)
    assert len(calls) == 3 and again.base_map is None
    assert torch.equal(again.pixels, first.pixels) and torch.allclose(again.pixels, plain.pixels)
    cache.embed(DEFAULT_MODEL_DIR, image, names[:2])      # other words: other embeddings
    other = image.copy()
    other[0, 0] ^= 1
    cache.embed(DEFAULT_MODEL_DIR, other, names)          # one pixel differs: another image
    assert len(calls) == 5
    for k in range(predicting.EMBED_KEEP):                # the oldest go first
        cache.embed(DEFAULT_MODEL_DIR, rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), names, keep=True)
    cache.embed(DEFAULT_MODEL_DIR, image, names)
    assert len(calls) == 6 + predicting.EMBED_KEEP and len(cache._embeddings) == predicting.EMBED_KEEP


def test_off_nothing_changes(tmp_path):
    st = instant_studio(tmp_path, instant=False)
    try:
        first = st.store.list_images(DEMO_PROJECT, order="id")[0].id
        before = predictions(st)
        submit_road_as_pavement(st, first)
        assert st.wait_idle(60)
        st.refresh_predictions(DEMO_PROJECT)
        assert st.wait_idle(60)
        after = predictions(st)
        assert after.keys() == before.keys() - {first}
        assert all(np.array_equal(after[i], before[i]) for i in after)
        assert st.instant_session(DEMO_PROJECT) is None and st.instant_status(DEMO_PROJECT) == {}
        assert all(st.adapted_from(i) == 0 for i in after)
    finally:
        st.store.close()


def test_the_update_runs_in_the_background(on):
    st = on
    first = st.store.list_images(DEMO_PROJECT, order="id")[0].id
    loaded = st.prepare(first).loaded
    cm = loaded.class_map.copy()
    cm[cm == ROAD] = PAVEMENT
    done = threading.Event()

    def submit():
        st.save_edits(loaded, cm, "ann", "submitted")
        done.set()

    with _PREDICTORS._lock:                         # no forward pass can run until the submit returned
        t = threading.Thread(target=submit, daemon=True)
        t.start()
        assert done.wait(20), "the submit waited for the model"
        session = st.instant_session(DEMO_PROJECT)
        assert session is None or not session.examples
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == [first]


def test_a_model_switch_or_a_restart_rebuilds_the_session_from_the_submissions(on, tmp_path):
    st = on
    first = st.store.list_images(DEMO_PROJECT, order="id")[0].id
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    s1 = st.instant_session(DEMO_PROJECT)
    mv2 = st.store.add_model_version(DEMO_PROJECT, str(st.default_model_dir), metrics=None, name="promoted")
    st.activate_model(DEMO_PROJECT, mv2.id)
    assert st.instant_session(DEMO_PROJECT) is None  # the old one is for the old version
    st.refresh_predictions(DEMO_PROJECT)            # what Next's prefetch does after a model change
    assert st.wait_idle(60)
    s2 = st.instant_session(DEMO_PROJECT)
    assert s2 is not None and s2 is not s1 and list(s2.examples) == [first] and s2.adapter.images == 1
    after = predictions(st)                         # the new version's predictions are adapted too
    assert all((cm == ROAD).sum() < 1000 for cm in after.values())

    # a restart: a new studio on the same data finds no session and rebuilds it lazily
    restarted = instant_studio(tmp_path, fresh=False)
    try:
        assert restarted.instant_session(DEMO_PROJECT) is None
        other = next(iter(after))
        plain = restarted.predict(DEMO_PROJECT, other, store=False)   # not built yet: the model's own
        assert (plain == ROAD).sum() > 1000
        assert restarted.wait_idle(60)
        s3 = restarted.instant_session(DEMO_PROJECT)
        assert s3 is not None and list(s3.examples) == [first]
        assert (restarted.predict(DEMO_PROJECT, other, store=False) == ROAD).sum() < 1000
    finally:
        restarted.wait_idle()
        restarted.store.close()


def test_a_promoted_version_is_ready_for_the_page_once_the_layer_is_rebuilt_on_it(on):
    """The page's heartbeat asks ``active_version``: a version just made active is not ready
    (the instant layer is rebuilt on it first, started by the question itself, with no image
    opened), then ready, and the open image opened again then is adapted on it."""
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    v1 = st.active_version(DEMO_PROJECT)
    assert v1["ready"] and v1["name"] == f"v{v1['id']}"
    mv2 = st.store.add_model_version(DEMO_PROJECT, str(st.default_model_dir), metrics=None, name="promoted",
                                     activate=True)
    got = st.active_version(DEMO_PROJECT)
    assert got["id"] == mv2.id and not got["ready"]
    assert st.wait_idle(60)
    got = st.active_version(DEMO_PROJECT)
    assert {k: got[k] for k in ("id", "name", "ready")} == {"id": mv2.id, "name": f"v{mv2.id}", "ready": True}
    ready = st.prepare(other)
    assert ready.loaded.predicted_by == mv2.id and st.adapted_from(other, mv2.id) == 1
    assert (ready.loaded.class_map == ROAD).sum() < 1000


def test_the_heartbeat_names_the_adapter_and_the_page_learns_which_one_predicted_its_image(on):
    """``active_version``'s ``fit`` is the instant layer's current adapter (None before it
    has learnt anything); ``predicted_fit`` names the one that made an image's stored
    prediction. An image opened before a submit is learnt differs (the page opens it
    again: Nav.newerFit), and opening it again predicts it with the current one."""
    st = on
    first, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:2]]
    shown = st.prepare(other)                               # open before any correction
    assert st.wait_idle(60)
    assert st.active_version(DEMO_PROJECT)["fit"] is None   # nothing learnt: nothing to reopen for
    assert (shown.loaded.class_map == ROAD).sum() > 1000
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    fit = st.active_version(DEMO_PROJECT)["fit"]
    assert isinstance(fit, int) and fit >= 1
    assert payload.load(st, DEMO_PROJECT, shown)["image"]["fit"] != fit   # what the page was given before...
    again = st.prepare(other)                               # ...opened again: the adapter's
    assert st.predicted_fit(other) == fit
    assert payload.load(st, DEMO_PROJECT, again)["image"]["fit"] == fit
    assert (again.loaded.class_map == ROAD).sum() < 1000
    annotated = payload.load(st, DEMO_PROJECT, st.prepare(first))["image"]
    assert annotated["fit"] == -1                           # an annotation: no prediction to replace


def test_the_demo_starts_adapted_to_its_labelled_images(tmp_path):
    """The demo's labelled images are stored, not submitted through the canvas: the
    instant layer learns them at start (before, it waited for a restart), and the images
    to label are predicted again with it."""
    st = instant_studio(tmp_path, fresh=False)
    try:
        st.ensure_demo()
        assert st.wait_idle(120)
        labelled = st.store.submitted_annotations(DEMO_PROJECT, split=None, source="submitted")
        assert len(labelled) == 10 and st.instant_status(DEMO_PROJECT)["images"] == 10
        queue = [im.id for im in st.store.list_images(DEMO_PROJECT, status="unlabelled")]
        assert queue and all(st.adapted_from(i) == 10 for i in queue)
    finally:
        st.store.close()


def test_annotations_imported_while_the_app_runs_are_learnt(on, tmp_path):
    """``python -m storage import`` (or a second app process) stores submitted annotations
    in the same database while the app runs: the next image opened makes the background
    look for them, and the instant layer learns them as if they had been submitted in the
    page (before, only at the app's next start)."""
    st = on
    first, second, other = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")[:3]]
    submit_road_as_pavement(st, first)                  # builds the session, in this process
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == [first]
    before = predictions(st)[other]

    outside = Store(data_dir=tmp_path / "data")         # another process: the storage CLI
    try:
        cm = st.store.get_prediction(second, st.model_version(DEMO_PROJECT).id).class_map.copy()
        cm[cm == ROAD] = PAVEMENT
        outside.save_annotation(second, cm, "import", "submitted")
    finally:
        outside.close()
    assert st.instant_session(DEMO_PROJECT).examples.keys() == {first}   # nothing looks by itself

    st.prefetch_next(DEMO_PROJECT, "unlabelled", other)  # what opening an image does
    assert st.wait_idle(60)
    session = st.instant_session(DEMO_PROJECT)
    assert set(session.examples) == {first, second} and st.instant_status(DEMO_PROJECT)["images"] == 2
    assert session.adapter.images == 2                  # fitted on both
    assert st.adapted_from(other) == 2                  # and the queue predicted again with it
    assert not np.array_equal(predictions(st)[other], before)

    # looked at most every SYNC_EVERY_S; a revision already learnt is not learnt twice
    from segui import adapting
    slot = st._slots[st.store.get_project(DEMO_PROJECT).id]
    assert st._instant_sync(slot.key[0]) == 0           # throttled
    assert st._instant_sync(slot.key[0], now=slot.checked + adapting.SYNC_EVERY_S + 1) == 0   # nothing new


def test_a_removed_submission_is_forgotten_and_learnt_again_when_put_back(on, tmp_path):
    """A submitted image taken out of the project (a wrong frame) stops teaching the
    instant layer; put back, it teaches it again."""
    st = on
    first = st.store.list_images(DEMO_PROJECT, order="id")[0].id
    submit_road_as_pavement(st, first)
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == [first]
    st.remove_image(DEMO_PROJECT, first)
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == []
    st.restore_image(DEMO_PROJECT, first)
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == [first]
    st.remove_image(DEMO_PROJECT, first)          # and uploaded again: learnt again too
    assert st.wait_idle(60) and list(st.instant_session(DEMO_PROJECT).examples) == []
    f = tmp_path / "again.jpg"
    f.write_bytes(st.store.image_bytes(first))
    assert st.upload(DEMO_PROJECT, [f]).restored == [first]
    assert st.wait_idle(60)
    assert list(st.instant_session(DEMO_PROJECT).examples) == [first]
