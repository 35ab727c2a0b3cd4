"""The event store's interface. SQLite is the embedded default; PostgreSQL is a second implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from server.core.events import Event
from server.core.values import value


@value
class CommandRecord:
    """What an accepted command produced, kept so that a retry with the same `command_id` returns it again."""

    canvas_id: str
    command_id: str
    command_hash: str
    first_seq: int  # seq of its first event; when it produced none, the canvas version it saw
    count: int  # number of events it appended (0 for a no-op)


@value
class Snapshot:
    canvas_id: str
    version: int
    schema_version: int
    state: bytes


@value
class AppendRequest:
    """Events for one canvas, to be appended only if the canvas is still at `expected_version`."""

    canvas_id: str
    expected_version: int  # 0: the canvas must not exist yet
    events: Sequence[Event]
    commands: Sequence[CommandRecord] = ()  # idempotency records of the commands that caused the events
    canvas_name: str | None = None  # kept on the canvas row for listings
    snapshots: Sequence[Snapshot] = ()  # projected states to store with the events
    wake_renders: bool = False  # the events give render workers something to do (shared deployments)
    # A large import is written in slices: the first slices' events are stored `unlisted` (no canvas row yet,
    # so nobody sees a half-imported canvas), and the last one creates the canvas over the `preloaded` ones.
    preloaded: int = 0
    unlisted: bool = False
    blobs: Sequence[str] = ()  # the images the events name (recorded in canvas_blobs)


@value
class CanvasInfo:
    id: str
    name: str
    version: int
    created_at: float
    updated_at: float


@value
class RenderRecord:
    cache_key: str
    output: str  # sha256 of the PNG blob
    width: int
    height: int
    fingerprint: dict[str, Any]
    duration_ms: float
    extra: tuple[str, ...] = ()  # further images of an operation that made several


class ConcurrencyError(Exception):
    """Somebody else appended to (or created) a canvas since its version was read. Nothing was written."""

    def __init__(self, canvas_id: str, expected: int, actual: int | None) -> None:
        super().__init__(f"canvas {canvas_id!r} is at version {actual}, expected {expected}")
        self.canvas_id = canvas_id
        self.expected = expected
        self.actual = actual


class WriteTransaction(Protocol):
    """One durable transaction: everything appended in it commits together, once, on leaving the block."""

    def __enter__(self) -> WriteTransaction: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def find_commands(self, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]: ...

    def append(self, requests: Sequence[AppendRequest]) -> None:
        """Raises ConcurrencyError when a canvas is no longer at the request's expected version."""


class EventStore(Protocol):
    def migrate(self) -> None:
        """Bring the schema up to date (Alembic)."""

    def write(self) -> WriteTransaction: ...

    def append(self, requests: Sequence[AppendRequest]) -> None:
        """Append every request in one durable transaction: all or nothing (group commit)."""

    def read(self, canvas_id: str, after: int = 0, until: int | None = None, limit: int | None = None) -> list[Event]:
        """Events with `after < seq <= until`, in seq order."""

    def head(self, canvas_id: str) -> int | None:
        """The canvas's version, or None when it does not exist."""

    def canvases(self) -> list[CanvasInfo]: ...

    def canvas(self, canvas_id: str) -> CanvasInfo | None: ...

    def find_command(self, canvas_id: str, command_id: str) -> CommandRecord | None: ...

    def find_commands(self, canvas_id: str, command_ids: Sequence[str]) -> dict[str, CommandRecord]:
        """The records of those `command_ids` that were accepted before, by command id."""

    def snapshot_at_or_before(self, canvas_id: str, version: int) -> Snapshot | None: ...

    def names_blob(self, canvas_id: str, sha256: str) -> bool:
        """Whether the canvas's log names this image (or it was uploaded for the canvas)."""
        ...

    def add_blob_names(self, canvas_id: str, shas: Sequence[str]) -> None:
        """Record images uploaded for a canvas before a layer names them."""

    def discard_unlisted(self, canvas_id: str) -> None:
        """Remove the slices of an import that never finished (events and snapshots of a canvas with no row)."""

    def find_render(self, cache_key: str) -> RenderRecord | None: ...

    def save_render(self, record: RenderRecord) -> None:
        """Remember a render; a key already present keeps its first record."""

    def close(self) -> None: ...
