"""Studio's per-version views (segui/versions.py) and their Plotly figures
(segui/plots.py): per-class IoU across versions, two versions of one image, the map
of the label set."""
import numpy as np
import pytest

from models.label_map import TOO_CLOSE, cosine_similarity
from segui import plots
from segui.errors import UserError
from segui.handlers import DEMO_DIR, DEMO_PROJECT


def test_per_class_iou_across_versions_and_the_label_set_map(demo_studio):
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    v1 = st.model_version(p.id)
    h = st.iou_history(DEMO_PROJECT)
    assert h["classes"] == p.class_names and [r["id"] for r in h["versions"]] == [v1.id]
    row = h["versions"][0]
    assert row["source"] == "recorded with the version" and row["active"]
    assert dict(zip(h["classes"], row["iou"]))["road"] > 0.9 and 0.5 < row["miou"] < 1
    # a version with metrics for part of the label set, one with none (left out)
    v2 = st.store.add_model_version(p.id, v1.weights_dir, name="half",
                                    metrics={"miou": 0.5, "per_class_iou": {"sky": 0.8, "road": 0.6, "zebra": 1.0}})
    st.store.add_model_version(p.id, v1.weights_dir, name="none", metrics=None)
    h = st.iou_history(DEMO_PROJECT)
    assert [r["id"] for r in h["versions"]] == [v1.id, v2.id]
    half = dict(zip(h["classes"], h["versions"][1]["iou"]))
    assert half["sky"] == 0.8 and half["road"] == 0.6 and half["car"] is None and "zebra" not in half
    # measured here on the project's val set: that figure replaces the recorded one
    check_label_set_map(st)                      # (evaluates the active version, v1)
    ev = st.evaluate_on_val(DEMO_PROJECT, v1.id)
    row = st.iou_history(DEMO_PROJECT)["versions"][0]
    assert row["source"] == "this project's val set now" and row["miou"] == ev["miou"]
    assert row["iou"] == [None if v is None else float(v) for v in ev["iou"]]
    fig = plots.iou_history_figure(st.iou_history(DEMO_PROJECT), dict(st.class_colors(DEMO_PROJECT)))
    names = [t.name for t in fig.data]
    assert names[-1] == "mIoU" and "sky" in names and len(fig.data) == 12
    assert list(fig.data[names.index("sky")].y) == [st.iou_history(DEMO_PROJECT)["versions"][0]["iou"][0], 0.8]
    empty = plots.iou_history_figure({"classes": ["a"], "versions": []})
    assert not empty.data and "No version" in empty.layout.annotations[0].text


def test_two_versions_on_one_image(demo_studio):
    st = demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    v1 = st.model_version(p.id)
    v2 = st.store.add_model_version(p.id, v1.weights_dir, name="changed")
    images, left, right = st.compare_choices(DEMO_PROJECT)
    assert (left, right) == (v1.id, v1.id)            # v2 never active: no previous version
    val = {im.id for im in st.store.list_images(p.id, split="val")}
    assert val and {iid for _, iid in images[:len(val)]} == val and "val" in images[0][0]
    iid = images[0][1]
    a = st.store.get_prediction(iid, v1.id)
    a = st.predict(DEMO_PROJECT, iid) if a is None else a.class_map
    b = a.copy()
    b[:20, :30] = p.classes[3].index                  # v2's stored prediction differs on a block
    st.store.save_prediction(iid, v2.id, b, 0.1)
    r = st.compare_versions(DEMO_PROJECT, iid, v1.id, v2.id)
    assert np.array_equal(r["a"], a) and np.array_equal(r["b"], b)
    assert r["changed"] == int((a != b).sum()) > 0 and sum(n for *_, n in r["pairs"]) == r["changed"]
    assert r["image"].shape[:2] == a.shape and r["a_label"].startswith(f"v{v1.id}")
    assert r["colors"][p.classes[0].index] == dict(st.class_colors(DEMO_PROJECT))[p.classes[0].name]
    # objects of another project, or none, are refused
    st.create_project("other", "sky\nroad")
    o = st.store.add_image("other", sorted(DEMO_DIR.glob("*.jpg"))[0], "o.jpg")
    ov = st.model_version("other")
    for bad in [(o.id, v1.id, v2.id), (iid, ov.id, v2.id), (424242, v1.id, v2.id), ("x", v1.id, v2.id),
                (iid, None, v2.id)]:
        with pytest.raises(UserError):
            st.compare_versions(DEMO_PROJECT, *bad)


