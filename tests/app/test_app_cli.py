import os
import signal
import time

import pytest

import app
from segui.handlers import DEMO_PROJECT

from .conftest import _PREDICTORS


def test_options_and_bad_auth(monkeypatch, capsys):
    monkeypatch.setenv("SEGUI_AUTH_PASSWORD", "pw:with:colons")
    monkeypatch.delenv("STUDIO_DB_URL", raising=False)
    a = app.parse_args(["--data-dir", "d", "--db", "sqlite:///x.db", "--model", "m", "--host", "0.0.0.0",
                        "--port", "9000", "--auth", "alice"])
    assert (a.data_dir, a.db, a.model, a.host, a.port, a.auth, a.auth_password) == \
        ("d", "sqlite:///x.db", "m", "0.0.0.0", 9000, "alice", "pw:with:colons")
    d = app.parse_args([])
    assert (d.host, d.port, d.data_dir, d.db, d.auth, d.auth_password) == ("127.0.0.1", 7860, "data", None, None, None)
    # instant adaptation: on unless turned off; the old switch still parses
    assert d.instant_adaptation and app.parse_args(["--instant-adaptation"]).instant_adaptation
    assert not app.parse_args(["--no-instant-adaptation"]).instant_adaptation
    # the network's input scale: 1 unless asked; out of range is refused before anything starts
    assert d.predict_scale == 1.0 and app.parse_args(["--predict-scale", "1.5"]).predict_scale == 1.5
    # each image also seen mirrored: on unless turned off
    assert d.predict_flip and not app.parse_args(["--no-predict-flip"]).predict_flip
    for bad in (["--auth", ""], ["--auth", ":pw"], ["--predict-scale", "0"], ["--predict-scale", "9"]):
        with pytest.raises(SystemExit):
            app.parse_args(bad)
    # the database URL (a password in it) can come from the environment, as the workers' does
    monkeypatch.setenv("STUDIO_DB_URL", "postgresql+psycopg://u:secret@h/db")
    assert app.parse_args([]).db == "postgresql+psycopg://u:secret@h/db"
    assert app.parse_args(["--db", "sqlite:///x.db"]).db == "sqlite:///x.db"


def test_the_auth_password_never_comes_from_the_command_line(monkeypatch, capsys, tmp_path):
    """A password in argv is readable by anyone on the machine (ps): ``--auth user:pw`` is
    refused and says where the password goes; it comes from $SEGUI_AUTH_PASSWORD or the
    terminal's prompt, is checked as an account's would be, and is never printed."""
    monkeypatch.delenv("SEGUI_AUTH_PASSWORD", raising=False)
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "alice:secret password"])
    err = capsys.readouterr().err
    assert "--auth alice" in err and "SEGUI_AUTH_PASSWORD" in err and "secret password" not in err
    # no terminal to ask at (pytest's stdin), no variable: refused, saying which variable
    # (when the login is decided: a database with accounts refuses --auth before any prompt)
    from segui.handlers import Studio
    from storage import Store

    studio = Studio(Store(data_dir=tmp_path / "d"))
    args = app.parse_args(["--auth", "alice"])
    assert args.auth_password is None
    with pytest.raises(SystemExit, match="set SEGUI_AUTH_PASSWORD"):
        app.login_for(args, studio)
    # at a terminal: asked once, without echo
    asked = []
    monkeypatch.setattr(app.sys, "stdin", type("Tty", (), {"isatty": lambda self: True})())
    monkeypatch.setattr(app.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed password")
    args = app.parse_args(["--auth", "alice"])
    assert asked == [] and app.login_for(args, studio) == ("alice", "typed password")
    assert app.login_for(args, studio) == ("alice", "typed password")    # (asked once, not per call)
    assert len(asked) == 1 and "alice" in asked[0]
    # a database with accounts: --auth refused before anything is asked
    from argon2 import PasswordHasher

    studio.store.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    studio.store.add_user("ada", "long enough pw", "admin")
    asked.clear()
    with pytest.raises(SystemExit, match="the database has accounts"):
        app.login_for(app.parse_args(["--auth", "alice"]), Studio(studio.store))
    assert asked == []
    # checked as an account's password: too short is refused, and not echoed
    monkeypatch.setenv("SEGUI_AUTH_PASSWORD", "short")
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "alice"])
    err = capsys.readouterr().err
    assert "at least 8 characters" in err and "short" not in err


def test_who_may_log_in_and_where_the_app_may_listen(tmp_path, monkeypatch):
    """Accounts -> their login (a callable); --auth -> that pair; neither -> loopback only,
    unless --allow-anyone; accounts and --auth together are refused as ambiguous."""
    from argon2 import PasswordHasher

    from segui.handlers import Studio
    from storage import Store

    monkeypatch.setenv("SEGUI_AUTH_PASSWORD", "al's password")
    studio = Studio(Store(data_dir=tmp_path / "d"))
    assert app.login_for(app.parse_args([]), studio) is None
    assert app.login_for(app.parse_args(["--auth", "al"]), studio) == ("al", "al's password")
    assert app.login_for(app.parse_args(["--host", "0.0.0.0", "--auth", "al"]), studio) == ("al", "al's password")
    with pytest.raises(SystemExit, match="refusing to serve 0.0.0.0 without a login"):
        app.login_for(app.parse_args(["--host", "0.0.0.0"]), studio)
    assert app.login_for(app.parse_args(["--host", "0.0.0.0", "--allow-anyone"]), studio) is None
    studio.store.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    studio.store.add_user("ada", "long enough pw", "admin")
    # the running app (no login at launch) stays one person's: nobody is locked out ...
    assert not studio.uses_accounts() and studio.principal(None).role == "admin"
    # ... and the next start requires logins
    studio = Studio(studio.store)
    login = app.login_for(app.parse_args(["--host", "0.0.0.0"]), studio)
    assert login("ada", "long enough pw") is True and login("ada", "wrong password") is False
    with pytest.raises(SystemExit, match="drop --auth"):
        app.login_for(app.parse_args(["--auth", "al"]), studio)
    studio.store.close()


