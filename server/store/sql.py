"""The event store over SQLAlchemy Core: SQLite (WAL, fsync on every commit) by default.

Writes go through one connection opened with `BEGIN IMMEDIATE`, so a transaction holds SQLite's write lock
from its first statement and never fails half-way on an upgrade from reader to writer. Reads use their own
pooled connections: WAL lets them run beside the writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.core.events import Event, decode_payload
from server.store.base import AppendRequest, CanvasInfo, CommandRecord, ConcurrencyError, RenderRecord, Snapshot
from server.store.tables import CanvasBlobRow, CanvasRow, CommandRow, EventRow, PersonRow, RenderRow, SnapshotRow

canvases = CanvasRow.__table__  # type: ignore[attr-defined]
events = EventRow.__table__  # type: ignore[attr-defined]
commands = CommandRow.__table__  # type: ignore[attr-defined]
snapshots = SnapshotRow.__table__  # type: ignore[attr-defined]
renders = RenderRow.__table__  # type: ignore[attr-defined]
canvas_blobs = CanvasBlobRow.__table__  # type: ignore[attr-defined]


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is deferred)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # durable: the WAL is fsynced at every commit
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Straight to the driver: this runs once per group commit, and exec_driver_sql's own work cost more.
        connection.connection.driver_connection.execute(begin)

    return engine


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class SQLEventStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            db_path = url.removeprefix("sqlite:///")
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _sqlite_engine(url, immediate=True)
            self._reader = _sqlite_engine(url, immediate=False)
        else:
            self._writer = create_engine(url, pool_pre_ping=True)
            self._reader = self._writer
        # SQLite has one writer at a time anyway, so the write transactions share one connection, kept open:
        # checking a pooled connection out and back in cost ~110 us per group commit, as much as the fsync.
        self._write_lock = threading.Lock()
        self._write_conn: Connection | None = None

    @property
    def writer_engine(self) -> Engine:
        return self._writer

    @property
    def reader_engine(self) -> Engine:
        return self._reader

    # --- schema ----------------------------------------------------------------------------------------

    def migrate(self) -> None:
        from server.store.migrate import upgrade

        upgrade(self.url)

    # --- writes ----------------------------------------------------------------------------------------

    def write(self) -> WriteTransaction:
        """One durable write transaction (SQLite: BEGIN IMMEDIATE, so it holds the write lock from the start)."""
        if not self.is_sqlite:
            return WriteTransaction(self._writer)
        return WriteTransaction(self._writer, self._write_lock, self._shared_write_connection)

    def _shared_write_connection(self) -> Connection:
        """The kept writer connection (called with the write lock held); reopened if it was closed."""
        if self._write_conn is None or self._write_conn.closed or self._write_conn.invalidated:
            if self._write_conn is not None:
                self._write_conn.close()
            self._write_conn = self._writer.connect()
        return self._write_conn

    def append(self, requests: Sequence[AppendRequest]) -> None:
        with self.write() as tx:
            tx.append(requests)

    # --- reads -----------------------------------------------------------------------------------------

    def head(self, canvas_id: str) -> int | None:
        with self._reader.connect() as conn:
            return _head(conn, canvas_id)

    def read(self, canvas_id: str, after: int = 0, until: int | None = None, limit: int | None = None) -> list[Event]:
        with self._reader.connect() as conn:
            placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
            if placeholder is None:
                rows = conn.execute(_read_query(canvas_id, after, until, limit)).all()
            else:
                # Straight through the driver: projecting a version reads up to 500 events, and SQLAlchemy's
                # rows cost more than the decoding. The same statement as `_read_query`, by hand.
                sql = (
                    "SELECT seq, event_id, type, schema_version, payload, actor, command_id, timestamp, gesture "
                    f"FROM events WHERE canvas_id = {placeholder} AND seq > {placeholder}"
                )
                params: list[Any] = [canvas_id, after]
                if until is not None:
                    sql += f" AND seq <= {placeholder}"
                    params.append(until)
                sql += " ORDER BY seq"
                if limit is not None:
                    sql += f" LIMIT {placeholder}"
                    params.append(limit)
                rows = _driver_execute(conn, sql, params).fetchall()
        return [
            Event(canvas_id, seq, event_id, decode_payload(event_type, schema_version, payload), actor, command_id,
                  timestamp, schema_version, gesture)
            for seq, event_id, event_type, schema_version, payload, actor, command_id, timestamp, gesture in rows
        ]  # fmt: skip

    def canvases(self) -> list[CanvasInfo]:
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(canvases).where(canvases.c.version != IMPORTING).order_by(canvases.c.updated_at.desc())
            ).all()
        return [CanvasInfo(row.id, row.name, row.version, row.created_at, row.updated_at) for row in rows]

    def canvas(self, canvas_id: str) -> CanvasInfo | None:
        with self._reader.connect() as conn:
            row = conn.execute(
                select(canvases).where(canvases.c.id == canvas_id, canvases.c.version != IMPORTING)
            ).first()
        return None if row is None else CanvasInfo(row.id, row.name, row.version, row.created_at, row.updated_at)

    def find_commands(self, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        with self._reader.connect() as conn:
            return _find_commands(conn, canvas_id, command_ids)

    def find_command(self, canvas_id: str, command_id: str) -> CommandRecord | None:
        return self.find_commands(canvas_id, [command_id]).get(command_id)

    def names_blob(self, canvas_id: str, sha256: str) -> bool:
        with self._reader.connect() as conn:
            found = conn.execute(
                select(canvas_blobs.c.sha256).where(
                    canvas_blobs.c.canvas_id == canvas_id, canvas_blobs.c.sha256 == sha256
                )
            ).first()
        return found is not None

    def add_blob_names(self, canvas_id: str, shas: Sequence[str]) -> None:
        with self._writer.begin() as conn:
            _name_blobs(conn, canvas_id, shas)

    def discard_unlisted(self, canvas_id: str) -> None:
        with self._writer.begin() as conn:
            if _raw_head(conn, canvas_id) == IMPORTING:
                conn.execute(delete(canvas_blobs).where(canvas_blobs.c.canvas_id == canvas_id))
                conn.execute(delete(events).where(events.c.canvas_id == canvas_id))
                conn.execute(delete(snapshots).where(snapshots.c.canvas_id == canvas_id))
                conn.execute(delete(canvases).where(canvases.c.id == canvas_id))

    def snapshot_at_or_before(self, canvas_id: str, version: int) -> Snapshot | None:
        with self._reader.connect() as conn:
            row = conn.execute(
                select(snapshots)
                .where(snapshots.c.canvas_id == canvas_id, snapshots.c.version <= version)
                .order_by(snapshots.c.version.desc())
                .limit(1)
            ).first()
        return None if row is None else Snapshot(row.canvas_id, row.version, row.schema_version, row.state)

    def find_render(self, cache_key: str) -> RenderRecord | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(renders).where(renders.c.cache_key == cache_key)).first()
        if row is None:
            return None
        return RenderRecord(
            row.cache_key,
            row.output,
            row.width,
            row.height,
            orjson.loads(row.fingerprint),
            row.duration_ms,
            tuple(orjson.loads(row.extra)),
        )

    def save_render(self, record: RenderRecord) -> None:
        with self._writer.begin() as conn:
            if conn.execute(select(renders.c.cache_key).where(renders.c.cache_key == record.cache_key)).first():
                return
            conn.execute(
                insert(renders).values(
                    cache_key=record.cache_key,
                    output=record.output,
                    width=record.width,
                    height=record.height,
                    fingerprint=orjson.dumps(record.fingerprint).decode(),
                    duration_ms=record.duration_ms,
                    extra=orjson.dumps(list(record.extra)).decode(),
                    created_at=time.time(),
                )
            )

    def close(self) -> None:
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


def _read_query(canvas_id: str, after: int, until: int | None, limit: int | None) -> Any:
    query = (
        select(
            events.c.seq,
            events.c.event_id,
            events.c.type,
            events.c.schema_version,
            events.c.payload,
            events.c.actor,
            events.c.command_id,
            events.c.timestamp,
            events.c.gesture,
        )
        .where(events.c.canvas_id == canvas_id, events.c.seq > after)
        .order_by(events.c.seq)
    )
    if until is not None:
        query = query.where(events.c.seq <= until)
    if limit is not None:
        query = query.limit(limit)
    return query


# The version of a canvas row whose import is still being written in slices: it exists for the store (its
# events need their canvas row) but not for anyone else (head() is None, listings leave it out).
IMPORTING = -1


def _raw_head(conn: Connection, canvas_id: str) -> int | None:
    return conn.execute(select(canvases.c.version).where(canvases.c.id == canvas_id)).scalar()


def _head(conn: Connection, canvas_id: str) -> int | None:
    version = _raw_head(conn, canvas_id)
    return None if version is None or version == IMPORTING else version


def _find_commands(conn: Connection, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
    found: dict[str, CommandRecord] = {}
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    for start in range(0, len(command_ids), 500):
        chunk = list(command_ids[start : start + 500])
        if placeholder is None:
            rows = conn.execute(
                select(commands.c.command_id, commands.c.command_hash, commands.c.first_seq, commands.c.count).where(
                    commands.c.canvas_id == canvas_id, commands.c.command_id.in_(chunk)
                )
            ).all()
        else:  # runs once per group commit: straight through the driver, like the inserts
            rows = _driver_execute(
                conn,
                "SELECT command_id, command_hash, first_seq, count FROM commands "
                f"WHERE canvas_id = {placeholder} AND command_id IN ({', '.join([placeholder] * len(chunk))})",
                (canvas_id, *chunk),
            ).fetchall()
        for command_id, hash_, first_seq, count in rows:
            found[command_id] = CommandRecord(canvas_id, command_id, hash_, first_seq, count)
    return found


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _driver_execute(conn: Connection, sql: str, params: Sequence[Any]) -> Any:
    """Run one statement on the DBAPI connection itself, inside the transaction `conn` holds: for the few
    statements of every group commit, whose per-statement cost in SQLAlchemy (~40 us) was more than SQLite's."""
    if conn.dialect.name == "sqlite":
        return conn.connection.driver_connection.execute(sql, params)  # type: ignore[union-attr]
    return conn.exec_driver_sql(sql, tuple(params))


