"""Accounts, roles and project membership, enforced on the server for every endpoint.

The app runs with accounts (argon2, fast parameters for the tests); every api_name
is called through gradio_client as each role and as nobody, and the answer is
checked against the role table in ``segui.access``: a new endpoint without a rule
fails ``test_every_endpoint_has_a_rule``.
"""
from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher
from gradio_client import Client

from segui import access
from segui.access import Act
from segui.handlers import DEMO_PROJECT
from segui.security import Settings, launch_options
from segui.ui import LAUNCH_OPTIONS, build_app

from .conftest import launch_local, make_studio

PW = {"ada": "ada's long password", "rex": "rex reviews all day", "ann": "ann annotates well",
      "out": "outsider password", "dis": "disabled password"}
ROLES = {"ada": "admin", "rex": "reviewer", "ann": "annotator", "out": "annotator", "dis": "annotator"}
SERVER_FUNCTIONS = {"superpixels", "peek_next", "heatmap", "uncertainty", "what_changed", "click_object",
                    "strip_page", "thumbnails", "store_edit", "explore_rows", "revision_maps", "alive"}


@pytest.fixture(scope="module")
def teams(tmp_path_factory):
    st = make_studio(tmp_path_factory.mktemp("access"), demo=True)
    st.store.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    for name, role in ROLES.items():
        st.store.add_user(name, PW[name], role)
    for name in ("rex", "ann", "dis"):
        st.store.add_member(DEMO_PROJECT, name)
    st.store.disable_user("dis")
    app = build_app(st, auth_enabled=True)
    # as app.py serves it: the login off the event loop, throttling, sessions, headers
    # (the account check of a session is not cached here, so the tests see it at once)
    opts = launch_options(st, st.login, Settings(epoch_cache_s=0.0))
    assert opts["auth"] == st.login_async
    port = launch_local(app, **opts, **LAUNCH_OPTIONS)
    yield st, f"http://127.0.0.1:{port}/"
    st.wait_idle(30)
    app.close()
    st.store.close()


def login(url, name) -> Client:
    return Client(url, auth=(name, PW[name]), verbose=False)


def endpoints(c: Client) -> dict[str, list]:
    """api_name -> empty arguments for it (None, or the example where a component
    cannot take None), of every endpoint the app serves."""
    api = c.view_api(return_format="dict", print_info=False)["named_endpoints"]
    return {k.lstrip("/"): [p.get("example_input") if p.get("component") == "Dataframe" else None
                            for p in v["parameters"]] for k, v in api.items()}


def call(c: Client, name: str, empty: list, *args):
    """The endpoint's answer, or the error text when it refused or failed."""
    args = list(args) + list(empty[len(args):])
    try:
        return c.predict(*args, api_name=f"/{name}")
    except Exception as e:   # gradio_client's AppError carries the gr.Error message
        return f"ERROR: {e}"


def refused(answer) -> bool:
    return isinstance(answer, str) and answer.startswith("ERROR") and "Not allowed" in answer


def test_every_endpoint_has_a_rule(teams):
    st, url = teams
    served = set(endpoints(login(url, "ada")))
    served = {n for n in served if not n.endswith("_failed")}   # the page's own JS, no server code
    assert served | SERVER_FUNCTIONS == set(access.ENDPOINTS), (
        f"without a rule: {sorted(served - set(access.ENDPOINTS))}; "
        f"stale rules: {sorted(set(access.ENDPOINTS) - served - SERVER_FUNCTIONS)}")


@pytest.mark.parametrize("name", ["ada", "rex", "ann"])
def test_each_role_gets_what_the_role_table_says(teams, name):
    """Every endpoint, called with empty arguments: refused exactly when the role may
    not do its action (allowed calls may still fail for their own reasons)."""
    st, url = teams
    c = login(url, name)
    role = ROLES[name]
    wrong = []
    for ep, n in sorted(endpoints(c).items()):
        if ep.endswith("_failed"):
            continue
        act = access.ENDPOINTS[ep]
        expect_refused = act not in access.ALLOWED[role]
        got = call(c, ep, n)
        if refused(got) != expect_refused:
            wrong.append((ep, act.value, "refused" if refused(got) else "allowed", str(got)[:120]))
    assert not wrong, f"{name} ({role}) was treated against the role table: {wrong}"
    st.wait_idle(30)


