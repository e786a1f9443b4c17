"""Alembic migrations on SQLite and PostgreSQL: 0002 (teams) up and down on a database
that holds data, and the CHECK constraints list exactly the enums' values."""
import re

import pytest
from sqlalchemy import inspect, text

from storage import db
from storage.models import Action, ReviewDecision, ReviewState, Role, TrainingSource, utcnow

HEAD = "0009"
TEAM_TABLES = {"users", "project_members", "reviews", "activity"}


@pytest.fixture
def url(db_url, tmp_path):
    return db_url or f"sqlite:///{tmp_path / 'm.db'}"


def _fill_0001(engine):
    """A project with three images: unlabelled, draft only, submitted then a draft."""
    now = utcnow()
    with engine.begin() as c:
        c.execute(text("INSERT INTO projects (id, name, ignore_index, created_at) VALUES (1, 'p', 255, :t)"),
                  {"t": now})
        for i, (rev, status) in enumerate([(0, "unlabelled"), (1, "draft"), (2, "draft")], start=1):
            c.execute(text("INSERT INTO images (id, project_id, sha256, filename, format, normalised, "
                           "width, height, split, created_at, revision, status) VALUES (:i, 1, :sha, "
                           "'x.png', 'PNG', :f, 4, 4, 'train', :t, :rev, :st)"),
                      {"i": i, "sha": f"{i:064x}", "f": False, "t": now, "rev": rev, "st": status})
        rows = [(2, 1, "draft"), (3, 1, "submitted"), (3, 2, "draft")]
        for image_id, rev, status in rows:
            c.execute(text("INSERT INTO annotations (image_id, revision, author, status, png, created_at) "
                           "VALUES (:i, :r, 'a', :s, :png, :t)"),
                      {"i": image_id, "r": rev, "s": status, "png": b"\x89PNG", "t": now})


def _counts(engine):
    with engine.connect() as c:
        return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("projects", "images", "annotations")}


def test_0002_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        assert db.current_revision(engine) == "0001"
        _fill_0001(engine)
        before = _counts(engine)
        db.upgrade(engine, "0002")
        assert db.current_revision(engine) == "0002"
        insp = inspect(engine)
        assert TEAM_TABLES <= set(insp.get_table_names())
        assert "review" in {c["name"] for c in insp.get_columns("images")}
        assert "training_source" in {c["name"] for c in insp.get_columns("projects")}
        with engine.connect() as c:
            review = dict(c.execute(text("SELECT id, review FROM images")).all())
            sources = c.execute(text("SELECT training_source FROM projects")).scalars().all()
        # a submission made before reviews existed waits for one; later drafts don't matter
        assert review == {1: None, 2: None, 3: "pending"}
        assert sources == [None]                            # automatic
        assert _counts(engine) == before                    # no table was rebuilt or emptied
        db.downgrade(engine, "0001")
        assert db.current_revision(engine) == "0001"
        insp = inspect(engine)
        assert not TEAM_TABLES & set(insp.get_table_names())
        assert "review" not in {c["name"] for c in insp.get_columns("images")}
        assert "training_source" not in {c["name"] for c in insp.get_columns("projects")}
        assert _counts(engine) == before
        db.upgrade(engine)                                  # and up again, to the head
        assert db.current_revision(engine) == HEAD
        assert _counts(engine) == before
    finally:
        engine.dispose()


def test_0003_review_score_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0002")
        before = _counts(engine)
        db.upgrade(engine, "0003")
        assert db.current_revision(engine) == "0003"
        assert {"review_score", "review_evidence"} <= {c["name"] for c in inspect(engine).get_columns("images")}
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM images WHERE review_score IS NOT NULL")).scalar() == 0
            review = dict(c.execute(text("SELECT id, review FROM images")).all())
        assert review == {1: None, 2: None, 3: "pending"}   # 0002's data is untouched
        assert _counts(engine) == before
        db.downgrade(engine, "0002")
        assert not {"review_score", "review_evidence"} & {c["name"] for c in inspect(engine).get_columns("images")}
        assert _counts(engine) == before
    finally:
        engine.dispose()