def _advance_head(conn: Connection, request: AppendRequest, new_version: int, now: float) -> bool:
    """Move the canvas's version from the expected one to `new_version`; False if it was not the expected one."""
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if placeholder is None:
        values: dict[str, Any] = {"version": new_version, "updated_at": now}
        if request.canvas_name is not None:
            values["name"] = request.canvas_name
        statement = (
            update(canvases)
            .where(canvases.c.id == request.canvas_id, canvases.c.version == request.expected_version)
            .values(**values)
        )
        return conn.execute(statement).rowcount == 1
    name = "" if request.canvas_name is None else f", name = {placeholder}"
    sql = (
        f"UPDATE canvases SET version = {placeholder}, updated_at = {placeholder}{name} "
        f"WHERE id = {placeholder} AND version = {placeholder}"
    )
    params = (new_version, now, *(() if request.canvas_name is None else (request.canvas_name,)))
    return _driver_execute(conn, sql, (*params, request.canvas_id, request.expected_version)).rowcount == 1


def _name_blobs(conn: Connection, canvas_id: str, shas: Sequence[str]) -> None:
    if not shas:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    rows = [{"canvas_id": canvas_id, "sha256": sha} for sha in dict.fromkeys(shas)]
    conn.execute(upsert(canvas_blobs).values(rows).on_conflict_do_nothing())


