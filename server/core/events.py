"""Events: immutable facts about a canvas, appended to its log and never changed.

Each event type is a frozen dataclass of its payload, and declares its facts once, beside it: whether a user's
undo inverts it (`undoable`; how is in server/core/history.py), whether a render worker may find work after it
(`wakes_renders`), and what the history calls it (`history_kind`). server/core/event_registry.py gathers these
with each type's fold handler; the client reads them from client/js/events.js, generated from that registry.

The stored form (`Event`) wraps a payload with where and when it happened: canvas, gapless `seq`, UUID,
actor, the client's `command_id`, timestamp and the payload's `schema_version`. Old payload versions are
brought up to date on read by upcasters, so the fold only ever sees current shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from server.core.state import Placement

import orjson

from server.core.values import value


@value
class EventData:
    type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    undoable: ClassVar[bool] = False  # a user's undo inverts it (server/core/history.py: INVERTERS)
    wakes_renders: ClassVar[bool] = False  # after it, a render worker may find work on the canvas
    history_kind: ClassVar[str] = "other"  # the word for it in the history (client/js/history.js)


@value
class CanvasCreated(EventData):
    type: ClassVar[str] = "canvas.created"
    history_kind: ClassVar[str] = "create"
    name: str
    # Where the canvas came from when it did not start empty: {"kind": "fork", "canvas_id", "version"} or
    # {"kind": "workflow", ...} for an imported file.
    origin: dict[str, Any] | None = None


@value
class CanvasRenamed(EventData):
    type: ClassVar[str] = "canvas.renamed"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "rename"
    name: str


@value
class LayerAdded(EventData):
    type: ClassVar[str] = "layer.added"
    undoable: ClassVar[bool] = True
    wakes_renders: ClassVar[bool] = True
    history_kind: ClassVar[str] = "add"
    layer_id: str
    operation: str
    params: dict[str, Any]
    seed: int | None
    parents: tuple[str, ...]
    name: str


@value
class LayerParamsChanged(EventData):
    """A non-destructive re-edit: the layer and everything derived from it must be rendered again."""

    type: ClassVar[str] = "layer.params_changed"
    undoable: ClassVar[bool] = True
    wakes_renders: ClassVar[bool] = True
    history_kind: ClassVar[str] = "edit"
    layer_id: str
    params: dict[str, Any]
    seed: int | None
    parents: tuple[str, ...]


@value
class LayerDeleted(EventData):
    """Deletes the layer and every layer derived from it (its descendants in the DAG)."""

    type: ClassVar[str] = "layer.deleted"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "delete"
    layer_id: str


@value
class LayerVisibilityChanged(EventData):
    type: ClassVar[str] = "layer.visibility_changed"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "visibility"
    layer_id: str
    visible: bool


@value
class LayerOpacityChanged(EventData):
    type: ClassVar[str] = "layer.opacity_changed"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "opacity"
    layer_id: str
    opacity: float


@value
class LayerRenamed(EventData):
    type: ClassVar[str] = "layer.renamed"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "rename"
    layer_id: str
    name: str


@value
class LayerMoved(EventData):
    """Moves a layer in the stack; `index` is its position afterwards, 0 = bottom."""

    type: ClassVar[str] = "layer.moved"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "move"
    layer_id: str
    index: int


@value
class LayerRendered(EventData):
    """The engine materialised `revision` of a layer into the blob `output`."""

    type: ClassVar[str] = "layer.rendered"
    wakes_renders: ClassVar[bool] = True
    history_kind: ClassVar[str] = "render"
    layer_id: str
    revision: int
    output: str  # sha256 of the PNG in the blob store
    width: int
    height: int
    fingerprint: dict[str, Any]
    duration_ms: float
    cache_key: str = ""
    cached: bool = False  # the output was found in the render cache; nothing was computed
    extra_outputs: tuple[str, ...] = ()  # the further images of an operation that made several


@value
class LayerRenderRequested(EventData):
    """Render a layer again (after a failure or cancellation): a new revision of it and its descendants."""

    type: ClassVar[str] = "layer.render_requested"
    wakes_renders: ClassVar[bool] = True
    history_kind: ClassVar[str] = "render"
    layer_id: str


@value
class LayerRestored(EventData):
    """Brings deleted layers back as they were (undo of a delete, redo of an add): ids are not reused, restored."""

    type: ClassVar[str] = "layer.restored"
    undoable: ClassVar[bool] = True
    wakes_renders: ClassVar[bool] = True
    history_kind: ClassVar[str] = "restore"
    layers: tuple[dict[str, Any], ...]  # Layer.to_json() of each, bottom first
    positions: tuple[int, ...]  # stack index of each when it was deleted


@value
class HistoryUndone(EventData):
    """Marks the start of an undo: the `count` events after it invert events first_seq..last_seq."""

    type: ClassVar[str] = "history.undone"
    history_kind: ClassVar[str] = "undo"
    first_seq: int
    last_seq: int
    count: int


@value
class HistoryRedone(EventData):
    """Marks the start of a redo: the `count` events after it invert the undo at first_seq..last_seq."""

    type: ClassVar[str] = "history.redone"
    history_kind: ClassVar[str] = "redo"
    first_seq: int
    last_seq: int
    count: int


@value
class CanvasResized(EventData):
    """The document frame: its size in pixels and its background ("#rrggbb", or None for transparent). Growing
    it is how room for outpainting is made; layers keep their places."""

    type: ClassVar[str] = "canvas.resized"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "resize"
    width: int
    height: int
    background: str | None = None


@value
class LayerTransformed(EventData):
    """Where a layer's image sits on the document (server/core/state.py Placement)."""

    type: ClassVar[str] = "layer.transformed"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "transform"
    layer_id: str
    x: float
    y: float
    scale: float = 1.0
    rotation: float = 0.0
    flip_x: bool = False
    flip_y: bool = False

    @classmethod
    def of(cls, layer_id: str, where: Placement) -> LayerTransformed:
        """The event that puts `layer_id` at `where`."""
        return cls(layer_id, where.x, where.y, where.scale, where.rotation, where.flip_x, where.flip_y)


