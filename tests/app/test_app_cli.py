import pytest

import app
from segui.handlers import DEMO_PROJECT

from .conftest import _PREDICTORS


def test_options_and_bad_auth():
    a = app.parse_args(["--data-dir", "d", "--db", "sqlite:///x.db", "--model", "m", "--host", "0.0.0.0",
                        "--port", "9000", "--auth", "alice:pw:with:colons"])
    assert (a.data_dir, a.db, a.model, a.host, a.port, a.auth) == \
        ("d", "sqlite:///x.db", "m", "0.0.0.0", 9000, "alice:pw:with:colons")
    d = app.parse_args([])
    assert (d.host, d.port, d.data_dir, d.db, d.auth) == ("127.0.0.1", 7860, "data", None, None)
    for bad in (["--auth", "nopassword"], ["--auth", ":pw"]):
        with pytest.raises(SystemExit):
            app.parse_args(bad)


def test_create_makes_the_demo_once(tmp_path, monkeypatch):
    import segui.handlers as h
    real_init = h.Studio.__init__

    def init(self, *a, **kw):      # share the test session's loaded model
        real_init(self, *a, **kw)
        self._predictors = _PREDICTORS
    monkeypatch.setattr(h.Studio, "__init__", init)
    studio, blocks = app.create(app.parse_args(["--data-dir", str(tmp_path)]))
    assert studio.project_names() == [DEMO_PROJECT]
    assert studio.store.count_images(DEMO_PROJECT)["total"] == 4
    assert (tmp_path / "studio.db").exists()
    studio.store.close()
    studio, _ = app.create(app.parse_args(["--data-dir", str(tmp_path)]))
    assert studio.store.count_images(DEMO_PROJECT)["total"] == 4     # not imported twice
    studio.store.close()
    studio, _ = app.create(app.parse_args(["--data-dir", str(tmp_path / "empty"), "--no-demo"]))
    assert studio.project_names() == []
    studio.store.close()
