"""Database tables. Alembic's migrations in `migrations/` create them; this module only describes them."""

from __future__ import annotations

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


class CanvasRow(SQLModel, table=True):
    """The head of a canvas's log: `version` doubles as the optimistic-concurrency guard for appends."""

    __tablename__ = "canvases"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    version: int = 0
    created_at: float
    updated_at: float


class EventRow(SQLModel, table=True):
    __tablename__ = "events"

    canvas_id: str = Field(primary_key=True, foreign_key="canvases.id", max_length=64)
    seq: int = Field(primary_key=True)
    event_id: str = Field(max_length=36, unique=True)
    type: str = Field(max_length=64)
    schema_version: int
    payload: str = Field(sa_column=Column(Text, nullable=False))
    actor: str = Field(max_length=128)
    command_id: str | None = Field(default=None, max_length=128)
    timestamp: float
    gesture: str | None = Field(default=None, max_length=64)


class CommandRow(SQLModel, table=True):
    """One row per accepted command: the idempotency record."""

    __tablename__ = "commands"

    canvas_id: str = Field(primary_key=True, foreign_key="canvases.id", max_length=64)
    command_id: str = Field(primary_key=True, max_length=128)
    command_hash: str = Field(max_length=64)
    first_seq: int
    count: int
    created_at: float


class SnapshotRow(SQLModel, table=True):
    __tablename__ = "snapshots"

    canvas_id: str = Field(primary_key=True, foreign_key="canvases.id", max_length=64)
    version: int = Field(primary_key=True)
    schema_version: int
    state: bytes
    created_at: float


Index("ix_canvases_updated_at", CanvasRow.updated_at)  # type: ignore[arg-type]


class RenderRow(SQLModel, table=True):
    """The render cache: a cache key (operation, params, seed, input images, engine) → the image it made."""

    __tablename__ = "renders"

    cache_key: str = Field(primary_key=True, max_length=64)
    output: str = Field(max_length=64)
    width: int
    height: int
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    duration_ms: float
    extra: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    created_at: float


class TokenRow(SQLModel, table=True):
    """An access token, stored only as its sha256. `canvas_id` is empty for the server's admin token."""

    __tablename__ = "tokens"

    id: str = Field(primary_key=True, max_length=32)  # public handle, shown in share lists
    token_hash: str = Field(max_length=64, unique=True)
    canvas_id: str | None = Field(default=None, max_length=64, index=True)
    role: str = Field(max_length=16)
    label: str = Field(default="", max_length=200)
    created_at: float
    revoked_at: float | None = None


class RenderJobRow(SQLModel, table=True):
    """A canvas with renders to do, for workers in other processes to claim (PostgreSQL deployments)."""

    __tablename__ = "render_jobs"

    canvas_id: str = Field(primary_key=True, max_length=64)
    requested_at: float
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: float | None = None


class CanvasBlobRow(SQLModel, table=True):
    """Which canvas's log names which image (uploads, masks, renders, at any version): an image is served only
    to a request that may read a canvas that names it."""

    __tablename__ = "canvas_blobs"

    canvas_id: str = Field(primary_key=True, foreign_key="canvases.id", max_length=64)
    sha256: str = Field(primary_key=True, max_length=64)


class PersonRow(SQLModel, table=True):
    """Who a canvas's people are: the display name and colour a user (`t<token id>[.<browser id>]`, the events'
    actor) last said in a hello, so history names people who are offline or came before you. Bounded per canvas
    (`PeopleStore`, server/store/sql.py)."""

    __tablename__ = "people"

    canvas_id: str = Field(primary_key=True, foreign_key="canvases.id", max_length=64)
    user_id: str = Field(primary_key=True, max_length=128)
    token_id: str = Field(max_length=32)  # whose link let them in: one link's people are bounded apart
    name: str = Field(max_length=64)
    colour: str = Field(max_length=7)
    last_seen: float


Index("ix_people_canvas_last_seen", PersonRow.canvas_id, PersonRow.last_seen)  # type: ignore[arg-type]