def test_create_makes_the_demo_once(tmp_path, monkeypatch):
    import segui.handlers as h
    real_init = h.Studio.__init__

    def init(self, *a, **kw):      # share the test session's loaded model
        real_init(self, *a, predictors=_PREDICTORS, **kw)
    monkeypatch.setattr(h.Studio, "__init__", init)
    studio, blocks = app.create(app.parse_args(["--data-dir", str(tmp_path)]))
    assert studio.project_names() == [DEMO_PROJECT]
    assert studio.store.count_images(DEMO_PROJECT)["total"] == 4 + 10   # to label, labelled
    assert (tmp_path / "studio.db").exists()
    studio.store.close()
    studio, _ = app.create(app.parse_args(["--data-dir", str(tmp_path)]))
    assert studio.store.count_images(DEMO_PROJECT)["total"] == 14    # not imported twice
    studio.store.close()
    studio, _ = app.create(app.parse_args(["--data-dir", str(tmp_path / "empty"), "--no-demo"]))
    assert studio.project_names() == []
    studio.store.close()


def catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_main_starts_one_local_worker_and_stops_it_when_the_app_exits(tmp_path, monkeypatch):
    from storage import Store

    store = Store(data_dir=tmp_path / "data")
    seen = {}

    class FakeStudio:
        device_name = "cpu"

        def __init__(self):
            self.store = store

        def uses_accounts(self):
            return False

        def start_explore_worker(self):   # the Explore screen's metrics thread: started once per run
            seen["explore"] = seen.get("explore", 0) + 1

        def stop_explore_worker(self):    # ... and stopped when the app exits
            seen["explore_stopped"] = seen.get("explore_stopped", 0) + 1

        def score_unscored(self):         # the second reviewer on unscored submissions: a thread per run
            seen["scored"] = seen.get("scored", 0) + 1

        def warm_up(self):                # the label sets' BERT encoding: beside the server, once per run
            seen["warm"] = seen.get("warm", 0) + 1

    class FakeBlocks:   # stands for the Gradio app: launch() blocks until the app exits
        def queue(self, **kw):
            return self

        def launch(self, **kw):
            for _ in range(500):   # the scoring and warm-up threads have started (they run beside the app)
                if seen.get("scored") and seen.get("warm"):
                    break
                time.sleep(0.01)
            w = seen["worker"]
            if w is None:          # --no-worker
                return
            assert w.running
            argv = ""
            for _ in range(200):   # empty while the child is still inside exec (on a loaded machine)
                with open(f"/proc/{w.proc.pid}/cmdline", "rb") as f:
                    argv = f.read().replace(b"\0", b" ").decode()
                if argv:
                    break
                time.sleep(0.01)
            seen["argv"] = argv
            assert "-m jobs.worker" in argv and store.url not in argv       # the URL goes in the environment
            assert f"--parent-pid {os.getpid()}" in argv
            with open(f"/proc/{w.proc.pid}/environ", "rb") as f:     # --auth's password stays with the app
                assert b"SEGUI_AUTH_PASSWORD" not in f.read()
            # let it get to its loop (its SIGTERM handler installed) so the stop below is the graceful one
            deadline = time.time() + 30
            while time.time() < deadline and not catches_sigterm(w.proc.pid):
                time.sleep(0.1)

    real_start = app.start_worker

    def start_worker(args, st):
        seen["worker"] = real_start(args, st)
        return seen["worker"]

    def create(args, words=True):        # the server does not wait for BERT
        seen["words"] = words
        return FakeStudio(), FakeBlocks()

    monkeypatch.setattr(app, "create", create)
    monkeypatch.setattr(app, "start_worker", start_worker)
    monkeypatch.setenv("SEGUI_AUTH_PASSWORD", "not for the worker")
    try:
        assert app.main(["--data-dir", str(tmp_path / "data")]) == 0
        assert "argv" in seen and not seen["worker"].running and seen["worker"].proc.returncode == 0
        assert seen["explore"] == 1 and seen["explore_stopped"] == 1 and seen["scored"] == 1
        assert seen["words"] is False and seen["warm"] == 1
        seen.clear()
        assert app.main(["--data-dir", str(tmp_path / "data"), "--no-worker"]) == 0
        assert seen == {"worker": None, "explore": 1, "explore_stopped": 1, "scored": 1, "words": False, "warm": 1}
    finally:
        if seen.get("worker") is not None:
            seen["worker"].stop()
        store.close()