def test_0004_login_security_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0003")
        with engine.begin() as c:
            c.execute(text("INSERT INTO users (id, name, name_key, password_hash, role, disabled, created_at) "
                           "VALUES (1, 'Ann', 'ann', 'x', 'annotator', :f, :t)"), {"f": False, "t": utcnow()})
        before = _counts(engine)
        db.upgrade(engine, "0004")
        assert db.current_revision(engine) == "0004"
        cols = {c["name"] for c in inspect(engine).get_columns("users")}
        assert {"failed_logins", "last_failed_login_at", "locked", "session_epoch"} <= cols
        with engine.connect() as c:
            row = c.execute(text("SELECT failed_logins, locked, session_epoch FROM users")).one()
            allow = c.execute(text("SELECT allow_self_review FROM projects")).scalar_one()
        assert (row[0], bool(row[1]), row[2], bool(allow)) == (0, False, 0, False)   # the defaults
        assert _counts(engine) == before
        db.downgrade(engine, "0003")
        assert "session_epoch" not in {c["name"] for c in inspect(engine).get_columns("users")}
        assert "allow_self_review" not in {c["name"] for c in inspect(engine).get_columns("projects")}
        with engine.connect() as c:
            assert c.execute(text("SELECT name FROM users")).scalar_one() == "Ann"
        assert _counts(engine) == before
    finally:
        engine.dispose()