def test_nobody_gets_nothing(teams):
    """Without a login every route is closed (401), the API and the server functions alike."""
    _, url = teams
    with pytest.raises(Exception):
        Client(url, verbose=False)
    for path in ("gradio_api/info", "gradio_api/call/next_image", "gradio_api/component_server"):
        r = httpx.post(url + path, json={"data": [None]}) if "call" in path or "component" in path \
            else httpx.get(url + path)
        assert r.status_code == 401, (path, r.status_code)


def test_wrong_password_and_disabled_users_cannot_log_in(teams):
    st, url = teams
    for name, pw in [("ann", "not ann's password"), ("dis", PW["dis"]), ("nobody", "whatever pw")]:
        with pytest.raises(Exception):
            Client(url, auth=(name, pw), verbose=False)
    assert st.login("ann", PW["ann"]) and not st.login("dis", PW["dis"])


def test_a_user_disabled_while_logged_in_is_refused_at_once(teams):
    st, url = teams
    st.store.add_user("tmp", "temporary password", "annotator")
    st.store.add_member(DEMO_PROJECT, "tmp")
    c = Client(url, auth=("tmp", "temporary password"), verbose=False)
    n = endpoints(c)["select_project"]
    assert not refused(call(c, "select_project", n, DEMO_PROJECT))
    st.store.disable_user("tmp")
    got = call(c, "select_project", n, DEMO_PROJECT)
    assert "401" in got, got                 # the session ended (issue 17): logged out
    who = st.principal                       # and Studio itself refuses the name
    with pytest.raises(access.Forbidden, match="disabled"):
        who("tmp")


def test_members_see_their_projects_only(teams):
    """The outsider annotator is not a member: the project is not in their list and
    its endpoints refuse it by name; members and admins open it."""
    st, url = teams
    assert st.project_names(st.principal("out")) == []
    assert st.project_names(st.principal("ann")) == [DEMO_PROJECT]
    out = login(url, "out")
    project, _ = out.predict(api_name="/init")
    assert project["value"] is None and project["choices"] == []
    out = login(url, "out")   # a fresh session: its picker was not narrowed by /init
    n = endpoints(out)
    for ep in ("select_project", "next_image", "save"):
        got = call(out, ep, n[ep], DEMO_PROJECT)
        assert refused(got) and "not a member" in got, (ep, got)
    for name in ("ann", "ada"):
        c = login(url, name)
        got = call(c, "select_project", n["select_project"], DEMO_PROJECT)
        assert not isinstance(got, str), got
        assert got[0]["kind"] == "load" and got[0]["project"] == DEMO_PROJECT


def test_the_login_name_is_the_author(teams):
    """No free-text author with accounts: whatever "Your name" says, the revision is the login's."""
    st, url = teams
    c = login(url, "ann")
    n = endpoints(c)
    c.predict(api_name="/init")
    out, _ = c.predict(DEMO_PROJECT, None, "someone else", api_name="/select_project")
    iid = out["image"]["id"]
    from segui.canvas import codec
    cm = np.zeros((out["image"]["height"], out["image"]["width"]), np.uint8)
    saved, _ = c.predict(DEMO_PROJECT, {"image_id": iid, "map": codec.encode_map(cm), "request": 1, "args": {}},
                         "someone else", api_name="/save")
    assert saved["kind"] == "saved", saved
    a = st.store.get_annotation(iid)
    assert a.author == "ann"
    assert st.store.list_activity(DEMO_PROJECT, action="revision_saved")[0].user == "ann"
    assert len(n["save"]) == 3


def test_passwords_are_not_stored_or_logged_in_plain_text(teams, caplog):
    st, url = teams
    with caplog.at_level(logging.DEBUG):
        login(url, "rex").predict(api_name="/init")
        with pytest.raises(Exception):
            Client(url, auth=("rex", "a wrong password here"), verbose=False)
    db = b"".join(f.read_bytes() for f in st.store.data_dir.glob("studio.db*"))   # with the WAL
    for pw in PW.values():
        assert pw.encode() not in db
        assert pw not in caplog.text
    assert b"$argon2id$" in db


