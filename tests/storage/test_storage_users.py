"""Accounts (argon2 hashes, roles, disabled), project members, and the users/members
command line."""
import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher
from sqlalchemy import MetaData, select

from storage import NotFoundError, Store, ValidationError
from storage.__main__ import main
from storage.models import User

REPO = Path(__file__).resolve().parents[2]

PW = "correct horse battery"


@pytest.fixture
def fast_hasher():
    """Cheap argon2 parameters: the tests hash many times."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def ustore(make_store, fast_hasher):
    return make_store(password_hasher=fast_hasher)


def _all_rows_text(store) -> str:
    """Every row of every table, as text."""
    md = MetaData()
    md.reflect(store.engine)
    out = []
    with store.engine.connect() as c:
        for t in md.sorted_tables:
            out.extend(repr(tuple(r)) for r in c.execute(select(t)))
    return "\n".join(out)


def test_database_holds_an_argon2_hash_never_the_password(store):
    """The real default hasher (argon2id, argon2-cffi's parameters)."""
    u = store.add_user("alice", PW, "annotator")
    store.set_password("alice", PW + " 2")
    store.record_activity("user_added", "cli", subject="user alice")
    with store.engine.connect() as c:
        row = c.execute(select(User.__table__).where(User.id == u.id)).one()._mapping
    assert row["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    dump = _all_rows_text(store)
    assert "alice" in dump and PW not in dump and PW + " 2" not in dump
    assert PasswordHasher().verify(row["password_hash"], PW + " 2")
    assert not hasattr(u, "password_hash")                  # UserInfo never carries it


def test_verify_user_refuses_wrong_unknown_and_disabled(ustore):
    ustore.add_user("Alice", PW, "reviewer")
    ok = ustore.verify_user("alice", PW)                     # names ignore case
    assert ok is not None and ok.name == "Alice" and ok.role == "reviewer" and not ok.disabled
    assert ustore.verify_user("Alice", PW + "x") is None
    assert ustore.verify_user("Alice", "") is None
    assert ustore.verify_user("Alice", None) is None
    assert ustore.verify_user("nobody", PW) is None
    assert ustore.verify_user("", PW) is None
    assert ustore.disable_user("alice").disabled
    assert ustore.verify_user("Alice", PW) is None           # right password, disabled user
    assert ustore.projects_for("alice") == []
    ustore.enable_user("ALICE")
    assert ustore.verify_user("Alice", PW) is not None
    ustore.set_password("alice", "another password")
    assert ustore.verify_user("Alice", PW) is None
    assert ustore.verify_user("Alice", "another password") is not None


def test_unknown_user_costs_one_hash_verification(make_store, fast_hasher):
    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)
    st = make_store(password_hasher=Counting(time_cost=1, memory_cost=1024, parallelism=1))
    st.add_user("bob", PW, "annotator")
    assert st.verify_user("bob", "wrong password") is None
    assert st.verify_user("nobody", "wrong password") is None
    assert len(calls) == 2 and all(h.startswith("$argon2id$") for h in calls)


def test_weak_hash_is_rehashed_on_login(make_store, fast_hasher):
    weak = make_store(password_hasher=fast_hasher)
    weak.add_user("carol", PW, "annotator")

    def stored():
        with weak.engine.connect() as c:
            return c.execute(select(User.password_hash)).scalar_one()
    old = stored()
    assert "m=1024,t=1,p=1" in old
    strong = make_store()                                    # default parameters
    assert strong.verify_user("carol", "wrong password") is None
    assert stored() == old                                   # only a successful login rehashes
    assert strong.verify_user("carol", PW) is not None
    new = stored()
    assert new != old and "m=65536,t=3,p=4" in new
    assert strong.verify_user("carol", PW) is not None


def test_user_rules(ustore):
    ustore.add_user("  Dana   Scully ", PW, "annotator")
    assert ustore.get_user("dana scully").name == "Dana Scully"
    with pytest.raises(ValidationError, match="already exists"):
        ustore.add_user("DANA SCULLY", PW, "admin")
    with pytest.raises(ValidationError, match="role must be one of admin, reviewer, annotator"):
        ustore.add_user("eve", PW, "boss")
    with pytest.raises(ValidationError, match="at least 8 characters") as e:
        ustore.add_user("eve", "short", "annotator")
    assert "short" not in str(e.value)                       # messages never show a password
    with pytest.raises(ValidationError, match="user name"):
        ustore.add_user("   ", PW, "annotator")
    with pytest.raises(NotFoundError):
        ustore.get_user("eve")
    assert [u.name for u in ustore.list_users()] == ["Dana Scully"]
    assert ustore.set_role("dana scully", "reviewer").role == "reviewer"
    # the last enabled admin can be neither demoted nor disabled
    ustore.add_user("root", PW, "admin")
    with pytest.raises(ValidationError, match="last enabled admin"):
        ustore.set_role("root", "annotator")
    with pytest.raises(ValidationError, match="last enabled admin"):
        ustore.disable_user("root")
    ustore.add_user("root2", PW, "admin")
    assert ustore.disable_user("root").disabled
    assert ustore.has_users()


def test_members_and_projects_for(ustore):
    a = ustore.create_project("a", ["x"])
    b = ustore.create_project("b", ["x"])
    ustore.add_user("ann", PW, "annotator")
    ustore.add_user("rev", PW, "reviewer")
    ustore.add_user("adm", PW, "admin")
    assert ustore.add_member("a", "ann") is True
    assert ustore.add_member("a", "ANN") is False            # already a member
    assert ustore.add_member(b.id, "rev") is True
    assert [u.name for u in ustore.list_members("a")] == ["ann"]
    assert [p.name for p in ustore.projects_for("ann")] == ["a"]
    assert [p.name for p in ustore.projects_for("rev")] == ["b"]
    assert [p.name for p in ustore.projects_for("adm")] == ["a", "b"]     # admins: every project
    assert ustore.can_access("adm", "b") and ustore.can_access("ann", a.id)
    assert not ustore.can_access("ann", "b")
    assert ustore.remove_member("a", "ann") is True and ustore.remove_member("a", "ann") is False
    assert ustore.projects_for("ann") == [] and not ustore.can_access("ann", "a")
    with pytest.raises(NotFoundError):
        ustore.add_member("a", "ghost")
    with pytest.raises(NotFoundError):
        ustore.add_member("nope", "ann")


# ------------------------------------------------------------------------- command line

def _cli_args(db_url, tmp_path):
    return (["--db", db_url] if db_url else []) + ["--data-dir", str(tmp_path / "data")]


def test_cli_reads_the_password_from_stdin_never_argv(store, db_url, tmp_path):
    args = ["users", "add", "alice", "--role", "annotator", *_cli_args(db_url, tmp_path)]
    cmd = [sys.executable, "-m", "storage", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # what `ps` shows of the running command: no password there (read again while the
    # kernel is still between fork and exec, when it is empty)
    argv_seen, deadline = "", time.monotonic() + 30
    while "storage" not in argv_seen and time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            argv_seen = f.read().decode().replace("\0", " ")
        time.sleep(0.01)
    out, err = proc.communicate(PW + "\n", timeout=120)
    assert proc.returncode == 0, err
    assert "alice" in argv_seen and PW not in argv_seen
    assert PW not in out + err
    assert store.verify_user("alice", PW).role == "annotator"
    assert PW not in _all_rows_text(store)
    # a password on the command line is refused, and not echoed back
    bad = subprocess.run([*cmd[:3], "users", "add", "bob", "--role", "annotator", "--password", PW,
                          *_cli_args(db_url, tmp_path)], cwd=REPO, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert bad.returncode == 2 and PW not in bad.stdout + bad.stderr
    with pytest.raises(NotFoundError):
        store.get_user("bob")
    # passwd from a pipe too
    r = subprocess.run([*cmd[:3], "users", "passwd", "alice", *_cli_args(db_url, tmp_path)], cwd=REPO,
                       input="a new password\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert store.verify_user("alice", "a new password") is not None and store.verify_user("alice", PW) is None


def test_cli_takes_the_database_url_from_the_environment(tmp_path, monkeypatch, capsys):
    """$STUDIO_DB_URL is --db's default (a password in --db is visible in `ps`), as for workers."""
    db = tmp_path / "env" / "studio.db"
    db.parent.mkdir()
    monkeypatch.setenv("STUDIO_DB_URL", f"sqlite:///{db}")
    monkeypatch.setattr(sys, "stdin", io.StringIO(PW + "\n"))
    assert main(["users", "add", "erin", "--role", "annotator"]) == 0
    assert db.exists()
    s = Store(f"sqlite:///{db}")
    try:
        assert s.get_user("erin").role == "annotator"
    finally:
        s.close()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_cli_prompts_twice_on_a_terminal(store, db_url, tmp_path, monkeypatch, capsys):
    answers = iter([PW, PW, PW, "something else"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", _Tty())
    common = _cli_args(db_url, tmp_path)
    assert main(["users", "add", "root", "--role", "admin", *common]) == 0
    assert main(["users", "add", "other", "--role", "admin", *common]) == 2     # mismatch
    err = capsys.readouterr().err
    assert "differ" in err and PW not in err
    assert store.verify_user("root", PW).role == "admin"
    with pytest.raises(NotFoundError):
        store.get_user("other")


def test_cli_users_and_members(store, db_url, tmp_path, monkeypatch, capsys):
    store.create_project("streets", ["road"])
    common = _cli_args(db_url, tmp_path)
    for name, role in (("ann", "annotator"), ("rev", "reviewer"), ("boss", "admin")):
        monkeypatch.setattr(sys, "stdin", io.StringIO(PW + "\n"))
        assert main(["users", "add", name, "--role", role, *common]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["users", "add", "x", "--role", "annotator", *common]) == 2     # empty stdin
    assert main(["members", "add", "streets", "ann", *common]) == 0
    assert main(["members", "add", "streets", "rev", *common]) == 0
    assert main(["users", "set-role", "ann", "reviewer", *common]) == 0
    assert main(["users", "disable", "rev", *common]) == 0
    capsys.readouterr()
    assert main(["users", "list", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "DISABLED", "PROJECTS"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert rows == {"ann": ["reviewer", "no", "streets"], "boss": ["admin", "no", "(all)"],
                    "rev": ["reviewer", "yes", "streets"]}
    assert main(["members", "list", "streets", *common]) == 0
    assert capsys.readouterr().out.split() == ["ann", "reviewer", "rev", "reviewer", "(disabled)"]
    assert main(["users", "enable", "rev", *common]) == 0
    assert main(["users", "disable", "boss", *common]) == 2   # the last admin
    assert main(["members", "add", "streets", "ghost", *common]) == 2
    assert main(["training-source", "streets", *common]) == 0
    assert capsys.readouterr().out.strip().endswith("streets: accepted (automatic)")
    assert main(["training-source", "streets", "submitted", *common]) == 0
    assert store.effective_training_source("streets") == "submitted"
    # the command line records who did what (as "cli")
    acts = [(a.action, a.subject) for a in reversed(store.list_activity(None, limit=100))]
    assert acts == [("user_added", "user ann"), ("user_added", "user rev"), ("user_added", "user boss"),
                    ("member_added", "user ann"), ("member_added", "user rev"),
                    ("role_changed", "user ann"), ("user_disabled", "user rev"),
                    ("user_enabled", "user rev"), ("training_source_changed", "project streets")]
    assert PW not in _all_rows_text(store)


def test_login_throttling_backs_off_then_locks_until_unlocked(ustore):
    """Issue 17, finding 2: per-account counts in the database: free failures, then a
    wait during which even the right password is not checked, then a lockout that only
    unlock_user lifts; a right password resets the count."""
    from storage import LoginPolicy
    ustore.add_user("alice", PW, "annotator")
    pol = LoginPolicy(free_failures=2, base_delay_s=0.2, max_delay_s=0.2, lock_after=4)
    assert ustore.attempt_login("alice", PW, pol).user is not None
    for _ in range(2):
        r = ustore.attempt_login("alice", "wrong password", pol)
        assert r.user is None and r.refusal is None
    assert r.retry_after_s == pytest.approx(0.2)
    r = ustore.attempt_login("alice", PW, pol)          # within the wait: not even checked
    assert r.user is None and "wait" in r.refusal and r.retry_after_s > 0
    time.sleep(0.25)
    assert ustore.attempt_login("ALICE", PW, pol).user is not None     # right: count reset
    assert ustore.get_user("alice").failed_logins == 0
    for _ in range(4):
        time.sleep(0.21)
        r = ustore.attempt_login("alice", "wrong password", pol)
    assert "locked" in r.refusal and ustore.get_user("alice").locked
    time.sleep(0.25)
    assert "locked" in ustore.attempt_login("alice", PW, pol).refusal  # the right one too
    assert not ustore.unlock_user("alice").locked
    assert ustore.attempt_login("alice", PW, pol).user is not None
    assert ustore.attempt_login("nobody", PW, pol).user is None        # unknown: no count, no error


def test_password_change_and_disable_bump_the_session_epoch(ustore):
    """Issue 17, finding 5: sessions logged in under an older epoch end; enabling a
    disabled account again does not bring its old epoch back."""
    ustore.add_user("bob", PW, "annotator")
    e0 = ustore.session_epoch("Bob")
    ustore.set_password("bob", PW + " new")
    e1 = ustore.session_epoch("bob")
    assert e1 > e0
    ustore.disable_user("bob")
    assert ustore.session_epoch("bob") is None
    ustore.enable_user("bob")
    assert ustore.session_epoch("bob") > e1
    assert ustore.session_epoch("nobody") is None


def test_users_unlock_command(ustore, capsys):
    from storage import LoginPolicy
    ustore.add_user("carl", PW, "annotator")
    for _ in range(3):
        ustore.attempt_login("carl", "wrong password", LoginPolicy(free_failures=5, lock_after=3))
    assert ustore.get_user("carl").locked
    assert main(["users", "unlock", "carl", "--db", ustore.url, "--data-dir", str(ustore.data_dir)]) == 0
    assert not ustore.get_user("carl").locked and "unlocked" in capsys.readouterr().out


def test_self_review_command(ustore, project, capsys):
    common = ["--db", ustore.url, "--data-dir", str(ustore.data_dir)]
    assert main(["self-review", "p", *common]) == 0 and "refused" in capsys.readouterr().out
    assert main(["self-review", "p", "on", *common]) == 0 and "allowed" in capsys.readouterr().out
    assert ustore.get_project("p").allow_self_review


def test_images_remove_restore_removed_commands(ustore, project, png_bytes, capsys):
    common = ["--db", ustore.url, "--data-dir", str(ustore.data_dir)]
    iid = ustore.add_image("p", png_bytes(np.zeros((32, 48, 3), np.uint8)), "a.png").id
    other = ustore.create_project("q", ["sky"])
    assert main(["images", "remove", "p", str(iid), *common]) == 0 and "is now out of" in capsys.readouterr().out
    assert ustore.get_image(iid).removed and ustore.count_images("p")["total"] == 0
    assert main(["images", "removed", "p", *common]) == 0 and capsys.readouterr().out == f"{iid}\ta.png\tunlabelled\n"
    assert main(["images", "restore", other.name, str(iid), *common]) == 2       # another project's id
    assert "has no image" in capsys.readouterr().err and ustore.get_image(iid).removed
    assert main(["images", "restore", "p", str(iid), *common]) == 0 and "is back in" in capsys.readouterr().out
    assert not ustore.get_image(iid).removed
    acts = [(a.action, a.user) for a in ustore.list_activity("p", action=["image_removed", "image_restored"])]
    assert acts == [("image_restored", "cli"), ("image_removed", "cli")]


def test_others_unlabelled_command(ustore, project, png_bytes, capsys):
    """The open-set setting from the command line, as on the Projects screen: a change
    forgets the stored predictions (made the other way) and is recorded; the same value
    again changes nothing."""
    common = ["--db", ustore.url, "--data-dir", str(ustore.data_dir)]
    iid = ustore.add_image("p", png_bytes(np.zeros((32, 48, 3), np.uint8)), "a.png").id
    mv = ustore.add_model_version("p", "/w/v1", activate=True)
    ustore.save_prediction(iid, mv.id, np.zeros((32, 48), np.uint8), 0.5)
    assert main(["others-unlabelled", "p", *common]) == 0
    assert "painted as the nearest class" in capsys.readouterr().out
    assert ustore.get_prediction(iid, mv.id) is not None       # showing changes nothing
    assert main(["others-unlabelled", "p", "on", *common]) == 0
    out = capsys.readouterr().out
    assert "1 stored prediction(s) forgotten" in out and "left unlabelled" in out
    assert ustore.get_project("p").others_unlabelled and ustore.get_prediction(iid, mv.id) is None
    acts = ustore.list_activity("p", action="classes_changed")
    assert len(acts) == 1 and "left unlabelled" in acts[0].subject and acts[0].user == "cli"
    ustore.save_prediction(iid, mv.id, np.zeros((32, 48), np.uint8), 0.5)
    assert main(["others-unlabelled", "p", "on", *common]) == 0       # already on: kept
    assert "forgotten" not in capsys.readouterr().out and ustore.get_prediction(iid, mv.id) is not None
    assert main(["others-unlabelled", "p", "off", *common]) == 0
    assert not ustore.get_project("p").others_unlabelled
    assert main(["others-unlabelled", "nope", *common]) == 2           # an unknown project: an error


@pytest.mark.parametrize("bad", ["road\x00", "sky\u200b", "\u202ecar", "a\x1bb", "\ufeffbom"])
def test_names_with_control_or_invisible_characters_are_refused(ustore, bad):
    """Issue 17, finding 8: one rule (common.labels) for class, project and user names."""
    with pytest.raises(ValidationError, match="invisible or control"):
        ustore.add_user(bad, PW, "annotator")
    with pytest.raises(ValidationError, match="invisible or control"):
        ustore.create_project(bad, ["road"])
    with pytest.raises(ValidationError, match="invisible or control"):
        ustore.create_project("fine", ["road", bad])


def test_the_sqlite_file_and_its_folder_are_private(make_store, backend):
    import stat
    if backend != "sqlite":
        pytest.skip("a file only on SQLite")
    s = make_store()
    s.add_user("x", PW, "annotator")                # a write: the WAL and SHM exist
    d = s.data_dir
    assert stat.S_IMODE(d.stat().st_mode) & 0o007 == 0
    names = {f.name: stat.S_IMODE(f.stat().st_mode) for f in d.glob("studio.db*")}
    assert set(names) == {"studio.db", "studio.db-wal", "studio.db-shm"} and set(names.values()) == {0o600}


def test_projects_commands_and_members_lists_skip_removed_projects(ustore, project, capsys):
    common = ["--db", ustore.url, "--data-dir", str(ustore.data_dir)]
    ustore.add_user("ann", "pw-ann-123456", "annotator")
    ustore.add_user("root", "pw-root-123456", "admin")
    ustore.add_member("p", "ann")
    assert main(["projects", "rename", "p", "streets", *common]) == 0
    assert capsys.readouterr().out == "'p' is now 'streets'\n"
    assert main(["projects", "remove", "streets", *common]) == 0 and "is now removed" in capsys.readouterr().out
    assert ustore.projects_for("ann") == [] and ustore.projects_for("root") == []
    assert ustore.can_access("ann", "streets")      # an open page of it still saves: nothing is lost
    assert main(["projects", "list", *common]) == 0
    assert capsys.readouterr().out == f"{project.id}\tstreets\t0\tremoved\n"
    assert main(["projects", "restore", "streets", *common]) == 0 and "is back" in capsys.readouterr().out
    assert [p.name for p in ustore.projects_for("ann")] == ["streets"]
    acts = [(a.action, a.user) for a in ustore.list_activity("streets", action=[
        "project_renamed", "project_removed", "project_restored"])]
    assert acts == [("project_restored", "cli"), ("project_removed", "cli"), ("project_renamed", "cli")]
    assert main(["projects", "rename", "nope", "x", *common]) == 2 and "does not exist" in capsys.readouterr().err
