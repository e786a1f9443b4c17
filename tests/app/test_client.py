"""The running app driven through gradio_client (launch(prevent_thread_lock=True))."""
import zipfile

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from segui.handlers import DEMO_PROJECT
from segui.ui import build_app

from .conftest import free_port, make_studio, png_bytes, served


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    st = make_studio(tmp_path_factory.mktemp("client"), demo=True)
    with served(st) as url:
        yield st, url


def client(url):
    return Client(url, verbose=False)


def layer_of(update):
    return np.array(Image.open(update["value"]["layers"][0]))


def test_every_event_has_an_api_name(running):
    _, url = running
    names = set(client(url).view_api(return_format="dict", print_info=False)["named_endpoints"])
    for n in ["/upload", "/next_image", "/save", "/submit", "/fill", "/fill_at", "/snap", "/clean_up",
              "/text_prompt", "/accept_prompt", "/create_project", "/add_class", "/update_classes",
              "/activate_model", "/export", "/set_opacity", "/load_revision", "/open_image"]:
        assert n in names
    assert not any(n.startswith("/lambda") or n.startswith("/on_") for n in names)


def test_open_paint_save_round_trip(running, tmp_path):
    st, url = running
    c = client(url)
    project, _ = c.predict(api_name="/init")
    assert project["value"] == DEMO_PROJECT
    ed, overlay, status, revs, legend, tool = c.predict(DEMO_PROJECT, api_name="/select_project")
    iid = int(status.split("(id ")[1].split(")")[0])
    pred = st.store.get_prediction(iid).class_map
    layer = layer_of(ed)
    assert layer.shape == (360, 480, 4) and ed["canvas_size"] == [480, 360]
    assert len(ed["brush"]["colors"]) == 11 and ed["brush"]["color_mode"] == "fixed"
    assert "road" in legend and np.array(Image.open(overlay)).shape[:2] == (360, 480)
    # paint a car-coloured rectangle (with an antialiased fringe) and erase a corner
    layer[100:140, 200:260] = [64, 0, 128, 255]
    layer[99, 200:260] = [70, 10, 120, 90]            # fringe: snaps to car too
    layer[0:20, 0:30, 3] = 0                           # eraser
    lp = tmp_path / "layer.png"
    Image.fromarray(layer).save(lp)
    value = {"background": handle_file(ed["value"]["background"]), "layers": [handle_file(str(lp))],
             "composite": None}
    out = c.predict(DEMO_PROJECT, value, "alice", 0.6, api_name="/save")
    assert "revision 1" in out[2]
    a = st.store.get_annotation(iid)
    assert a.author == "alice" and a.status == "draft"
    expect = pred.copy()
    expect[99:140, 200:260] = 8
    expect[0:20, 0:30] = 11
    np.testing.assert_array_equal(a.class_map, expect)
    # superpixel fill through the API: the clicked pixel's segment becomes "sky"
    out = c.predict(DEMO_PROJECT, value, "sky", 0.6, 300, 250, api_name="/fill_at")
    filled = layer_of(out[0])
    assert tuple(filled[250, 300, :3]) == (128, 128, 128)
    # saving while the editor still holds the pre-fill layer (it takes ~2 s to reload in a
    # browser) stores the fill's result, which the overlay already shows
    out = c.predict(DEMO_PROJECT, value, "alice", 0.6, api_name="/save")
    assert "still loading" in out[2] and "revision 2" in out[2]
    seg = st.segments(iid, st.store.load_image(iid))
    region = seg == seg[250, 300]
    rev2 = st.store.get_annotation(iid, 2).class_map
    assert (rev2[region] == 0).all()
    np.testing.assert_array_equal(rev2[~region], expect[~region])
    # after that, an unchanged editor value is saved as it is (no stale tool result pending)
    fresh = tmp_path / "fresh.png"
    Image.fromarray(layer_of(out[0])).save(fresh)
    value2 = {"background": value["background"], "layers": [handle_file(str(fresh))], "composite": None}
    out = c.predict(DEMO_PROJECT, value2, "alice", 0.6, api_name="/save")
    assert "still loading" not in out[2]
    np.testing.assert_array_equal(st.store.get_annotation(iid, 3).class_map, rev2)