def test_a_removed_member_cannot_write_the_image_still_open_whatever_project_is_named(teams):
    """Issue 17: a member removed while an image is open in their session sends no
    project (None or ""): save, submit and review are still checked against the
    project the image really belongs to, refused, and nothing is stored."""
    from segui.canvas import codec
    st, url = teams
    st.store.add_user("gone", "removed reviewer pw", "reviewer")
    st.store.add_member(DEMO_PROJECT, "gone")
    pid = st.store.get_project(DEMO_PROJECT).id
    iid = st.store.list_images(DEMO_PROJECT)[-1].id
    info = st.store.get_image(iid)
    cm = np.zeros((info.height, info.width), np.uint8)
    st.store.save_annotation(iid, cm, "ann", "submitted", st.store.get_image(iid).revision)   # to review
    c = Client(url, auth=("gone", "removed reviewer pw"), verbose=False)
    c.predict(api_name="/init")
    opened, _ = c.predict(DEMO_PROJECT, {"request": 1, "args": {"open": iid}}, "", api_name="/open_image")
    assert opened["image"]["id"] == iid, opened
    st.store.remove_member(DEMO_PROJECT, "gone")
    before = (st.store.get_image(iid).revision, len(st.store.list_reviews(iid)))
    value = {"image_id": iid, "map": codec.encode_map(cm + 1), "request": 2, "args": {}}
    n = endpoints(c)
    for project in (None, ""):
        for ep, args in [("save", (project, value, "")), ("submit", (project, value, "")),
                         ("review_image", (project, {**value, "map": codec.encode_map(cm),
                                                     "args": {"decision": "accepted"}}))]:
            got = call(c, ep, n[ep], *args)
            if project == "":   # Gradio's dropdown itself refuses a value it does not offer
                assert str(got).startswith("ERROR"), (ep, got)
                continue
            assert refused(got) and "not a member" in got and DEMO_PROJECT in got, (ep, project, got)
    assert (st.store.get_image(iid).revision, len(st.store.list_reviews(iid))) == before
    assert st.store.get_image(iid).project_id == pid


def test_an_image_of_a_project_one_is_not_in_cannot_be_opened_by_naming_no_project(teams):
    """open_image with no project named is checked against the image's own project;
    the outsider's refusal does not say whether the id exists elsewhere."""
    st, url = teams
    iid = st.store.list_images(DEMO_PROJECT)[0].id
    out = login(url, "out")
    out.predict(api_name="/init")
    n = endpoints(out)
    got = call(out, "open_image", n["open_image"], None, {"request": 1, "args": {"open": iid}}, "")
    assert refused(got) and "not a member" in got, got
    ada = login(url, "ada")
    got = call(ada, "open_image", n["open_image"], DEMO_PROJECT, {"request": 1, "args": {"open": 10 ** 9}}, "")
    assert "there is no image 1000000000 in this project" in got, got


# ---------------------------------------------------------------- issue 17, the server audit

def _post_login(url, name, pw):
    return httpx.post(url + "login", data={"username": name, "password": pw})