def test_0005_auto_finetune_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0004")
        before = _counts(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
        assert "auto_finetune_every" in {c["name"] for c in inspect(engine).get_columns("projects")}
        with engine.begin() as c:
            assert c.execute(text("SELECT auto_finetune_every FROM projects")).scalar_one() is None   # off
            c.execute(text("UPDATE projects SET auto_finetune_every = 7"))
        assert _counts(engine) == before
        db.downgrade(engine, "0004")
        assert db.current_revision(engine) == "0004"
        assert "auto_finetune_every" not in {c["name"] for c in inspect(engine).get_columns("projects")}
        assert _counts(engine) == before
        db.upgrade(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT auto_finetune_every FROM projects")).scalar_one() is None
    finally:
        engine.dispose()


def test_0006_explore_metrics_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0005")
        before = _counts(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert {"image_metrics", "image_class_areas", "image_confusion"} <= tables
        assert "entropy" in {c["name"] for c in inspect(engine).get_columns("predictions")}
        indexes = {i["name"] for i in inspect(engine).get_indexes("images")}
        assert {"ix_images_project_split", "ix_images_project_annotated_at", "ix_images_project_review_score"} <= indexes
        with engine.begin() as c:
            c.execute(text("INSERT INTO image_metrics (image_id, project_id, revision, palette, computed_at) "
                           "VALUES (3, 1, 2, 'x', :t)"), {"t": utcnow()})
            c.execute(text("INSERT INTO image_confusion (image_id, project_id, true_class, pred_class, pixels) "
                           "VALUES (3, 1, 0, 1, 5)"))
        assert _counts(engine) == before
        db.downgrade(engine, "0005")
        assert db.current_revision(engine) == "0005"
        assert not {"image_metrics", "image_class_areas", "image_confusion"} & set(inspect(engine).get_table_names())
        assert "entropy" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
        assert _counts(engine) == before
        db.upgrade(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM image_metrics")).scalar() == 0
    finally:
        engine.dispose()


def test_0007_others_unlabelled_up_and_down_keep_data(url):
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0006")
        before = _counts(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
        with engine.begin() as c:   # existing projects: off, as before
            assert c.execute(text("SELECT others_unlabelled FROM projects")).scalar_one() in (False, 0)
            c.execute(text("UPDATE projects SET others_unlabelled = true"))
        assert _counts(engine) == before
        db.downgrade(engine, "0006")
        assert "others_unlabelled" not in {c["name"] for c in inspect(engine).get_columns("projects")}
        assert _counts(engine) == before
        db.upgrade(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT others_unlabelled FROM projects")).scalar_one() in (False, 0)
    finally:
        engine.dispose()


def test_0008_image_removed_up_and_down_keep_data(url):
    """A nullable column (every image stays in its project) and the activity CHECK with
    the two new actions: SQLite rebuilds the table, keeping its rows."""
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0007")
        with engine.begin() as c:
            c.execute(text("INSERT INTO activity (project_id, user_name, action, subject, created_at) "
                           "VALUES (1, 'ada', 'export', 'folder export', :t)"), {"t": utcnow()})
        before = _counts(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
        with engine.begin() as c:
            assert c.execute(text("SELECT count(*) FROM images WHERE removed_at IS NULL")).scalar_one() == 3
            assert c.execute(text("SELECT user_name, action FROM activity")).one() == ("ada", "export")
            c.execute(text("UPDATE images SET removed_at = :t WHERE id = 1"), {"t": utcnow()})
            c.execute(text("INSERT INTO activity (project_id, user_name, action, subject, created_at) "
                           "VALUES (1, 'ada', 'image_removed', 'x.png', :t)"), {"t": utcnow()})
        assert "image_removed" in _check_sql(engine, "activity", "ck_activity_action")
        with pytest.raises(Exception), engine.begin() as c:      # the CHECK still refuses others
            c.execute(text("INSERT INTO activity (project_id, action, subject, created_at) "
                           "VALUES (1, 'made_up', 'x', :t)"), {"t": utcnow()})
        assert _counts(engine) == before
        db.downgrade(engine, "0007")
        assert "removed_at" not in {c["name"] for c in inspect(engine).get_columns("images")}
        assert "image_removed" not in _check_sql(engine, "activity", "ck_activity_action")
        with engine.connect() as c:
            assert c.execute(text("SELECT action FROM activity")).scalars().all() == ["export"]
        assert _counts(engine) == before
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_0009_project_removed_up_and_down_keep_data(url):
    """Projects gain a nullable removed_at (every project stays in use) and the activity
    CHECK the three project actions; down again, their records go and the rest stays."""
    engine = db.make_engine(url)
    try:
        db.upgrade(engine, "0001")
        _fill_0001(engine)
        db.upgrade(engine, "0008")
        with engine.begin() as c:
            c.execute(text("INSERT INTO activity (project_id, user_name, action, subject, created_at) "
                           "VALUES (1, 'ada', 'image_removed', 'x.png', :t)"), {"t": utcnow()})
        before = _counts(engine)
        db.upgrade(engine, "0009")
        with engine.begin() as c:
            assert c.execute(text("SELECT removed_at FROM projects")).scalar_one() is None
            c.execute(text("UPDATE projects SET removed_at = :t, name = 'q'"), {"t": utcnow()})
            c.execute(text("INSERT INTO activity (project_id, user_name, action, subject, created_at) "
                           "VALUES (1, 'ada', 'project_removed', 'project q', :t)"), {"t": utcnow()})
        assert "project_renamed" in _check_sql(engine, "activity", "ck_activity_action")
        assert _counts(engine) == before
        db.downgrade(engine, "0008")
        assert "removed_at" not in {c["name"] for c in inspect(engine).get_columns("projects")}
        assert "project_removed" not in _check_sql(engine, "activity", "ck_activity_action")
        with engine.connect() as c:
            assert c.execute(text("SELECT action FROM activity")).scalars().all() == ["image_removed"]
            assert c.execute(text("SELECT name FROM projects")).scalar_one() == "q"   # a rename stays
        assert _counts(engine) == before
        db.upgrade(engine)
        assert db.current_revision(engine) == HEAD
    finally:
        engine.dispose()


def _check_sql(engine, table: str, name: str) -> str:
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            return c.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                  "WHERE conname = :n AND conrelid = to_regclass(:t)"),
                             {"n": name, "t": table}).scalar_one()
        ddl = c.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar_one()
        m = re.search(rf"CONSTRAINT {name} CHECK \((.*?)\)\s*(,|\)|$)", ddl, re.S)
        assert m, ddl
        return m.group(1)


@pytest.mark.parametrize("table, name, enum", [
    ("users", "ck_users_role", Role),
    ("reviews", "ck_reviews_decision", ReviewDecision),
    ("images", "ck_images_review", ReviewState),
    ("projects", "ck_projects_training_source", TrainingSource),
    ("activity", "ck_activity_action", Action),
])
def test_check_constraints_match_the_enums(store, table, name, enum):
    """Autogenerate does not compare CHECKs: this does, so an enum value added without a
    migration fails here."""
    values = set(re.findall(r"'([a-z_]+)'", _check_sql(store.engine, table, name)))
    assert values == {e.value for e in enum}
