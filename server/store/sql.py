"""The event store over SQLAlchemy Core: SQLite (WAL, fsync on every commit) by default.

Writes go through one connection opened with `BEGIN IMMEDIATE`, so a transaction holds SQLite's write lock
from its first statement and never fails half-way on an upgrade from reader to writer. Reads use their own
pooled connections: WAL lets them run beside the writer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.core.events import Event, decode_payload
from server.store.base import AppendRequest, CanvasInfo, CommandRecord, ConcurrencyError, RenderRecord, Snapshot
from server.store.tables import CanvasBlobRow, CanvasRow, CommandRow, EventRow, RenderRow, SnapshotRow

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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

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
        return WriteTransaction(self._writer)

    def append(self, requests: Sequence[AppendRequest]) -> None:
        with self.write() as tx:
            tx.append(requests)

    # --- reads -----------------------------------------------------------------------------------------

    def head(self, canvas_id: str) -> int | None:
        with self._reader.connect() as conn:
            return _head(conn, canvas_id)

    def read(self, canvas_id: str, after: int = 0, until: int | None = None, limit: int | None = None) -> list[Event]:
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
            )
            .where(events.c.canvas_id == canvas_id, events.c.seq > after)
            .order_by(events.c.seq)
        )
        if until is not None:
            query = query.where(events.c.seq <= until)
        if limit is not None:
            query = query.limit(limit)
        with self._reader.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Event(
                canvas_id=canvas_id,
                seq=seq,
                event_id=event_id,
                data=decode_payload(event_type, schema_version, payload),
                actor=actor,
                command_id=command_id,
                timestamp=timestamp,
                schema_version=schema_version,
            )
            for seq, event_id, event_type, schema_version, payload, actor, command_id, timestamp in rows
        ]

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
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


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
            rows = conn.exec_driver_sql(
                "SELECT command_id, command_hash, first_seq, count FROM commands "
                f"WHERE canvas_id = {placeholder} AND command_id IN ({', '.join([placeholder] * len(chunk))})",
                (canvas_id, *chunk),
            ).all()
        for command_id, hash_, first_seq, count in rows:
            found[command_id] = CommandRecord(canvas_id, command_id, hash_, first_seq, count)
    return found


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


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
    return conn.exec_driver_sql(sql, (*params, request.canvas_id, request.expected_version)).rowcount == 1


def _name_blobs(conn: Connection, canvas_id: str, shas: Sequence[str]) -> None:
    if not shas:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    rows = [{"canvas_id": canvas_id, "sha256": sha} for sha in dict.fromkeys(shas)]
    conn.execute(upsert(canvas_blobs).values(rows).on_conflict_do_nothing())


def _insert_many(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Hot-path bulk insert straight through the driver: Core's per-statement work was ~40% of a group commit."""
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if placeholder is None:
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))})"
    conn.exec_driver_sql(sql, [tuple(row[column] for column in columns) for row in rows])


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

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._context: Any = None
        self._conn: Connection

    def __enter__(self) -> WriteTransaction:
        self._context = self._engine.begin()
        self._conn = self._context.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)

    def find_commands(self, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        return _find_commands(self._conn, canvas_id, command_ids)

    def append(self, requests: Sequence[AppendRequest]) -> None:
        if not requests:
            return
        conn = self._conn
        now = time.time()
        event_rows: list[dict[str, Any]] = []
        command_rows: list[dict[str, Any]] = []
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
                    {
                        "canvas_id": stored.canvas_id,
                        "seq": stored.seq,
                        "event_id": stored.event_id,
                        "type": stored.data.type,
                        "schema_version": stored.schema_version,
                        "payload": orjson.dumps(stored.data).decode(),
                        "actor": stored.actor,
                        "command_id": stored.command_id,
                        "timestamp": stored.timestamp,
                    }
                )
            command_rows.extend(
                {
                    "canvas_id": record.canvas_id,
                    "command_id": record.command_id,
                    "command_hash": record.command_hash,
                    "first_seq": record.first_seq,
                    "count": record.count,
                    "created_at": now,
                }
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
            _insert_many(conn, events, event_rows)
        if conn.dialect.name == "postgresql":
            _announce(conn, requests, now)
        if command_rows:
            _insert_many(conn, commands, command_rows)
        if snapshot_rows:
            conn.execute(insert(snapshots), snapshot_rows)
        for request in requests:
            if request.blobs and not request.unlisted:
                _name_blobs(conn, request.canvas_id, request.blobs)