def test_login_is_throttled_per_account_then_locked_until_an_admin_unlocks(teams):
    """Finding 2: wrong passwords on one account: a wait (429, saying so) during which
    even the right password is refused, then a lockout only an admin lifts; the lockout
    is in the database, so another app process refuses it too."""
    from storage import LoginPolicy
    st, url = teams
    st.store.add_user("lock", "lockable password", "annotator")
    st.login_policy = LoginPolicy(free_failures=2, base_delay_s=30, max_delay_s=30, lock_after=4)
    try:
        codes = [_post_login(url, "lock", "wrong password").status_code for _ in range(3)]
        assert codes == [400, 400, 429], codes
        r = _post_login(url, "lock", "lockable password")           # right, but must wait
        assert r.status_code == 429 and "wait" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
        with pytest.raises(Exception):
            Client(url, auth=("lock", "lockable password"), verbose=False)
        for _ in range(2):   # the 429 was not counted: 2 + 2 failures lock it
            st.store.attempt_login("lock", "x", LoginPolicy(free_failures=9, lock_after=4))
        assert st.store.get_user("lock").locked
        r = _post_login(url, "lock", "lockable password")
        assert r.status_code == 429 and "locked" in r.json()["detail"], r.text
        st.server_guard.addresses._seen.clear()     # this address's own count: not this test's point
        ada = login(url, "ada")
        n = endpoints(ada)
        assert "unlocked" in str(call(ada, "account_unlock", n["account_unlock"], "lock"))
        assert _post_login(url, "lock", "lockable password").status_code == 200
    finally:
        st.login_policy = LoginPolicy()
        st.server_guard.addresses._seen.clear()


def test_login_is_throttled_per_client_address(teams):
    """Finding 2: wrong logins from one address, whatever names they try: after the free
    ones the address waits (429) before its next try is even looked at."""
    st, url = teams
    guard = st.server_guard
    try:
        for i in range(guard.settings.address_free_failures):
            assert _post_login(url, f"nobody{i}", "wrong password").status_code == 400
        r = _post_login(url, "ada", PW["ada"])
        assert r.status_code == 429 and "your address" in r.json()["detail"]
    finally:
        guard.addresses._seen.clear()
    assert _post_login(url, "ada", PW["ada"]).status_code == 200


def test_the_password_check_does_not_run_on_the_event_loop(teams):
    """Finding 2: a slow check (argon2) while the server answers other requests at once."""
    import threading
    import time
    st, url = teams
    slow, real = threading.Event(), st.store.attempt_login

    def slow_attempt(*a, **k):
        slow.set()
        time.sleep(1.5)
        return real(*a, **k)
    st.store.attempt_login = slow_attempt
    try:
        t = threading.Thread(target=_post_login, args=(url, "ada", "wrong password"))
        t.start()
        assert slow.wait(5)
        t0 = time.perf_counter()
        assert httpx.get(url + "gradio_api/login_check").status_code == 401
        assert time.perf_counter() - t0 < 0.5
        t.join()
    finally:
        st.store.attempt_login = real
        st.server_guard.addresses._seen.clear()


def _alive(c: Client) -> bool:
    got = call(c, "init", [])
    return not str(got).startswith("ERROR")


def test_sessions_end_on_password_change_and_disable_for_good(teams):
    """Finding 5: a new password ends the account's sessions (the new login works); a
    disabled then enabled account does not get its old session back."""
    st, url = teams
    st.store.add_user("sess", "first password!", "annotator")
    st.store.add_member(DEMO_PROJECT, "sess")
    old = Client(url, auth=("sess", "first password!"), verbose=False)
    assert _alive(old)
    st.store.set_password("sess", "second password!")
    assert not _alive(old)
    new = Client(url, auth=("sess", "second password!"), verbose=False)
    assert _alive(new)
    st.store.disable_user("sess")
    st.store.enable_user("sess")
    assert not _alive(new)
    assert _alive(Client(url, auth=("sess", "second password!"), verbose=False))


def test_idle_sessions_expire(teams):
    import time
    st, url = teams
    c = login(url, "ann")
    assert _alive(c)
    guard = st.server_guard
    before = guard.settings.session_idle_s
    guard.settings.session_idle_s = 0.5
    try:
        time.sleep(0.7)
        assert not _alive(c)
    finally:
        guard.settings.session_idle_s = before
    assert _alive(login(url, "ann"))