def test_next_saves_unsaved_edits_as_a_draft_and_leaves_untouched_images_alone(running, tmp_path):
    st, url = running
    c = client(url)
    c.predict(api_name="/init")
    iid = next(i.id for i in st.store.list_images(DEMO_PROJECT) if st.store.get_annotation(i.id).revision == 0)
    ed, _, status, _ = c.predict(DEMO_PROJECT, iid, 0.6, api_name="/open_image")
    assert f"(id {iid})" in status
    pred = st.store.get_prediction(iid).class_map
    layer = layer_of(ed)
    layer[10:30, 10:40] = [64, 0, 128, 255]  # car
    lp = tmp_path / "painted.png"
    Image.fromarray(layer).save(lp)
    value = {"background": handle_file(ed["value"]["background"]), "layers": [handle_file(str(lp))],
             "composite": None}
    ed2, _, status2, _ = c.predict(DEMO_PROJECT, "any", value, "bob", 0.6, api_name="/next_image")
    a = st.store.get_annotation(iid)
    assert a.revision == 1 and a.status == "draft" and a.author == "bob"
    expect = pred.copy()
    expect[10:30, 10:40] = 8
    np.testing.assert_array_equal(a.class_map, expect)
    assert "Saved revision 1 (draft)" in status2 and f"(id {iid})" not in status2
    # the next image, moved past without an edit, gets no annotation
    nid = int(status2.split("(id ")[1].split(")")[0])
    revision_before = st.store.get_annotation(nid).revision
    same = tmp_path / "same.png"
    Image.fromarray(layer_of(ed2)).save(same)
    value2 = {"background": handle_file(ed2["value"]["background"]), "layers": [handle_file(str(same))],
              "composite": None}
    c.predict(DEMO_PROJECT, "any", value2, "bob", 0.6, api_name="/next_image")
    assert st.store.get_annotation(nid).revision == revision_before


def test_upload_good_and_bad_files(running, tmp_path):
    st, url = running
    c = client(url)
    c.predict(api_name="/init")
    before = st.store.count_images(DEMO_PROJECT)["total"]
    good = tmp_path / "new.png"
    img = np.zeros((90, 120, 3), np.uint8)
    img[:45] = [120, 160, 230]
    img[45:] = [90, 90, 90]
    good.write_bytes(png_bytes(img))
    bad = tmp_path / "bad.txt"
    bad.write_text("hello")
    out = c.predict(DEMO_PROJECT, [handle_file(str(good)), handle_file(str(bad))], 0.6, api_name="/upload")
    assert "1 image(s) added" in out[2] and "bad.txt" in out[2]
    assert np.array(Image.open(out[0]["value"]["layers"][0])).shape == (90, 120, 4)
    assert st.store.count_images(DEMO_PROJECT)["total"] == before + 1
    with pytest.raises(Exception, match="skipped"):
        c.predict(DEMO_PROJECT, [handle_file(str(bad))], 0.6, api_name="/upload")
    assert st.store.count_images(DEMO_PROJECT)["total"] == before + 1


