"""The store (app/store) on SQLite and on a real PostgreSQL server: migrations, ownership,
turns kept as they grow, files, export, and clear errors for databases it cannot use."""

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.store import conversations as talk
from app.store.database import StoreError, migrate, open_store, schema_version
from app.store.files import StoreFull, keep_file

HEAD = "0002"


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "shelf.jpg"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(path)
    return path


def test_an_empty_database_gets_the_whole_schema(store):
    assert schema_version(store) == HEAD


def test_a_conversation_is_kept_turn_by_turn_and_only_for_its_owner(store, photo):
    cid = talk.start(store, "browser:a", "What is on the shelf next to the window?")
    turn = talk.add_turn(store, "browser:a", cid, "What is on the shelf?", [(photo, "shelf")])
    talk.save_answer(store, "browser:a", turn, "A red", "answering")
    talk.save_answer(store, "browser:a", turn, "A red box.", "done", timings_ms={"total": 12.34})

    [stored] = talk.turns(store, "browser:a", cid)
    assert (stored.question, stored.answer, stored.state) == (
        "What is on the shelf?",
        "A red box.",
        "done",
    )
    assert stored.timings_ms == {"total": 12.3}
    [(kept, label)] = stored.photos
    assert label == "shelf" and kept.read_bytes() == photo.read_bytes()
    assert kept.is_relative_to(store.data_dir / "media")
    assert [s.title for s in talk.listed(store, "browser:a")] == [
        "What is on the shelf next to the window?"
    ]
    assert talk.listed(store, "browser:b") == []  # another browser sees none of it
    for peek in (
        lambda: talk.turns(store, "browser:b", cid),
        lambda: talk.rename(store, "browser:b", cid, "mine now"),
        lambda: talk.delete_conversation(store, "browser:b", cid),
        lambda: talk.save_answer(store, "browser:b", turn, "overwritten", "done"),
        lambda: talk.add_turn(store, "browser:b", cid, "and this?"),
    ):
        with pytest.raises(talk.NotFound):
            peek()
    assert talk.turns(store, "browser:a", cid)[0].answer == "A red box."


def test_the_newest_conversation_is_listed_first_and_can_be_renamed(store):
    first = talk.start(store, "user:ana", "first")
    second = talk.start(store, "user:ana", "second " + "word " * 40)
    assert [s.id for s in talk.listed(store, "user:ana")] == [second, first]
    assert talk.listed(store, "user:ana")[0].title.endswith("…")
    talk.add_turn(store, "user:ana", first, "again")  # using it moves it to the top
    assert [s.id for s in talk.listed(store, "user:ana")] == [first, second]
    talk.rename(store, "user:ana", first, "  Groceries  ")
    assert talk.listed(store, "user:ana")[0].title == "Groceries"
    with pytest.raises(ValueError, match="empty"):
        talk.rename(store, "user:ana", first, "   ")


def test_an_answer_left_unfinished_is_reopened_as_cut_off(store):
    cid = talk.start(store, "browser:a", "tell me a story")
    turn = talk.add_turn(store, "browser:a", cid, "tell me a story")
    talk.save_answer(store, "browser:a", turn, "Once upon a", "answering")
    assert talk.mark_cut_off(store, "browser:a", cid) == 1
    [stored] = talk.turns(store, "browser:a", cid)
    assert (stored.answer, stored.state) == ("Once upon a", "cut off")
    assert "*(cut off)*" in talk.export_markdown(store, "browser:a", cid)


def test_deleting_a_conversation_deletes_its_turns_and_files(store, photo):
    cid = talk.start(store, "browser:a", "what is this?")
    talk.add_turn(store, "browser:a", cid, "what is this?", [(photo, "p")])
    [(kept, _)] = talk.turns(store, "browser:a", cid)[0].photos
    talk.delete_conversation(store, "browser:a", cid)
    assert not kept.exists()
    assert talk.listed(store, "browser:a") == []
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM turns")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM media")).scalar() == 0


def test_export_holds_every_turn_with_its_media(store, photo):
    cid = talk.start(store, "browser:a", "what colour?")
    turn = talk.add_turn(store, "browser:a", cid, "what colour?", [(photo, "shelf")])
    talk.save_answer(store, "browser:a", turn, "Red.", "done")
    exported = json.loads(talk.export_json_text(store, "browser:a", cid))
    [one] = exported["turns"]
    assert (one["question"], one["answer"]) == ("what colour?", "Red.")
    assert one["photos"][0]["data"]  # base64 of the photo itself
    markdown = talk.export_markdown(store, "browser:a", cid)
    assert "**You**" in markdown and "what colour?" in markdown and "Red." in markdown


def test_migrations_run_from_the_previous_schema_and_keep_its_rows(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at) "
                "VALUES ('c1', 'browser:a', 'kept', '2026-01-01', '2026-01-01')"
            )
        )
    engine.dispose()
    store = open_store(f"sqlite:///{tmp_path / 'old.db'}", tmp_path)
    assert schema_version(store) == HEAD
    assert [s.title for s in talk.listed(store, "browser:a")] == ["kept"]
    store.close()


def test_migrations_run_from_the_previous_schema_on_postgresql(postgres_server, tmp_path):
    url = postgres_server.new_database()
    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    migrate(engine, "0001")
    engine.dispose()
    store = open_store(url, tmp_path)
    assert schema_version(store) == HEAD
    store.close()


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path):
    (tmp_path / "notes.db").write_bytes(b"these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a database"):
        open_store(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path)


def test_another_programs_database_is_refused_and_left_alone(tmp_path):
    connection = sqlite3.connect(tmp_path / "other.db")
    connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="not a Lunettes database.*invoices"):
        open_store(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    tables = sqlite3.connect(tmp_path / "other.db").execute(
        "SELECT name FROM sqlite_master WHERE type='table'"
    )
    assert [row[0] for row in tables] == ["invoices"]


def test_a_database_from_a_newer_lunettes_is_refused(tmp_path):
    store = open_store(None, tmp_path)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    store.close()
    with pytest.raises(StoreError, match="newer Lunettes"):
        open_store(None, tmp_path)


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    from tests.postgres import free_port

    with pytest.raises(StoreError, match="cannot open the database"):
        open_store(f"postgresql://nobody@127.0.0.1:{free_port()}/none", tmp_path)


def test_a_full_disk_is_a_clear_error_and_leaves_no_half_file(tmp_path, photo, monkeypatch):
    import errno
    import shutil

    def full(source, target):
        Path(target).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(StoreFull, match="cannot keep this photo.*No space left"):
        keep_file(tmp_path, photo, "photo")
    assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]


def test_several_writers_at_once_stay_consistent(tmp_path):
    """Eight threads (tabs) each add 20 turns to one conversation: all 160 are kept with
    their answers, each tab's in the order it asked, none lost to 'database is locked'."""
    from concurrent.futures import ThreadPoolExecutor

    store = open_store(None, tmp_path)
    cid = talk.start(store, "browser:a", "busy")

    def write(tab: int) -> None:
        for k in range(20):
            turn = talk.add_turn(store, "browser:a", cid, f"tab {tab} question {k}")
            talk.save_answer(store, "browser:a", turn, f"answer {tab}.{k}", "done")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    stored = talk.turns(store, "browser:a", cid)
    assert len(stored) == 160
    assert {t.answer for t in stored} == {f"answer {t}.{k}" for t in range(8) for k in range(20)}
    for tab in range(8):
        asked = [t.question for t in stored if t.question.startswith(f"tab {tab} ")]
        assert asked == [f"tab {tab} question {k}" for k in range(20)]
    store.close()