def test_security_headers_on_pages_and_api(teams):
    """Finding 8: no framing (clickjacking), no content sniffing, logged in or not."""
    _, url = teams
    for r in (httpx.get(url), httpx.get(url + "gradio_api/info"), _post_login(url, "ada", PW["ada"])):
        assert r.headers["x-frame-options"] == "DENY", r.url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_a_refused_server_function_is_a_clear_403_not_a_500(teams):
    """Finding 8: the canvas's superpixels for an image the caller may not open."""
    st, url = teams
    iid = st.store.list_images(DEMO_PROJECT)[0].id
    out = login(url, "out")
    out.predict(api_name="/init")
    comp = next(c["id"] for c in out.config["components"] if "superpixels" in str(c.get("server_fns"))
                or "superpixels" in str(c.get("props", {}).get("server_fns")))
    r = httpx.post(url + "gradio_api/component_server", cookies=out.cookies,
                   json={"data": [{"image_id": iid}], "component_id": comp, "fn_name": "superpixels",
                         "session_hash": out.session_hash})
    assert r.status_code == 403 and "not a member" in r.json()["detail"], (r.status_code, r.text[:300])


def test_the_heartbeat_names_the_active_model_only_to_members(teams):
    """The canvas's heartbeat (``alive``) with a project: a member learns its active model
    version (the page shows a promoted job's prediction); an outsider, or a project that
    does not exist, gets the server's id alone, never a refusal (the heartbeat takes those
    for a lost server)."""
    st, url = teams
    active = st.store.active_model_version(DEMO_PROJECT)

    def beat(name, data):
        c = login(url, name)
        c.predict(api_name="/init")
        comp = next(x["id"] for x in c.config["components"] if "alive" in str(x.get("server_fns"))
                    or "alive" in str(x.get("props", {}).get("server_fns")))
        r = httpx.post(url + "gradio_api/component_server", cookies=c.cookies, timeout=60,
                       json={"data": [data], "component_id": comp, "fn_name": "alive", "session_hash": c.session_hash})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r.json()

    got = beat("ann", {"project": DEMO_PROJECT})
    assert got["boot"] == st.boot
    assert got["active"] == {"id": active.id, "name": f"v{active.id}", "ready": True, "fit": None,
                             "project": DEMO_PROJECT, "job": None}
    assert set(beat("out", {"project": DEMO_PROJECT})) == {"boot"}
    assert set(beat("ann", {"project": "no such project"})) == {"boot"}
    assert set(beat("ann", {})) == {"boot"}


def test_the_heatmap_server_function_serves_members_and_refuses_others(teams):
    """The canvas's word heatmap: a member gets the map of a phrase, an outsider a
    clear 403, a bad request a 400 (never a 500)."""
    st, url = teams
    iid = st.store.list_images(DEMO_PROJECT)[0].id

    def call(name, data, fn="heatmap"):
        c = login(url, name)
        c.predict(api_name="/init")
        comp = next(x["id"] for x in c.config["components"] if "heatmap" in str(x.get("server_fns"))
                    or "heatmap" in str(x.get("props", {}).get("server_fns")))
        return httpx.post(url + "gradio_api/component_server", cookies=c.cookies, timeout=120,
                          json={"data": [data], "component_id": comp, "fn_name": fn,
                                "session_hash": c.session_hash})

    ok = call("ann", {"image_id": iid, "phrase": "sky"})
    assert ok.status_code == 200, ok.text[:300]
    body = ok.json()
    assert body["phrase"] == "sky" and body["class"] == "sky" and body["data"].startswith("data:image/png;base64,")
    r = call("out", {"image_id": iid, "phrase": "sky"})
    assert r.status_code == 403 and "not a member" in r.json()["detail"], (r.status_code, r.text[:300])
    r = call("ann", {"image_id": iid, "phrase": "   "})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    # the uncertainty map (U): the same rule
    ok = call("ann", {"image_id": iid}, "uncertainty")
    assert ok.status_code == 200 and ok.json()["data"].startswith("data:image/png;base64,"), ok.text[:300]
    assert 0 <= ok.json()["mean"] <= ok.json()["max"] <= 1
    r = call("out", {"image_id": iid}, "uncertainty")
    assert r.status_code == 403 and "not a member" in r.json()["detail"], (r.status_code, r.text[:300])
    r = call("ann", {}, "uncertainty")
    assert r.status_code == 400, (r.status_code, r.text[:300])
    # what changed between model versions (C): the same rule
    ok = call("ann", {"image_id": iid}, "what_changed")
    assert ok.status_code == 200 and ok.json()["to"] is not None, ok.text[:300]
    r = call("out", {"image_id": iid}, "what_changed")
    assert r.status_code == 403, (r.status_code, r.text[:300])
    # click-to-object (O): the same rule; a click outside the image is a clear 400
    ok = call("ann", {"image_id": iid, "clicks": [[100, 300, 1]]}, "click_object")
    assert ok.status_code == 200 and ok.json()["pixels"] > 0, ok.text[:300]
    r = call("out", {"image_id": iid, "clicks": [[100, 300, 1]]}, "click_object")
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = call("ann", {"image_id": iid, "clicks": [[100000, 5, 1]]}, "click_object")
    assert r.status_code == 400 and "outside" in r.text, (r.status_code, r.text[:300])