@value
class CanvasRestored(EventData):
    """Marks a restore: the `count` events after it take the canvas back to `version` (one history step)."""

    type: ClassVar[str] = "canvas.restored"
    history_kind: ClassVar[str] = "restore"
    version: int
    count: int


@value
class VersionNamed(EventData):
    """A checkpoint: `label` names `version` ("before the sky"); an empty label removes the name."""

    type: ClassVar[str] = "version.named"
    undoable: ClassVar[bool] = True
    history_kind: ClassVar[str] = "checkpoint"
    version: int
    label: str


@value
class LayerFailed(EventData):
    type: ClassVar[str] = "layer.failed"
    history_kind: ClassVar[str] = "fail"
    layer_id: str
    revision: int
    reason: str


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.type: cls
    for cls in (
        CanvasCreated,
        CanvasRenamed,
        LayerAdded,
        LayerParamsChanged,
        LayerDeleted,
        LayerVisibilityChanged,
        LayerOpacityChanged,
        LayerRenamed,
        LayerMoved,
        LayerRendered,
        LayerRenderRequested,
        LayerFailed,
        LayerRestored,
        HistoryUndone,
        HistoryRedone,
        CanvasRestored,
        VersionNamed,
        CanvasResized,
        LayerTransformed,
    )
}

# The fields stored as JSON arrays that the events hold as tuples, by event class.
_TUPLE_FIELDS: dict[type[EventData], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls) if f.name in ("parents", "layers", "positions", "extra_outputs"))
    for cls in EVENT_TYPES.values()
}

# (event type, stored schema version) -> function lifting that payload one version up.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


@value
class Event:
    """An event as stored in a canvas's log."""

    canvas_id: str
    seq: int
    event_id: str
    data: EventData
    actor: str
    command_id: str | None
    timestamp: float  # seconds since the epoch, UTC
    schema_version: int = field(default=1)
    gesture: str | None = None  # the client's gesture the command was part of (history groups by it)

    @property
    def type(self) -> str:
        return self.data.type

    def to_json(self) -> dict[str, Any]:
        raw = {
            "canvas_id": self.canvas_id,
            "seq": self.seq,
            "event_id": self.event_id,
            "type": self.data.type,
            "schema_version": self.schema_version,
            "payload": payload_json(self.data),
            "actor": self.actor,
            "command_id": self.command_id,
            "timestamp": self.timestamp,
        }
        if self.gesture is not None:  # only then: events outside gestures read as they always did
            raw["gesture"] = self.gesture
        return raw


_PAYLOAD_FIELDS: dict[type, tuple[str, ...]] = {}  # payload class -> its field names


def payload_json(data: EventData) -> dict[str, Any]:
    """The payload's fields as a dict, shallow: `dataclasses.asdict` deep-copies every params dict, 14 us for a
    layer.added against 0.4 us, paid for every event of a catch-up. Payloads are never changed in place."""
    names = _PAYLOAD_FIELDS.get(type(data))
    if names is None:
        names = _PAYLOAD_FIELDS[type(data)] = tuple(item.name for item in fields(data))
    return {name: getattr(data, name) for name in names}


class UnknownEventType(ValueError):
    pass


def encode_payload(data: EventData) -> bytes:
    return orjson.dumps(data)


def decode_payload(event_type: str, schema_version: int, raw: bytes | str | dict[str, Any]) -> EventData:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    payload = raw if isinstance(raw, dict) else orjson.loads(raw)
    version = schema_version
    while version < cls.schema_version:
        upcast = UPCASTERS.get((event_type, version))
        if upcast is None:
            raise UnknownEventType(f"no upcaster for {event_type!r} from schema version {version}")
        payload = upcast(payload)
        version += 1
    for name in _TUPLE_FIELDS[cls]:
        if isinstance(payload.get(name), list):
            payload[name] = tuple(payload[name])
    return cls(**payload)