def test_errors_are_visible_and_app_keeps_working(running):
    st, url = running
    c = client(url)
    c.predict(api_name="/init")
    with pytest.raises(Exception, match="nothing to save"):
        c.predict(DEMO_PROJECT, None, "alice", 0.6, api_name="/save")
    with pytest.raises(Exception, match="empty"):
        c.predict("new", "", api_name="/create_project")
    with pytest.raises(Exception, match="duplicate"):
        c.predict("new", "car\nCar", api_name="/create_project")
    assert st.project_names() == [DEMO_PROJECT]
    out = c.predict("new", "car\nroad #00ff00", api_name="/create_project")
    assert out[0]["value"] == "new"
    assert st.store.get_project("new").classes[1].color == (0, 255, 0)
    with pytest.raises(Exception, match="duplicate"):
        c.predict("new", "CAR", "#123456", api_name="/add_class")
    table = c.predict("new", "bus", "#123456", api_name="/add_class")[0]
    assert [r[1] for r in table["data"]] == ["car", "road", "bus"]
    ed, legend, tool = c.predict("new", api_name="/refresh_palette_1")   # chained after /add_class
    assert ed["brush"]["colors"] == ["#" + "%02x%02x%02x" % c.color for c in st.store.get_project("new").classes]
    assert "bus" in legend and tool["choices"][2][0] == "bus"
    # still serving
    assert c.predict(DEMO_PROJECT, "any", None, "alice", 0.6, api_name="/next_image")[2].startswith("**")


def test_model_panel_and_export(running):
    st, url = running
    c = client(url)
    summary, versions, plot = c.predict(DEMO_PROJECT, api_name="/model_panel")
    assert "mIoU" in summary and ("CPU" in summary or "GPU" in summary)
    rows = dict(plot["data"])
    assert len(rows) == 11 and rows["road"] > 0.9 and plot["mark"] == "bar"
    assert versions["value"] == 1
    iid = st.store.list_images(DEMO_PROJECT)[0].id
    st.save(iid, st.open_image(iid).class_map, "bob", "submitted", st.store.get_image(iid).revision)
    path = c.predict(DEMO_PROJECT, "coco", False, api_name="/export")
    with zipfile.ZipFile(path) as zf:
        assert "annotations.json" in zf.namelist()


def test_auth_login_name_is_the_author(tmp_path):
    st = make_studio(tmp_path, demo=True)
    app = build_app(st, auth_enabled=True)
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       auth=("alice", "pw"))
    try:
        with pytest.raises(Exception):
            Client(f"http://127.0.0.1:{port}/", auth=("alice", "wrong"), verbose=False)
        c = Client(f"http://127.0.0.1:{port}/", auth=("alice", "pw"), verbose=False)
        _, author = c.predict(api_name="/init")
        assert author["value"] == "alice"
        ed, _, status, *_ = c.predict(DEMO_PROJECT, api_name="/select_project")
        iid = int(status.split("(id ")[1].split(")")[0])
        value = {"background": handle_file(ed["value"]["background"]),
                 "layers": [handle_file(ed["value"]["layers"][0])], "composite": None}
        c.predict(DEMO_PROJECT, value, "mallory", 0.6, api_name="/save")
        a = st.store.get_annotation(iid)
        assert a.author == "alice"
        np.testing.assert_array_equal(a.class_map, st.store.get_prediction(iid).class_map)
    finally:
        app.close()
        st.store.close()


def test_finetune_from_the_model_panel_runs_in_a_worker_while_the_app_answers(running):
    import time
    st, url = running
    c = client(url)
    img = st.store.list_images(DEMO_PROJECT)[0]
    truth = st.predict(DEMO_PROJECT, img.id, store=False)
    st.store.save_annotation(img.id, truth, "tester", "submitted", base_revision=img.revision)
    assert "queued" in c.predict(DEMO_PROJECT, 1, 0.2, api_name="/start_finetune")
    seen = []
    deadline = time.time() + 240
    while time.time() < deadline:
        line = c.predict(DEMO_PROJECT, api_name="/finetune_status")[0]
        seen.append(line)
        if "succeeded" in line or "failed" in line:
            break
        # the web server keeps answering other requests while the job trains
        assert c.predict(DEMO_PROJECT, "any", None, "alice", 0.6, api_name="/next_image") is not None
        time.sleep(1)
    assert "succeeded" in seen[-1], seen[-3:]
    assert "not promoted: no val images" in seen[-1]
    job = st.store.list_jobs(DEMO_PROJECT)[0]
    assert job.result_version_id is not None and job.metrics["train_images"] >= 1