def test_a_reviewer_cannot_accept_their_own_submission_in_the_app(teams):
    """Finding 6 at Studio level: refused with a clear message, nothing stored; allowed
    when the project allows self-review."""
    from segui.access import Principal
    from segui.errors import UserError
    st, url = teams
    iid = st.store.list_images(DEMO_PROJECT)[1].id
    info = st.store.get_image(iid)
    cm = np.zeros((info.height, info.width), np.uint8)
    st.store.save_annotation(iid, cm, "rex", "submitted", info.revision)
    rex = Principal("rex", "reviewer", member_only=True)
    loaded = st.open_in_project(DEMO_PROJECT, iid).loaded
    before = len(st.store.list_reviews(iid))
    with pytest.raises(UserError, match="cannot accept their own submission"):
        st.review(loaded, None, "accepted", "", who=rex)
    assert len(st.store.list_reviews(iid)) == before
    st.store.set_self_review(DEMO_PROJECT, True)
    try:
        assert st.review(loaded, None, "accepted", "", who=rex).decision == "accepted"
    finally:
        st.store.set_self_review(DEMO_PROJECT, False)


def test_an_app_without_accounts_is_one_person_who_may_accept_their_own_work(tmp_path):
    """--auth alice:pw: alice labels and reviews; self-review is the only review there is."""
    from segui.access import Principal
    from segui.handlers import Studio
    from storage import Store
    st = Studio(Store(data_dir=tmp_path / "data"), device="cpu")
    try:
        st.store.create_project("solo", ["road", "sky"])
        from PIL import Image as PILImage
        import io
        buf = io.BytesIO()
        PILImage.new("RGB", (32, 24)).save(buf, "PNG")
        iid = st.store.add_image("solo", buf.getvalue(), "a.png").id
        st.store.save_annotation(iid, np.zeros((24, 32), np.uint8), "alice", "submitted", 0)
        assert not st.uses_accounts()
        loaded = st.open_in_project("solo", iid).loaded
        assert st.review(loaded, None, "accepted", "", who=Principal("alice", "admin")).decision == "accepted"
    finally:
        st.store.close()


@pytest.mark.parametrize("bad", ["road\x00", "sky\u200b", "\u202ecar", "a\x1bb"])
def test_invisible_and_control_characters_are_refused_in_names(teams, bad):
    """Finding 8: NUL, escapes, zero-width and bidi overrides in class, project and user names."""
    from common.labels import LabelSetError, clean_class_name
    from storage import ValidationError
    st, _ = teams
    with pytest.raises(LabelSetError, match="invisible or control"):
        clean_class_name(bad)
    with pytest.raises(ValidationError):
        st.store.add_user(bad, "a fine password", "annotator")
    with pytest.raises(ValidationError):
        st.store.create_project(bad, ["road", "sky"])
    with pytest.raises(ValidationError):
        st.store.create_project("fine name " + str(len(bad)), ["road", bad])
    assert clean_class_name("traffic\tlight") == "traffic light"      # whitespace still collapses


def test_a_public_host_without_login_is_refused_before_the_demo_exists(tmp_path):
    """Finding 8: app.py stops on an unsafe --host before it creates anything."""
    import app
    from storage import Store
    with pytest.raises(SystemExit, match="refusing to serve"):
        app.create(app.parse_args(["--data-dir", str(tmp_path), "--host", "0.0.0.0"]))
    with Store(data_dir=tmp_path) as s:
        assert s.list_projects() == []


