"""The WebSocket protocol's messages (docs/protocol.md), as classes: one per message a client sends (`Inbound`,
parsed and checked by `parse_inbound`) and one per message the server sends (`Outbound`, `to_json()`).

server/live.py dispatches inbound messages through one table keyed by these classes; the render queue builds
its news (render_started, progress, ...) from the classes below and sends them as JSON, since they also travel
between replicas (server/bus.py). Adding a message: its class here, its handler in live.py's table (or the
place that sends it), its paragraph in docs/protocol.md.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, ClassVar

import orjson

from server.core.values import value

PROTOCOL_VERSION = 1
USER_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
COLOUR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")


class ProtocolError(ValueError):
    """A message that does not fit its type; `code` is what the error frame says."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _string(value: Any) -> str:
    # Only strings are taken: str() of a hostile value (a list nested 1,000 deep) would raise RecursionError.
    return value if isinstance(value, str) else ""


def _cursor(value: Any) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    x, y = value.get("x"), value.get("y")
    if isinstance(x, int | float) and isinstance(y, int | float) and abs(x) < 1e7 and abs(y) < 1e7:
        return {"x": float(x), "y": float(y)}
    return None


# A shared viewport: the world point at the centre of the sender's screen and its zoom (view.js's scale bounds,
# with slack). Out of range or not finite, it is dropped rather than refused: presence is best effort.
VIEWPORT_ZOOM = (1 / 64, 128.0)


def _viewport(value: Any) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    centre = _cursor(value)  # x, y: numbers under 1e7 in size (NaN and infinities fail that comparison)
    zoom = value.get("zoom")
    if centre is None or isinstance(zoom, bool) or not isinstance(zoom, int | float):
        return None
    if not VIEWPORT_ZOOM[0] <= zoom <= VIEWPORT_ZOOM[1]:
        return None
    return {**centre, "zoom": float(zoom)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- from the client -----------------------------------------------------------------------------------------


@value
class Inbound:
    type: ClassVar[str]

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Inbound:
        raise NotImplementedError


@value
class Hello(Inbound):
    type: ClassVar[str] = "hello"
    token: Any  # checked by the caller: the URL's ?token= may stand in for it
    since: int | None
    user: str
    name: str
    colour: str

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Hello:
        since = message.get("since")
        if since is not None and (not _is_int(since) or since < 0):
            raise ProtocolError("bad_hello", "since must be a non-negative integer")
        return cls(message.get("token"), since, *(_string(message.get(key)) for key in ("user", "name", "colour")))


@value
class CommandMessage(Inbound):
    type: ClassVar[str] = "command"
    command_id: str | None  # for the reject, when the envelope itself is malformed
    envelope: dict[str, Any]  # {command_id, expected_version?, command}: server/core/commands.py parses it

    @classmethod
    def parse(cls, message: dict[str, Any]) -> CommandMessage:
        body = {key: value for key, value in message.items() if key != "type"}
        command_id = body.get("command_id")
        return cls(command_id if isinstance(command_id, str) else None, body)


@value
class PresenceMessage(Inbound):
    type: ClassVar[str] = "presence"
    cursor: dict[str, float] | None
    selected_layer: str | None
    viewport: dict[str, float] | None = None  # {x, y, zoom}: what a follower of this person sees

    @classmethod
    def parse(cls, message: dict[str, Any]) -> PresenceMessage:
        selected = message.get("selected_layer")
        return cls(_cursor(message.get("cursor")), selected if isinstance(selected, str) and len(selected) <= 128
                   else None, _viewport(message.get("viewport")))  # fmt: skip


@value
class CancelMessage(Inbound):
    type: ClassVar[str] = "cancel"
    layer_id: str | None

    @classmethod
    def parse(cls, message: dict[str, Any]) -> CancelMessage:
        layer_id = message.get("layer_id")
        return cls(layer_id if isinstance(layer_id, str) else None)


@value
class GetStateMessage(Inbound):
    type: ClassVar[str] = "get_state"
    version: int | None  # None: the latest

    @classmethod
    def parse(cls, message: dict[str, Any]) -> GetStateMessage:
        version = message.get("version")
        if version is not None and not _is_int(version):
            raise ProtocolError("bad_version", "version must be an integer")
        return cls(version)


@value
class PingMessage(Inbound):
    type: ClassVar[str] = "ping"
    t: Any  # echoed as it came

    @classmethod
    def parse(cls, message: dict[str, Any]) -> PingMessage:
        return cls(message.get("t"))


INBOUND: dict[str, type[Inbound]] = {
    cls.type: cls for cls in (Hello, CommandMessage, PresenceMessage, CancelMessage, GetStateMessage, PingMessage)
}


def parse_inbound(message: dict[str, Any]) -> Inbound:
    """The message as its class. Raises ProtocolError (unknown_type, or what the message gets wrong)."""
    kind = message.get("type")
    cls = INBOUND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:64]!r}")
    return cls.parse(message)


# --- from the server -----------------------------------------------------------------------------------------


@value
class Outbound:
    type: ClassVar[str]
    _names: ClassVar[tuple[str, ...]] = ()  # its fields, in order (set once per class, below)

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.type}
        for name in self._names:
            message[name] = getattr(self, name)
        return message

    def encode(self) -> str:
        return orjson.dumps(self.to_json()).decode()