def check_label_set_map(st):
    """Before an evaluation: the close pairs; after: the confused pairs too."""
    m = st.label_set_map(DEMO_PROJECT)
    names = st.store.get_project(DEMO_PROJECT).class_names
    assert m["names"] == names and m["xy"].shape == (len(names), 2) and 0 < m["explained"] <= 1
    sim = m["similarity"]
    assert np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 1)
    # the close pairs are exactly those at or above the stated threshold
    iu = np.triu_indices(len(names), 1)
    expect = {frozenset((names[i], names[j])) for i, j in zip(*iu) if sim[i, j] >= TOO_CLOSE}
    assert {frozenset((a, b)) for a, b, _ in m["close"]} == expect
    assert f"{TOO_CLOSE:.2f}" in m["sentence"] and m["threshold"] == TOO_CLOSE
    for a, b, s in m["close"]:
        assert f"{a} – {b} ({s:.2f})" in m["sentence"]
    assert m["confused"] is None and "not measured yet" in m["sentence"]
    ev = st.evaluate_on_val(DEMO_PROJECT)          # cached: the same evaluation as above
    m = st.label_set_map(DEMO_PROJECT)
    assert m["confused"] is not None and m["val_images"] == ev["images"]
    assert f"{ev['images']} val image(s)" in m["sentence"]
    conf = np.asarray(ev["confusion"], float)
    for a, b, share in m["confused"]:
        i, j = names.index(a), names.index(b)
        assert share == pytest.approx(max(conf[i, j] / conf[i].sum(), conf[j, i] / conf[j].sum()))
    # the vectors are the model's own: the similarity is theirs
    mv = st.model_version(DEMO_PROJECT)
    vec = st.predictors.word_vectors(mv.weights_dir, names).class_vectors.numpy()
    assert np.allclose(sim, cosine_similarity(vec), atol=1e-6)
    fig = plots.label_map_figure(m)
    assert list(fig.data[-1].text) == names
    heat = plots.similarity_figure(m)
    assert np.allclose(np.asarray(heat.data[0].z), sim)
    st.create_project("one", "sky")
    with pytest.raises(UserError, match="fewer than two"):
        st.label_set_map("one")


def test_each_first_submission_keeps_what_the_labeller_changed_and_the_model_screen_shows_it(bare_demo_studio):
    st = bare_demo_studio
    p = st.store.get_project(DEMO_PROJECT)
    mv = st.model_version(p.id)
    assert st.correction_history(DEMO_PROJECT)["rows"] == []
    ids = [im.id for im in st.store.list_images(p.id, order="id")]
    loaded = st.open_image(ids[0])
    pred = loaded.class_map.copy()
    edited = pred.copy()
    other = p.classes[0].index if pred[10, 10] != p.classes[0].index else p.classes[1].index
    edited[0:40, 0:60] = other                   # one fix: a 40 x 60 block painted one class
    changed = int((edited != pred).sum())
    res = st.save_edits(loaded, edited, "ann", "submitted")
    # the Label screen says it at once, with the image's name (the page has moved on to the next)
    assert res.correction["fixes"] == 1
    assert res.note(loaded.filename) == (f"Saved revision {res.revision} (submitted) of {loaded.filename}: "
                                         f"{100 * changed / pred.size:.1f}% of the prediction changed, 1 fix.")
    h = st.correction_history(DEMO_PROJECT)
    assert len(h["rows"]) == 1
    row = h["rows"][0]
    assert row["changed"] == pytest.approx(changed / pred.size, abs=1e-6) and row["fixes"] == 1
    assert row["version"] == f"v{mv.id}" and row["name"] == loaded.filename and row["author"] == "ann"
    # a resubmission is not a second record (the same work twice); a draft never is one
    again = st.open_image(ids[0])
    res = st.save_edits(again, edited[::-1].copy(), "ann", "submitted")
    assert res.correction is None and res.note("x.png") == f"Saved revision {res.revision} (submitted) of x.png."
    draft = st.save_edits(st.open_image(ids[2]), edited, "ann", "draft")
    assert draft.correction is None and draft.note("x.png") == f"Saved revision {draft.revision} (draft)."
    second = st.open_image(ids[1])
    # the model re-predicts the open image meanwhile (instant adaptation): not the labeller's change
    newer = second.class_map.copy()
    newer[100:140, 100:200] = other
    st.store.save_prediction(ids[1], mv.id, newer, 0.1)
    st.save_edits(second, second.class_map.copy(), "ann", "submitted")
    rows = st.correction_history(DEMO_PROJECT)["rows"]
    assert [(r["n"], r["image_id"]) for r in rows] == [(1, ids[0]), (2, ids[1])]
    assert rows[1]["changed"] == 0.0 and rows[1]["fixes"] == 0      # submitted as predicted
    assert any("% of the prediction changed, 1 fix)" in r[2] for r in st.activity(DEMO_PROJECT))
    fig = plots.correction_history_figure(st.correction_history(DEMO_PROJECT))
    assert [t.name for t in fig.data] == [f"predicted by v{mv.id}", "mean of the last 10"]
    assert list(fig.data[0].y) == pytest.approx([100 * changed / pred.size, 0.0], abs=1e-3)
    assert "No submission recorded" in plots.correction_history_figure({"rows": []}).layout.annotations[0].text
    assert st.wait_idle()                        # the submissions' background work (review scores) ends here


def test_the_correction_sentence_compares_the_first_and_the_last_ten():
    from segui.versions import correction_sentence
    rows = [{"changed": 0.10 if i < 10 else 0.04, "fixes": 20 if i < 10 else 12} for i in range(25)]
    s = correction_sentence(rows)
    assert "10.0%" in s and "4.0%" in s and "60% less to change" in s and "(20.0 separate fixes each)" in s
    assert "3 submitted image(s)" in correction_sentence(rows[:3])
    worse = [{"changed": 0.02, "fixes": 1}] * 10 + [{"changed": 0.05, "fixes": 2}] * 10
    assert "no less to change" in correction_sentence(worse)
    perfect = [{"changed": 0.05, "fixes": 3}] * 10 + [{"changed": 0.0, "fixes": 0}] * 10
    assert "100% less to change" in correction_sentence(perfect)
    assert "nothing changed" in correction_sentence([{"changed": 0.0, "fixes": 0}] * 20)