def test_the_database_and_data_folder_are_private(teams):
    """Finding 8: studio.db and its WAL/SHM 0600; the data folder closed to other users."""
    import stat
    st, _ = teams
    d = st.store.data_dir
    assert stat.S_IMODE(d.stat().st_mode) & 0o007 == 0
    files = list(d.glob("studio.db*"))
    assert {f.name for f in files} >= {"studio.db", "studio.db-wal", "studio.db-shm"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


SECRET = "Zeta secret project"


def _names_in(text: str) -> set[str]:
    return {p for p in (DEMO_PROJECT, SECRET) if p in text}


def test_the_page_names_no_project_before_login_and_only_ones_own_after(teams):
    """Finding 4: the page Gradio serves before a login embeds the app's API description,
    so the Project picker is built with no choices: GET / (and /config) name no project.
    Logged in, the page and every endpoint's answer name only the caller's projects:
    nothing for the outsider, the demo but not the secret project for its annotator."""
    import json
    st, url = teams
    if SECRET not in st.project_names(st.principal("ada")):
        st.store.create_project(SECRET, ["road", "car"])
        st.store.add_member(SECRET, "rex")
    for path in ("", "config", "gradio_api/info"):
        r = httpx.get(url + path)
        assert not _names_in(r.text), (path, r.status_code, _names_in(r.text))
    for name, own in [("out", set()), ("ann", {DEMO_PROJECT})]:
        c = login(url, name)
        for path in ("", "config"):
            r = httpx.get(url + path, cookies=c.cookies)
            assert r.status_code == 200 and not _names_in(r.text), (name, path, _names_in(r.text))
        assert not _names_in(json.dumps(c.config)) and not _names_in(json.dumps(c.view_api(
            return_format="dict", print_info=False)))
        project, _ = c.predict(api_name="/init")
        assert set(project["choices"] and [v for v, _ in project["choices"]]) == own, project
        leaked = {}
        for ep, empty in sorted(endpoints(c).items()):
            if ep.endswith("_failed"):
                continue
            got = _names_in(str(call(c, ep, empty))) - own
            if got:
                leaked[ep] = got
        assert not leaked, f"{name} was told of projects they are not in: {leaked}"
    st.wait_idle(30)


def test_try_words_is_for_anyone_logged_in_even_without_a_project(teams):
    """The demo view needs no project: "out" (an annotator of no project) uses it; with
    accounts, nobody uses it without a login."""
    from gradio_client import handle_file

    from segui.handlers import DEMO_DIR
    st, url = teams
    assert not [p for p in st.project_names(st.principal("out"))]
    c = login(url, "out")
    view, info = c.predict(handle_file(str(DEMO_DIR / "0016E5_08009.jpg")), "sky, road", api_name="/try_words")
    assert info["words"] == ["sky", "road"] and view.count('class="tw-tile"') == 2
    with pytest.raises(Exception):
        Client(url, verbose=False).predict(None, "sky", api_name="/try_words")


def test_an_export_is_downloaded_by_its_owner_only(teams):
    """Finding 7: Gradio serves an export's copy by URL to anyone logged in; the guard
    gives it to the admin who made it (or another admin of the project) only."""
    st, url = teams
    login(url, "ada").predict(DEMO_PROJECT, "folder", True, api_name="/export")
    path = max(st._downloads, key=lambda k: st._downloads[k][2])   # the newest protected download
    got = {}
    for name in ("ada", "rex", "ann", "out"):
        with httpx.Client(base_url=url) as h:
            assert h.post("login", data={"username": name, "password": PW[name]}).status_code == 200
            r = h.get(f"gradio_api/file={path}")
            got[name] = r.status_code
            if name == "ada":
                assert r.content[:2] == b"PK", "not the zip"
            elif r.status_code == 403:
                assert "belongs to ada" in r.json()["detail"]
    assert got == {"ada": 200, "rex": 403, "ann": 403, "out": 403}
    assert httpx.get(f"{url}gradio_api/file={path}").status_code in (401, 403)   # no login at all
