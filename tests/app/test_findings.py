"""Issue 17's server findings, one row each, every row run on SQLite and (when
STORAGE_TEST_PG_URL is set, as .ci/run does) on PostgreSQL: each row replays the
attack at the Studio level (what every endpoint calls) and asserts it fails. The
HTTP-level versions (login page, headers, 429s, the export URL) are in test_access.py.
"""
from __future__ import annotations

import base64
import io
import os
import uuid
from urllib.parse import quote

import numpy as np
import pytest
from argon2 import PasswordHasher
from PIL import Image
from sqlalchemy import create_engine, text

from common.labels import LabelSetError
from segui import access
from segui.access import Act, Forbidden
from segui.canvas import codec
from segui.errors import UserError
from segui.handlers import DEMO_PROJECT, Studio
from storage import LoginPolicy, Store, StorageError

from .conftest import _PREDICTORS, bare_demo_dir

PG_URL = os.environ.get("STORAGE_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
PW = "a long enough password"


@pytest.fixture(params=BACKENDS)
def st(request, tmp_path):
    """The demo project's 4 images on a fresh database of each backend, with accounts:
    ada (admin), rex (reviewer, member), ann (annotator, member), out (annotator, not)."""
    url, schema, admin = None, None, None
    if request.param == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    store = Store(url, tmp_path / "data", password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    s = Studio(store, predictors=_PREDICTORS)
    s.ensure_demo(bare_demo_dir(tmp_path / "demo"))
    for name, role in [("ada", "admin"), ("rex", "reviewer"), ("ann", "annotator"), ("out", "annotator")]:
        store.add_user(name, PW, role)
    for name in ("rex", "ann"):
        store.add_member(DEMO_PROJECT, name)
    try:
        yield s
    finally:
        store.close()
        if admin is not None:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def ids(st):
    return [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]


def as_(st, name):
    return access.acting_as(st.principal(name))


def f1_removed_member_cannot_write_by_naming_no_project(st):
    iid = ids(st)[0]
    assert st.authorize("ann", Act.LABEL, None, open_image=iid)       # a member may
    st.store.remove_member(DEMO_PROJECT, "ann")
    for project in (None, ""):
        with pytest.raises(Forbidden, match="not a member"):
            st.authorize("ann", Act.LABEL, project, open_image=iid)
    with pytest.raises(Forbidden):
        st.open_in_project(None, iid, who=st.principal("ann"))


def f2_logins_are_throttled_then_locked(st):
    st.login_policy = LoginPolicy(free_failures=2, base_delay_s=60, max_delay_s=60, lock_after=3)
    assert st.login("ann", PW)
    assert not st.login("ann", "wrong") and not st.login("ann", "wrong")
    assert not st.login("ann", PW), "the right password was accepted during the backoff"
    st.store.unlock_user("ann")
    assert st.login("ann", PW)


def f3_oversized_maps_are_refused_from_the_header(st):
    info = st.store.get_image(ids(st)[0])
    buf = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buf, format="PNG")       # 16 MP of zeros: a few KB as PNG
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with pytest.raises(codec.MapFormatError, match="4000x4000"):
        codec.decode_map(url, info.height, info.width)


def f4_non_members_do_not_see_project_names(st):
    assert DEMO_PROJECT in st.project_names(st.principal("ann"))
    assert DEMO_PROJECT not in st.project_names(st.principal("out"))


def f5_sessions_end_on_password_change_and_disable(st):
    e0 = st.store.session_epoch("ann")
    st.store.set_password("ann", "another long password")
    e1 = st.store.session_epoch("ann")
    assert e1 != e0
    st.store.disable_user("ann")
    st.store.enable_user("ann")
    assert st.store.session_epoch("ann") not in (e0, e1), "re-enabling brought an old session back"


def f6_a_reviewer_cannot_accept_their_own_submission(st):
    iid = ids(st)[0]
    token = as_(st, "rex")
    try:
        loaded = st.open_in_project(DEMO_PROJECT, iid).loaded
        st.save_edits(loaded, loaded.class_map, "rex", "submitted")
        with pytest.raises((UserError, Forbidden, StorageError)):
            st.review(loaded, loaded.class_map, "accepted", "")
    finally:
        access.reset(token)
    assert st.store.get_image(iid).review != "accepted"


def f7_an_export_url_serves_its_owner_only(st, tmp_path):
    path = tmp_path / "cache" / "export.zip"
    path.parent.mkdir()
    path.write_bytes(b"PK")
    st.protect_download(path, DEMO_PROJECT, who=st.principal("ada"))
    assert st.download_refusal(str(path), "ada") is None
    for name in ("rex", "ann", "out", None):
        assert "belongs to ada" in st.download_refusal(str(path), name)


def f8_invisible_characters_and_probing_image_ids(st):
    for bad in ("car\x00", "car\u200b", "\u202ecar"):
        with pytest.raises((UserError, LabelSetError, StorageError, ValueError)):
            st.create_project(f"p{len(bad)}", f"sky, {bad}")
    other = st.create_project("other", "sky, road")
    buf = io.BytesIO()
    Image.fromarray((np.ones((32, 32, 3)) * 90).astype(np.uint8)).save(buf, format="PNG")
    foreign = st.store.add_image(other.name, buf.getvalue(), "x.png")
    missing = 10 ** 6
    with pytest.raises(UserError) as a:
        st.open_in_project(DEMO_PROJECT, missing)
    with pytest.raises(UserError) as b:
        st.open_in_project(DEMO_PROJECT, foreign.id)
    assert str(a.value).replace(str(missing), "N") == str(b.value).replace(str(foreign.id), "N")


FINDINGS = [f1_removed_member_cannot_write_by_naming_no_project, f2_logins_are_throttled_then_locked,
            f3_oversized_maps_are_refused_from_the_header, f4_non_members_do_not_see_project_names,
            f5_sessions_end_on_password_change_and_disable, f6_a_reviewer_cannot_accept_their_own_submission,
            f7_an_export_url_serves_its_owner_only, f8_invisible_characters_and_probing_image_ids]


@pytest.mark.parametrize("row", FINDINGS, ids=lambda f: f.__name__)
def test_finding(st, row, tmp_path):
    if "tmp_path" in row.__code__.co_varnames[:row.__code__.co_argcount]:
        row(st, tmp_path)
    else:
        row(st)