@value
class Welcome(Outbound):
    type: ClassVar[str] = "welcome"
    canvas_id: str
    you: dict[str, str]  # {user, conn, role}
    presence: list[dict[str, Any]]
    version: int
    events: list[dict[str, Any]] | None = None  # the events after `since` (catch-up) ...
    state: dict[str, Any] | None = None  # ... or the whole state
    queue: list[dict[str, Any]] | None = None  # with a render worker: the canvas's render queue
    render_blocked: dict[str, Any] | None = None
    renders: bool = False  # whether `queue` and `render_blocked` are sent
    people: list[dict[str, Any]] | None = None  # the canvas's known people: {user, name, colour, last_seen}
    protocol: int = PROTOCOL_VERSION

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.type, "protocol": self.protocol, "canvas_id": self.canvas_id,
                                   "you": self.you, "presence": self.presence, "version": self.version}  # fmt: skip
        if self.events is not None:
            message["events"] = self.events
        else:
            message["state"] = self.state
        if self.renders:
            message["queue"] = self.queue
            message["render_blocked"] = self.render_blocked
        if self.people is not None:
            message["people"] = self.people
        return message


@value
class EventMessage(Outbound):
    type: ClassVar[str] = "event"
    seq: int
    event: dict[str, Any]  # Event.to_json()

    def to_json(self) -> dict[str, Any]:  # once per event, for every room it goes to
        return {"type": "event", "seq": self.seq, "event": self.event}


@value
class Ack(Outbound):
    type: ClassVar[str] = "ack"
    command_id: str
    seqs: list[int]
    version: int
    duplicate: bool


@value
class Reject(Outbound):
    type: ClassVar[str] = "reject"
    command_id: str | None
    code: str
    message: str
    field: str | None = None


@value
class Error(Outbound):
    type: ClassVar[str] = "error"
    code: str
    message: str


@value
class StateMessage(Outbound):
    type: ClassVar[str] = "state"
    version: int
    state: dict[str, Any]


@value
class Pong(Outbound):
    type: ClassVar[str] = "pong"
    t: Any


@value
class Bye(Outbound):
    type: ClassVar[str] = "bye"
    reason: str


@value
class Presence(Outbound):
    type: ClassVar[str] = "presence"
    user: str
    conn: str
    name: str
    colour: str
    cursor: dict[str, float] | None
    selected_layer: str | None
    viewport: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:  # the busiest message: every cursor move
        return {"type": "presence", "user": self.user, "conn": self.conn, "name": self.name, "colour": self.colour,
                "cursor": self.cursor, "selected_layer": self.selected_layer,
                "viewport": self.viewport}  # fmt: skip


@value
class PresenceLeft(Outbound):
    type: ClassVar[str] = "presence_left"
    user: str
    conn: str


@value
class PeopleNews(Outbound):
    """Someone new on the canvas, or a new name or colour: [{user, name, colour, last_seen}] (server/people.py)."""

    type: ClassVar[str] = "people"
    people: list[dict[str, Any]]


# Render news (server/render_queue.py), sent to every client of the canvas and relayed between replicas.


@value
class RenderStarted(Outbound):
    type: ClassVar[str] = "render_started"
    layer_id: str
    revision: int
    user: str | None


@value
class Progress(Outbound):
    type: ClassVar[str] = "progress"
    layer_id: str
    step: int
    total: int
    stage: str  # prepare, encode, denoise, decode


@value
class Preview(Outbound):
    type: ClassVar[str] = "preview"
    layer_id: str
    step: int
    total: int
    width: int
    height: int
    render_width: int
    render_height: int
    image: str  # a data:image/jpeg;base64 URL


@value
class RenderFinished(Outbound):
    type: ClassVar[str] = "render_finished"
    layer_id: str
    output: str
    cached: bool


@value
class RenderFailed(Outbound):
    type: ClassVar[str] = "render_failed"
    layer_id: str
    reason: str


@value
class RenderCancelled(Outbound):
    type: ClassVar[str] = "render_cancelled"
    layer_id: str
    reason: str


@value
class QueueNews(Outbound):
    type: ClassVar[str] = "queue"
    canvas_id: str
    queue: list[dict[str, Any]]
    blocked: dict[str, Any] | None


@value
class RenderBlocked(Outbound):
    type: ClassVar[str] = "render_blocked"
    reason: str
    attempts: int
    since: float
    retry_in_s: float


@value
class RenderUnblocked(Outbound):
    type: ClassVar[str] = "render_unblocked"


OUTBOUND: dict[str, type[Outbound]] = {
    cls.type: cls
    for cls in (
        Welcome, EventMessage, Ack, Reject, Error, StateMessage, Pong, Bye, Presence, PresenceLeft, PeopleNews,
        RenderStarted, Progress, Preview, RenderFinished, RenderFailed, RenderCancelled, QueueNews, RenderBlocked,
        RenderUnblocked,
    )
}  # fmt: skip
for _cls in OUTBOUND.values():
    _cls._names = tuple(field.name for field in fields(_cls))

LOSSY = frozenset({Progress.type, Presence.type, Preview.type, QueueNews.type})  # the next one says more
RENDER_ENDED = frozenset({RenderFinished.type, RenderFailed.type, RenderCancelled.type})  # no progress after these
