"""The SQL event store: migrations from empty, atomic group appends, the concurrency guard."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from server.core.events import CanvasCreated, Event, LayerAdded
from server.store.base import AppendRequest, CommandRecord, ConcurrencyError
from server.store.migrate import alembic_config, current, upgrade
from server.store.sql import SQLEventStore, sqlite_url


def test_migrations_build_the_schema_from_an_empty_database(db_url):
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert current(db_url) is None
    upgrade(db_url)
    assert current(db_url) == head
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= {
            "canvases",
            "events",
            "commands",
            "snapshots",
            "renders",
            "tokens",
        }
        # The migrations and the table models describe the same schema.
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    upgrade(db_url)  # running again changes nothing
    assert current(db_url) == head
    engine.dispose()


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path):
    store = SQLEventStore(sqlite_url(tmp_path / "wal.db"))
    store.migrate()
    with store._writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


def event(canvas_id: str, seq: int, data) -> Event:
    return Event(canvas_id, seq, f"{canvas_id}-{seq}", data, "alice", None, 1.0)


def added(layer_id: str) -> LayerAdded:
    return LayerAdded(layer_id, "txt2img", {"prompt": "x"}, 1, (), layer_id)


def test_a_group_append_is_all_or_nothing(store: SQLEventStore):
    store.append([AppendRequest("one", 0, [event("one", 1, CanvasCreated("One"))])])
    good = AppendRequest("one", 1, [event("one", 2, added("a"))], commands=[CommandRecord("one", "cmd", "h", 2, 1)])
    stale = AppendRequest("two", 5, [event("two", 6, added("b"))])  # canvas 'two' does not exist
    with pytest.raises(ConcurrencyError):
        store.append([good, stale])
    assert store.head("one") == 1 and len(store.read("one")) == 1
    assert store.find_command("one", "cmd") is None
    store.append([good])
    assert store.head("one") == 2 and store.find_command("one", "cmd").first_seq == 2


def test_appending_at_a_version_someone_else_moved_past_is_a_conflict(store: SQLEventStore):
    store.append([AppendRequest("c", 0, [event("c", 1, CanvasCreated("C"))])])
    store.append([AppendRequest("c", 1, [event("c", 2, added("a"))])])
    with pytest.raises(ConcurrencyError) as info:
        store.append([AppendRequest("c", 1, [event("c", 2, added("b"))])])
    assert (info.value.expected, info.value.actual) == (1, 2)
    with pytest.raises(ConcurrencyError):
        store.append([AppendRequest("c", 0, [event("c", 1, CanvasCreated("again"))])])
    assert [e.data.layer_id for e in store.read("c", after=1)] == ["a"]


def test_events_must_follow_the_expected_version(store: SQLEventStore):
    store.append([AppendRequest("c", 0, [event("c", 1, CanvasCreated("C"))])])
    with pytest.raises(ValueError, match="does not follow"):
        store.append([AppendRequest("c", 1, [event("c", 3, added("a"))])])
    assert store.head("c") == 1


def test_read_ranges(store: SQLEventStore):
    store.append([AppendRequest("c", 0, [event("c", 1, CanvasCreated("C"))] + [event("c", s, added(f"l{s}"))
                                                                                  for s in range(2, 11)])])  # fmt: skip
    assert [e.seq for e in store.read("c", after=3, until=6)] == [4, 5, 6]
    assert [e.seq for e in store.read("c", after=8)] == [9, 10]
    assert [e.seq for e in store.read("c", limit=2)] == [1, 2]
    assert store.read("c", after=1)[0].data == added("l2")
    assert store.head("missing") is None and store.read("missing") == []
