"""projects.auto_finetune_every (migration 0005): the Store's setter/getter, what the app
counts (submissions since a time) and ``python -m storage auto-finetune``."""
import numpy as np
import pytest

from storage.__main__ import main
from storage.errors import ValidationError


def test_off_by_default_and_round_trips(store, project, make_store):
    assert store.auto_finetune_every("p") is None
    assert store.get_project("p").auto_finetune_every is None
    info = store.set_auto_finetune_every("p", 5)
    assert info.auto_finetune_every == 5
    assert make_store().auto_finetune_every(project.id) == 5   # stored, not cached
    assert store.set_auto_finetune_every("p", 0).auto_finetune_every is None   # 0 = off
    store.set_auto_finetune_every("p", 3)
    assert store.set_auto_finetune_every("p", None).auto_finetune_every is None
    assert [p.auto_finetune_every for p in store.list_projects()] == [None]


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_refuses_what_is_not_a_count(store, project, bad):
    with pytest.raises(ValidationError):
        store.set_auto_finetune_every("p", bad)
    assert store.auto_finetune_every("p") is None


def test_submitted_since_counts_submitted_revisions_only(store, project, image):
    m = np.zeros((32, 48), np.uint8)
    assert store.submitted_since("p", None) == 0
    a1 = store.save_annotation(image.id, m, "ann", "submitted", 0)
    store.save_annotation(image.id, m, "ann", "draft", 1)
    assert store.submitted_since("p", None) == 1
    assert store.submitted_since("p", a1.saved_at) == 0
    store.save_annotation(image.id, m, "ann", "submitted", 2)
    assert store.submitted_since("p", a1.saved_at) == 1
    assert store.submitted_since("p", None) == 2


def test_cli_sets_and_shows_it(store, project, db_url, tmp_path, capsys):
    common = (["--db", db_url] if db_url else []) + ["--data-dir", str(tmp_path / "data")]
    assert main(["auto-finetune", "p", "4", *common]) == 0
    assert "every 4 submitted" in capsys.readouterr().out
    assert store.auto_finetune_every("p") == 4
    assert main(["auto-finetune", "p", *common]) == 0
    assert "every 4" in capsys.readouterr().out
    assert main(["auto-finetune", "p", "0", *common]) == 0
    assert capsys.readouterr().out.strip() == "p: off"
    assert store.auto_finetune_every("p") is None
    assert main(["auto-finetune", "p", "-2", *common]) == 2
    assert main(["auto-finetune", "nope", "2", *common]) == 2