# SQLite allows 32,766 bound parameters per statement (since 3.32); a slice stays well below.
_MAX_PARAMS = 30_000


def _insert_many(conn: Connection, table: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Hot-path bulk insert: one multi-row INSERT per batch (per slice of `_MAX_PARAMS` values), straight
    through the driver. executemany ran one statement per row, and Core's per-statement work was ~40% of a
    group commit."""
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if placeholder is None:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    one_row = f"({', '.join([placeholder] * len(columns))})"
    per_statement = max(1, _MAX_PARAMS // len(columns))
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        _driver_execute(conn, head + ", ".join([one_row] * len(chunk)), [value for row in chunk for value in row])


_EVENT_COLUMNS = ("canvas_id", "seq", "event_id", "type", "schema_version", "payload", "actor", "command_id",
                  "timestamp", "gesture")  # fmt: skip
_COMMAND_COLUMNS = ("canvas_id", "command_id", "command_hash", "first_seq", "count", "created_at")


def _announce(conn: Connection, requests: Sequence[AppendRequest], now: float) -> None:
    """Tell other processes, as part of the same transaction (PostgreSQL delivers NOTIFY only on commit):
    replicas that a canvas moved on, workers that it has renders to do."""
    for request in requests:
        if not request.events or request.unlisted:
            continue
        head = request.expected_version + request.preloaded + len(request.events)
        conn.exec_driver_sql("SELECT pg_notify('opendream_events', %s)", (f"{request.canvas_id}:{head}",))
        if request.wake_renders:
            conn.exec_driver_sql(
                "INSERT INTO render_jobs (canvas_id, requested_at) VALUES (%s, %s) "
                "ON CONFLICT (canvas_id) DO UPDATE SET requested_at = excluded.requested_at",
                (request.canvas_id, now),
            )
            conn.exec_driver_sql("SELECT pg_notify('opendream_jobs', %s)", (request.canvas_id,))


class WriteTransaction:
    """A unit of work: read idempotency records and append, committed (and fsynced) once on exit."""

    def __init__(
        self,
        engine: Engine,
        lock: threading.Lock | None = None,
        shared: Callable[[], Connection] | None = None,
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._shared = shared  # the store's kept writer connection (SQLite); None: a pooled one per transaction
        self._context: Any = None
        self._conn: Connection

    def __enter__(self) -> WriteTransaction:
        if self._shared is None:
            self._context = self._engine.begin()
            self._conn = self._context.__enter__()
            return self
        assert self._lock is not None
        self._lock.acquire()
        try:
            self._conn = self._shared()
            self._context = self._conn.begin()  # BEGIN IMMEDIATE (the engine's begin listener)
            self._context.__enter__()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._context.__exit__(*exc_info)  # commit (fsync) or roll back
        finally:
            if self._lock is not None:
                self._lock.release()

    def find_commands(self, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        return _find_commands(self._conn, canvas_id, command_ids)

    def append(self, requests: Sequence[AppendRequest]) -> None:
        if not requests:
            return
        conn = self._conn
        now = time.time()
        event_rows: list[tuple[Any, ...]] = []
        command_rows: list[tuple[Any, ...]] = []
        snapshot_rows: list[dict[str, Any]] = []
        for request in requests:
            base = request.expected_version + request.preloaded
            new_version = base + len(request.events)
            if request.preloaded or (request.unlisted and request.expected_version == 0):
                # A slice of an import: the first makes the canvas row (hidden), the last shows it.
                existing = _raw_head(conn, request.canvas_id)
                if request.preloaded == 0:
                    if existing is not None:
                        raise ConcurrencyError(request.canvas_id, 0, existing)
                    hidden = {"version": IMPORTING, "created_at": now, "updated_at": now}
                    conn.execute(
                        insert(canvases).values(id=request.canvas_id, name=request.canvas_name or "", **hidden)
                    )
                elif existing != IMPORTING:
                    raise ConcurrencyError(request.canvas_id, 0, existing)
                if not request.unlisted:
                    conn.execute(
                        update(canvases)
                        .where(canvases.c.id == request.canvas_id)
                        .values(version=new_version, name=request.canvas_name or "", updated_at=now)
                    )
            elif request.expected_version == 0:
                existing = _raw_head(conn, request.canvas_id)
                if existing is not None:
                    raise ConcurrencyError(request.canvas_id, 0, existing)
                try:
                    conn.execute(
                        insert(canvases).values(
                            id=request.canvas_id,
                            name=request.canvas_name or "",
                            version=new_version,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                except IntegrityError:  # created by another process since the check above
                    raise ConcurrencyError(request.canvas_id, 0, None) from None
            else:
                if not _advance_head(conn, request, new_version, now):
                    raise ConcurrencyError(request.canvas_id, request.expected_version, _head(conn, request.canvas_id))
            for offset, stored in enumerate(request.events, start=1):
                if stored.seq != base + offset or stored.canvas_id != request.canvas_id:
                    raise ValueError(f"event {stored.seq} does not follow version {base}")
                event_rows.append(
                    (
                        stored.canvas_id,
                        stored.seq,
                        stored.event_id,
                        stored.data.type,
                        stored.schema_version,
                        orjson.dumps(stored.data).decode(),
                        stored.actor,
                        stored.command_id,
                        stored.timestamp,
                        stored.gesture,
                    )
                )
            command_rows.extend(
                (record.canvas_id, record.command_id, record.command_hash, record.first_seq, record.count, now)
                for record in request.commands
            )
            snapshot_rows.extend(
                {
                    "canvas_id": snapshot.canvas_id,
                    "version": snapshot.version,
                    "schema_version": snapshot.schema_version,
                    "state": snapshot.state,
                    "created_at": now,
                }
                for snapshot in request.snapshots
            )
        if event_rows:
            _insert_many(conn, events, _EVENT_COLUMNS, event_rows)
        if conn.dialect.name == "postgresql":
            _announce(conn, requests, now)
        if command_rows:
            _insert_many(conn, commands, _COMMAND_COLUMNS, command_rows)
        if snapshot_rows:
            conn.execute(insert(snapshots), snapshot_rows)
        for request in requests:
            if request.blobs and not request.unlisted:
                _name_blobs(conn, request.canvas_id, request.blobs)


# --- people: who a canvas's users are (display names, not authentication) -----------------------------------

people = PersonRow.__table__  # type: ignore[attr-defined]
PEOPLE_PER_CANVAS = 200  # the most recently seen people a canvas keeps: 10,000 hellos leave 200 rows
PEOPLE_PER_TOKEN = 50  # of them, from one link: a flood through one share link cannot push everyone else out
LAST_SEEN_EVERY_S = 60.0  # an unchanged person's last_seen is rewritten at most this often (one write a minute)


@dataclass(frozen=True, slots=True)
class Person:
    user: str  # the events' actor: t<token id>[.<browser id>]
    name: str
    colour: str  # #rrggbb
    last_seen: float

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "colour": self.colour, "last_seen": self.last_seen}


class PeopleStore:
    """The `people` table: one row per (canvas, user), the latest name and colour. Bounded per canvas and per
    token on every insert (the least recently seen go first); callers rate-limit the changes (server/people.py)."""

    def __init__(self, writer: Engine, reader: Engine) -> None:
        self._writer = writer
        self._reader = reader

    @classmethod
    def beside(cls, store: object) -> PeopleStore:
        """The people of the canvases `store` holds, in the same database."""
        if not isinstance(store, SQLEventStore):
            raise TypeError(f"people are kept in a SQL store, not in {type(store).__name__}")
        return cls(store.writer_engine, store.reader_engine)

    def person(self, canvas_id: str, user: str) -> Person | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(people).where(people.c.canvas_id == canvas_id, people.c.user_id == user)).first()
        return None if row is None else Person(row.user_id, row.name, row.colour, row.last_seen)

    def people(self, canvas_id: str, limit: int = PEOPLE_PER_CANVAS) -> list[Person]:
        """The canvas's people, most recently seen first."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(people)
                .where(people.c.canvas_id == canvas_id)
                .order_by(people.c.last_seen.desc(), people.c.user_id)
                .limit(limit)
            ).all()
        return [Person(row.user_id, row.name, row.colour, row.last_seen) for row in rows]

    def record(self, canvas_id: str, person: Person, token_id: str, *, change: bool = True) -> bool:
        """Remember that `person` was seen now. With `change` False (its change was rate-limited) only an existing
        row's last_seen moves. True when the stored name or colour changed (or the person is new)."""
        with self._writer.begin() as conn:
            key = (people.c.canvas_id == canvas_id, people.c.user_id == person.user)
            row = conn.execute(select(people.c.name, people.c.colour, people.c.last_seen).where(*key)).first()
            if row is None:
                if not change:
                    return False
                values = {"canvas_id": canvas_id, "user_id": person.user, "token_id": token_id, "name": person.name,
                          "colour": person.colour, "last_seen": person.last_seen}  # fmt: skip
                # another replica may insert the same person at the same moment: theirs stands
                conn.execute(_dialect_insert(conn)(people).values(values).on_conflict_do_nothing())
                self._prune(conn, canvas_id, token_id)
                return True
            changed = change and (row.name, row.colour) != (person.name, person.colour)
            news: dict[str, Any] = {"name": person.name, "colour": person.colour} if changed else {}
            if changed or person.last_seen - row.last_seen >= LAST_SEEN_EVERY_S:
                conn.execute(update(people).where(*key).values(last_seen=person.last_seen, **news))
            return changed

    @staticmethod
    def _prune(conn: Connection, canvas_id: str, token_id: str) -> None:
        """Keep the most recently seen: PEOPLE_PER_TOKEN of this token's, PEOPLE_PER_CANVAS in all."""
        for scope, keep in (((people.c.token_id == token_id,), PEOPLE_PER_TOKEN), ((), PEOPLE_PER_CANVAS)):
            kept = (
                select(people.c.user_id)
                .where(people.c.canvas_id == canvas_id, *scope)
                .order_by(people.c.last_seen.desc(), people.c.user_id)
                .limit(keep)
            )
            conn.execute(delete(people).where(people.c.canvas_id == canvas_id, *scope, people.c.user_id.not_in(kept)))


def _dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (Core's generic one has not)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
