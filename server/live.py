"""Live collaboration over WebSockets: one room per canvas, the log's events broadcast in order, presence,
render progress, catch-up after reconnecting. The protocol is written down in docs/protocol.md.

Every connection has an outbound queue bounded in bytes (UTF-8, `LiveLimits.outbound_bytes`) drained by its own
sender task, so a slow or dead client never holds up the broadcast to the others: when its queue would pass
the bound it is disconnected with code 4008 and reconnects with the last seq written to its socket, which
brings it back without a gap or a duplicate.

What one client can make the server do is bounded in the unit it costs: connections per client address and
per token (4429 beyond them); frames read per second, binary and unparsable ones included (a token bucket
taken before parsing; past it the connection is not read until the bucket refills, so a flood is held back by
TCP); presence per connection (the latest wins); and lossy messages a room fans out per second (presence,
progress, previews and queue news wait for the budget, the latest of each kind replacing older ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.auth import Grant, TokenStore, attributed_user
from server.core.commands import MalformedCommand, parse_envelope
from server.core.decide import CommandRejected
from server.core.events import Event
from server.people import PeopleBook, clean_colour, clean_name
from server.protocol import (
    INBOUND,
    LOSSY,
    PROTOCOL_VERSION,
    RENDER_ENDED,
    USER_PATTERN,
    Ack,
    Bye,
    CancelMessage,
    CommandMessage,
    Error,
    EventMessage,
    GetStateMessage,
    Hello,
    Inbound,
    PeopleNews,
    PingMessage,
    Pong,
    Presence,
    PresenceLeft,
    PresenceMessage,
    ProtocolError,
    Reject,
    StateMessage,
    Welcome,
    parse_inbound,
)
from server.service import CanvasNotFound, CanvasService
from server.store.sql import PeopleStore, Person

if TYPE_CHECKING:
    from server.render_queue import RenderQueue

log = logging.getLogger("opendream.live")

__all__ = ["PROTOCOL_VERSION", "USER_PATTERN", "LiveHub", "LiveLimits"]

CLOSE_BAD_HELLO = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY = 4429
OVER_RATE_PARSE_CHARS = 64 * 1024  # a frame past the rate is parsed (to reject a command by its id) up to this size


HELD_NEWS = 64  # news held for a connection before its welcome (the oldest dropped: lossy anyway)


@dataclass(frozen=True)
class LiveLimits:
    max_message_bytes: int = 1024 * 1024
    # UTF-8 bytes queued for one client (not yet handed to its socket) before it is cut off with 4008. One message
    # larger than this is still sent when nothing else is queued (a welcome carrying a big state).
    outbound_bytes: int = 8 * 1024 * 1024
    catch_up_events: int = 5000  # a client further behind gets a fresh state instead of the events
    hello_timeout_s: float = 10.0
    rate_per_s: float = 100.0  # frames a client may send per second, sustained (binary and unparsable ones too)
    rate_burst: float = 400.0
    inbound_bytes_per_s: float = 4 * 1024 * 1024  # what a client's frames may weigh per second, sustained
    inbound_bytes_burst: float = 16 * 1024 * 1024
    presence_per_s: float = 30.0  # presence one connection fans out per second; extra ones: the latest wins
    fanout_per_s: float = 2000.0  # lossy deliveries (message x recipient) one room makes per second
    fanout_burst: float = 2000.0
    max_connections_per_address: int = 128  # open sockets (waiting for their hello included) per client address
    # (an IPv6 address counts by its /64, what one subscriber is usually given)
    max_connections_per_token: int = 256  # open sockets per token: a share link is used by many people


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def spend(self, amount: float) -> bool:
        """Take `amount` while any is left, going into debt if it is more: the debt is paid back before the next."""
        self._refill()
        if self.tokens <= 0:
            return False
        self.tokens -= amount
        return True

    def wait_s(self, need: float = 1.0) -> float:
        """Seconds until `need` tokens are there (0 if they are)."""
        self._refill()
        if self.tokens >= need:
            return 0.0
        return (need - self.tokens) / self.rate if self.rate > 0 else math.inf


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def address_key(host: str | None) -> str:
    """Whose connections count together: an IPv4 address, or an IPv6 address's /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class EventFrame(str):
    """An encoded `event` message that knows its seq, so the sender learns what a client has been written
    without reading it back out of the JSON."""

    seq: int

    @classmethod
    def of(cls, event: Event) -> EventFrame:
        frame = cls(EventMessage(event.seq, event.to_json()).encode())
        frame.seq = event.seq
        return frame


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    canvas_id: str
    grant: Grant
    user: str
    name: str
    colour: str
    limits: LiveLimits
    id: str = field(default_factory=lambda: secrets.token_hex(4))
    # (message, its UTF-8 size); None tells the sender to close. Bounded by queued_bytes <= limits.outbound_bytes.
    outbox: deque[tuple[str | None, int]] = field(default_factory=deque)
    queued_bytes: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set when the outbox has something
    presence_due: float = 0.0  # monotonic time before which this connection's next presence is held back
    catching_up: bool = True
    held: list[tuple[int, str]] = field(default_factory=list)  # live events that arrived during catch-up
    # render news and presence that arrived before the welcome: after it, so that the welcome is always first
    held_news: deque[str] = field(default_factory=lambda: deque(maxlen=HELD_NEWS))
    last_seq: int = 0  # the highest event seq queued to this client
    sent_seq: int = 0  # the highest event seq written to its socket: where it resumes if it is cut off
    presence: dict[str, Any] | None = None
    cut_off: bool = False
    revoked: bool = False  # its token was revoked while it was open: it gets nothing more, and is closed
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # cut off or revoked: stop listening to it

    @property
    def can_edit(self) -> bool:
        return not self.revoked and self.grant.allows(self.canvas_id, "editor")

    def send(self, message: str) -> bool:
        """Queue a message without waiting; a client that cannot keep up is cut off (and resyncs later)."""
        if self.cut_off or self.revoked:
            return False
        size = utf8_len(message)
        if self.queued_bytes and self.queued_bytes + size > self.limits.outbound_bytes:
            self.cut_off = True
            self.ended.set()
            self._drop_queued()
            self._put(None, 0)  # tells the sender to close with CLOSE_TOO_SLOW
            return False
        self._put(message, size)
        return True

    def _put(self, message: str | None, size: int) -> None:
        self.outbox.append((message, size))
        self.queued_bytes += size
        self.ready.set()

    def _drop_queued(self) -> None:
        self.outbox.clear()
        self.queued_bytes = 0

    def send_news(self, message: str) -> bool:
        """Render news and presence: held back until the welcome is queued (the latest kept), so that the welcome
        is always a connection's first message."""
        if self.catching_up:
            self.held_news.append(message)
            return True
        return self.send(message)

    def send_event(self, seq: int, message: str) -> None:
        if self.catching_up:
            self.held.append((seq, message))
        elif seq > self.last_seq and self.send(message):
            self.last_seq = seq

    def finish(self) -> None:
        """Have the sender close the socket after what is queued."""
        self._put(None, 0)

    def busy(self) -> bool:
        """Half the byte budget is taken: lossy messages skip this client."""
        return self.queued_bytes > self.limits.outbound_bytes // 2

    def revoke(self) -> None:
        """Drop what is queued (it may postdate the revocation), say why, and close with CLOSE_UNAUTHORIZED."""
        self.revoked = True
        self.ended.set()
        self._drop_queued()
        error = Error("unauthorized", "this token was revoked").encode()
        self._put(error, utf8_len(error))
        self._put(None, 0)


@dataclass
class Pending:
    """A lossy message waiting for the room's fan-out budget (or its sender's presence rate)."""

    message: str
    source: Connection | None  # a connection of this process whose presence this is (rate-limited, relayed)
    exclude: str | None  # the conn id that does not get it back (its own cursor)
    relay: dict[str, Any] | None = None


@dataclass
class Room:
    canvas_id: str
    fanout: TokenBucket
    connections: set[Connection] = field(default_factory=set)
    # Lossy messages waiting for the budget, oldest first, one per key (presence:conn, progress:layer, queue:…):
    # a newer message replaces the one waiting under its key, so what finally goes out is the latest.
    pending: dict[str, Pending] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class LiveHub:
    def __init__(
        self,
        service: CanvasService,
        tokens: TokenStore,
        renders: RenderQueue | None,
        limits: LiveLimits | None = None,
        people: PeopleBook | None = None,
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.renders = renders
        self.limits = limits or LiveLimits()
        self._people = people  # who each canvas's people are (names, colours); made at the first hello
        self.rooms: dict[str, Room] = {}
        self.per_address: dict[str, int] = {}  # open sockets per client address
        self.per_token: dict[str, int] = {}  # open sockets per token id (past their hello)
        self._unsubscribe: list[Any] = []
        # What each message a client sends after its hello does: one entry per message class (server/protocol.py).
        self._dispatch: dict[type[Inbound], Callable[[Connection, Room, Any], Awaitable[None]]] = {
            CommandMessage: self._command,
            PresenceMessage: self._presence,
            CancelMessage: self._cancel,
            GetStateMessage: self._send_state,
            PingMessage: self._ping,
        }
        # Set when other replicas exist: ephemeral messages are sent to them too.
        self.relay: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None

    @property
    def people(self) -> PeopleBook:
        """The canvases' people, in the service's own database (a store that is not SQL has none to offer)."""
        if self._people is None:
            self._people = PeopleBook(PeopleStore.beside(self.service.store))
        return self._people

    def start(self) -> None:
        self._unsubscribe.append(self.service.subscribe(self._on_events))
        if self.renders is not None:
            self._unsubscribe.append(self.renders.subscribe(self._on_render_notice))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        for room in list(self.rooms.values()):
            for connection in list(room.connections):
                connection.send(Bye("server is shutting down").encode())
                connection.finish()

    # --- from the service and the render queue (on the event loop) -----------------------------------

    def _on_events(self, canvas_id: str, events: Sequence[Event]) -> None:
        room = self.rooms.get(canvas_id)
        if room is None:
            return
        messages = [(event.seq, EventFrame.of(event)) for event in events]
        for connection in list(room.connections):
            for seq, message in messages:
                connection.send_event(seq, message)

    def _on_render_notice(self, canvas_id: str, notice: dict[str, Any]) -> None:
        self._relay(canvas_id, notice)
        self.deliver_ephemeral(canvas_id, notice)

    def _relay(self, canvas_id: str, message: dict[str, Any]) -> None:
        if self.relay is not None:
            asyncio.get_running_loop().create_task(self.relay(canvas_id, message))

    def deliver_ephemeral(self, canvas_id: str, notice: dict[str, Any]) -> None:
        """Presence and render news, from this process or relayed from another replica."""
        room = self.rooms.get(canvas_id)
        if room is None:
            return
        kind, conn = notice["type"], notice.get("conn")
        if kind in LOSSY:  # through the room's fan-out budget, the latest of its kind replacing older ones
            subject = conn if kind == "presence" else notice.get("layer_id", "")
            self._offer(room, f"{kind}:{subject}", Pending(encode(notice), None, conn))
            return
        if kind == "presence_left":
            room.pending.pop(f"presence:{conn}", None)  # a cursor that waited must not come back after this
        elif kind in RENDER_ENDED:
            room.pending.pop(f"progress:{notice.get('layer_id')}", None)
            room.pending.pop(f"preview:{notice.get('layer_id')}", None)
        message = encode(notice)
        for connection in list(room.connections):
            if conn is not None and conn == connection.id:
                continue  # nobody needs their own cursor back
            connection.send_news(message)

    def _broadcast(self, room: Room, message: str, exclude: Connection | None = None) -> None:
        for connection in list(room.connections):
            if connection is not exclude:
                connection.send_news(message)

    # --- the fan-out budget of a room -----------------------------------------------------------------

    def _offer(self, room: Room, key: str, item: Pending) -> None:
        """A lossy message for the room: out now if the budget (and its sender's presence rate) allow, else it
        waits under `key`, where a newer one replaces it."""
        room.pending[key] = item  # a replaced key keeps its place in line
        if room.timer is None:  # otherwise the timer is about to go through the line
            self._pump(room)

    def _pump(self, room: Room) -> None:
        room.timer = None
        now = time.monotonic()
        wake = math.inf
        for key, item in list(room.pending.items()):
            source = item.source
            if source is not None and source.presence_due > now:
                wake = min(wake, source.presence_due)  # its sender's presence rate: wait, the latest wins
                continue
            recipients = [
                c for c in room.connections if c is not source and c.id != item.exclude and not c.busy()
            ]  # busy: lossy messages skip a client whose buffer is half full; the next one says more
            if recipients and not room.fanout.spend(len(recipients)):
                wake = min(wake, now + max(room.fanout.wait_s(0.0), 0.001))
                break  # the room's budget is spent: the line waits (oldest first)
            del room.pending[key]
            for connection in recipients:
                connection.send_news(item.message)
            if source is not None:
                source.presence_due = now + 1 / self.limits.presence_per_s
            if item.relay is not None:
                self._relay(room.canvas_id, item.relay)
        if room.pending and wake < math.inf and self.rooms.get(room.canvas_id) is room:
            room.timer = asyncio.get_running_loop().call_later(max(wake - now, 0.001), self._pump, room)

    def _new_room(self, canvas_id: str) -> Room:
        return Room(canvas_id, TokenBucket(self.limits.fanout_per_s, self.limits.fanout_burst))

    # --- connection caps ------------------------------------------------------------------------------

    @staticmethod
    def _acquire(table: dict[str, int], key: str, cap: int) -> bool:
        if table.get(key, 0) >= cap:
            return False
        table[key] = table.get(key, 0) + 1
        return True

    @staticmethod
    def _release(table: dict[str, int], key: str) -> None:
        left = table.get(key, 0) - 1
        if left > 0:
            table[key] = left
        else:
            table.pop(key, None)

    def revoke(self, token_id: str) -> int:
        """Close the sockets of this process that were opened with a token that has just been revoked."""
        doomed = [c for room in self.rooms.values() for c in room.connections if c.grant.token_id == token_id]
        for connection in doomed:
            if not connection.revoked:
                connection.revoke()
        return len(doomed)

    # --- one connection -------------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        address = address_key(websocket.client.host if websocket.client is not None else None)
        cap = self.limits.max_connections_per_address
        if not self._acquire(self.per_address, address, cap):
            await _refuse(websocket, CLOSE_TOO_MANY, "too_many_connections",
                          f"more than {cap} connections from this address; close some and retry")  # fmt: skip
            return
        token_slot: list[str] = []  # the token id whose slot this socket holds, once taken
        try:
            await self._serve(websocket, token_slot)
        finally:
            for key in token_slot:
                self._release(self.per_token, key)
            self._release(self.per_address, address)

    async def _serve(self, websocket: WebSocket, token_slot: list[str]) -> None:
        canvas_id = websocket.path_params["canvas_id"]
        hello = await self._receive_hello(websocket)
        if hello is None:
            return
        token = hello.token or websocket.query_params.get("token")
        if token is not None and not isinstance(token, str):
            await _refuse(websocket, CLOSE_BAD_HELLO, "bad_hello", "token must be a string")
            return
        grant = await asyncio.to_thread(self.tokens.resolve, token)
        if grant is None:
            await _refuse(websocket, CLOSE_UNAUTHORIZED, "unauthorized", "missing, unknown or revoked token")
            return
        if not grant.allows(canvas_id, "viewer"):
            await _refuse(websocket, CLOSE_FORBIDDEN, "forbidden", f"this token does not open canvas {canvas_id!r}")
            return
        cap = self.limits.max_connections_per_token
        if not self._acquire(self.per_token, grant.token_id, cap):
            await _refuse(websocket, CLOSE_TOO_MANY, "too_many_connections",
                          f"more than {cap} connections with this token; close some and retry")  # fmt: skip
            return
        token_slot.append(grant.token_id)
        try:
            await self.service.state(canvas_id)
        except CanvasNotFound:
            await _refuse(websocket, CLOSE_NOT_FOUND, "canvas_not_found", f"canvas {canvas_id!r} does not exist")
            return
        user, name, colour = hello.user, clean_name(hello.name), clean_colour(hello.colour)
        connection = Connection(
            websocket=websocket,
            canvas_id=canvas_id,
            grant=grant,
            # bound to the credential: the hello's user only tells apart the people sharing one token
            user=attributed_user(grant, user or None),  # checked in _receive_hello: omitted, or a valid id
            name=name or user or "Anonymous",
            colour=colour,
            limits=self.limits,
        )
        person = Person(connection.user, name, colour, time.time())
        news, people = await self._arrive(canvas_id, person, grant.token_id)
        room = self.rooms.get(canvas_id) or self.rooms.setdefault(canvas_id, self._new_room(canvas_id))
        room.connections.add(connection)  # before catch-up: events committed from now on are held, not missed
        sender = asyncio.create_task(self._send_loop(connection), name=f"ws-send-{connection.id}")
        if news:
            self._announce_person(room, person, connection)
        try:
            await self._welcome(connection, room, hello.since, people)
            await self._receive_loop(connection, room)
        except WebSocketDisconnect:
            pass
        finally:
            room.connections.discard(connection)
            room.pending.pop(f"presence:{connection.id}", None)
            if connection.presence is not None:
                left = PresenceLeft(connection.user, connection.id).to_json()
                self._broadcast(room, encode(left))
                self._relay(canvas_id, left)
            if not room.connections:
                if self.rooms.get(canvas_id) is room:
                    self.rooms.pop(canvas_id, None)
                if room.timer is not None:
                    room.timer.cancel()
                    room.timer = None
            if not sender.done():
                connection.finish()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _receive_hello(self, websocket: WebSocket) -> Hello | None:
        try:
            raw = await asyncio.wait_for(websocket.receive(), self.limits.hello_timeout_s)
        except TimeoutError:
            await _refuse(websocket, CLOSE_BAD_HELLO, "bad_hello", "no hello within the time allowed")
            return None
        if raw.get("type") == "websocket.disconnect":
            return None
        message, error = _parse(raw, self.limits.max_message_bytes)
        if error is not None or message.get("type") != Hello.type:
            await _refuse(websocket, CLOSE_BAD_HELLO, "bad_hello", error or "the first message must be a hello")
            return None
        try:
            hello = Hello.parse(message)
        except ProtocolError as exc:
            await _refuse(websocket, CLOSE_BAD_HELLO, exc.code, exc.message)
            return None
        refusal = _user_refusal(message.get("user"))
        if refusal is not None:
            await _refuse(websocket, CLOSE_BAD_HELLO, "bad_hello", refusal)
            return None
        return hello

    async def _arrive(self, canvas_id: str, person: Person, token_id: str) -> tuple[bool, list[dict[str, Any]] | None]:
        """Store the newcomer's name; (whether that is news, the canvas's people). Names are a courtesy: a
        database that cannot store them now costs the welcome its `people`, never the connection."""
        try:
            news, people = await self.people.arrive(canvas_id, person, token_id)
        except Exception:
            log.exception("could not record %s on canvas %s", person.user, canvas_id)
            return False, None
        return news, [p.to_json() for p in people]

    def _announce_person(self, room: Room, person: Person, newcomer: Connection) -> None:
        """Someone new, or a new name or colour: to the others here and on other replicas (the newcomer's own
        welcome lists them)."""
        news = PeopleNews([person.to_json()]).to_json()
        self._broadcast(room, encode(news), exclude=newcomer)
        self._relay(room.canvas_id, news)

    async def _welcome(
        self, connection: Connection, room: Room, since: int | None, people: list[dict[str, Any]] | None = None
    ) -> None:
        canvas_id = connection.canvas_id
        state = await self.service.state(canvas_id)
        you = {"user": connection.user, "conn": connection.id, "role": connection.grant.role}
        presence = [c.presence for c in room.connections if c.presence is not None and c is not connection]
        events: list[dict[str, Any]] | None = None
        version = state.version
        if since is not None and since <= state.version and state.version - since <= self.limits.catch_up_events:
            caught_up = await self.service.events(canvas_id, after=since)
            version = caught_up[-1].seq if caught_up else since
            events = [event.to_json() for event in caught_up]
        welcome = Welcome(
            canvas_id, you, presence, version, events=events, state=state.to_json() if events is None else None,
            queue=self.renders.queue(state) if self.renders is not None else None,
            render_blocked=self.renders.blocked(canvas_id) if self.renders is not None else None,
            renders=self.renders is not None, people=people,
        )  # fmt: skip
        connection.last_seq = connection.sent_seq = version
        self.service.watch(canvas_id, version)
        connection.send(welcome.encode())
        connection.catching_up = False
        for seq, message in connection.held:
            connection.send_event(seq, message)
        connection.held.clear()
        while connection.held_news:
            connection.send(connection.held_news.popleft())

    async def _send_loop(self, connection: Connection) -> None:
        websocket = connection.websocket
        while True:
            if not connection.outbox:
                connection.ready.clear()
                await connection.ready.wait()
                continue
            message, size = connection.outbox.popleft()
            connection.queued_bytes -= size
            if message is None:
                if websocket.application_state == WebSocketState.CONNECTED:
                    code, reason = (1001, "going away")
                    if connection.cut_off:
                        code, reason = CLOSE_TOO_SLOW, f"fell behind; reconnect with since={connection.sent_seq}"
                    elif connection.revoked:
                        code, reason = CLOSE_UNAUTHORIZED, "token revoked"
                    with contextlib.suppress(Exception):
                        await websocket.close(code, reason)
                return
            try:
                await websocket.send_text(message)
            except Exception:  # the client went away; the receive loop sees it too
                return
            if isinstance(message, EventFrame):  # not last_seq: what was queued is dropped when it is cut off
                connection.sent_seq = message.seq

    async def _receive_loop(self, connection: Connection, room: Room) -> None:
        bucket = TokenBucket(self.limits.rate_per_s, self.limits.rate_burst)
        inbound = TokenBucket(self.limits.inbound_bytes_per_s, self.limits.inbound_bytes_burst)
        notices = TokenBucket(1.0, 1.0)  # `rate_limited` answers to frames that are not commands: one a second
        # A client cut off for not reading may never read (or send) again: stop waiting for it then, so that it
        # leaves the room (and the others' screens) now, not when its TCP connection finally dies.
        ending = asyncio.ensure_future(connection.ended.wait())
        receiving: asyncio.Future[Any] | None = None
        try:
            while not connection.cut_off:
                receiving = asyncio.ensure_future(connection.websocket.receive())
                await asyncio.wait({receiving, ending}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    return
                raw = receiving.result()
                if raw.get("type") == "websocket.disconnect" or connection.revoked:
                    return
                size = len(raw.get("text") or raw.get("bytes") or "")
                # Before parsing: every frame counts, binary and unparsable ones too, and what it weighs.
                if bucket.take() and inbound.spend(size):
                    await self._handle(connection, room, raw)
                    continue
                self._over_rate(connection, raw, notices)
                # Read nothing more until the budgets are back: the frames wait in the kernel and TCP holds the
                # sender back, so a flood costs this process about two frames per token, not one answer per frame.
                await asyncio.sleep(max(bucket.wait_s(), inbound.wait_s(1.0)))
        finally:
            ending.cancel()
            if receiving is not None and not receiving.done():
                receiving.cancel()

    def _over_rate(self, connection: Connection, raw: dict[str, Any], notices: TokenBucket) -> None:
        """A frame past the rate: a command is rejected (its sender retries it), anything else is dropped, with
        at most one `rate_limited` error a second. Only a small frame is parsed to find out."""
        frame = raw.get("text")
        small = frame is not None and len(frame) <= OVER_RATE_PARSE_CHARS
        message, error = _parse(raw, self.limits.max_message_bytes) if small else ({}, "")
        text = "too many messages; slow down"
        if error is None and message.get("type") == CommandMessage.type:
            connection.send(Reject(CommandMessage.parse(message).command_id, "rate_limited", text).encode())
        elif notices.take():
            connection.send(Error("rate_limited", text).encode())

    async def _handle(self, connection: Connection, room: Room, raw: dict[str, Any]) -> None:
        message, error = _parse(raw, self.limits.max_message_bytes)
        if error is not None:
            connection.send(Error("malformed", error).encode())
            return
        kind = INBOUND.get(message["type"])
        handler = self._dispatch.get(kind) if kind is not None else None
        try:
            if handler is None:
                raise ProtocolError("unknown_type", f"unknown message type {message['type'][:64]!r}")
            inbound = parse_inbound(message)
        except ProtocolError as exc:
            connection.send(Error(exc.code, exc.message).encode())
            return
        await handler(connection, room, inbound)

    async def _presence(self, connection: Connection, room: Room, message: PresenceMessage) -> None:
        presence = Presence(connection.user, connection.id, connection.name, connection.colour, message.cursor,
                            message.selected_layer, message.viewport).to_json()  # fmt: skip
        connection.presence = presence
        self._offer(room, f"presence:{connection.id}", Pending(encode(presence), connection, connection.id, presence))

    async def _ping(self, connection: Connection, room: Room, message: PingMessage) -> None:
        try:
            pong = Pong(message.t).encode()
        except TypeError:  # nested deeper than the encoder goes (the parser allows more)
            pong = Error("malformed", "ping: t is nested too deeply to echo").encode()
        connection.send(pong)

    async def _command(self, connection: Connection, room: Room, message: CommandMessage) -> None:
        def reject(code: str, text: str, field: str | None = None) -> None:
            connection.send(Reject(message.command_id, code, text, field).encode())

        if not connection.can_edit:
            reject("forbidden", f"a {connection.grant.role} cannot change the canvas")
            return
        try:
            envelope = parse_envelope(message.envelope)
        except MalformedCommand as exc:
            reject("malformed_command", str(exc), exc.field)
            return
        try:
            result = await self.service.execute(
                connection.canvas_id,
                envelope.command,
                connection.user,
                envelope.command_id,
                envelope.expected_version,
                envelope.gesture,
            )
        except CommandRejected as exc:
            reject(exc.code, exc.message, exc.field)
            return
        except CanvasNotFound as exc:
            reject("canvas_not_found", str(exc))
            return
        connection.send(Ack(envelope.command_id, result.seqs, result.version, result.duplicate).encode())

    async def _send_state(self, connection: Connection, room: Room, message: GetStateMessage) -> None:
        """A past (or the latest) state, for scrubbing through history."""
        try:
            state = await self.service.state(connection.canvas_id, message.version)
        except ValueError as exc:
            connection.send(Error("bad_version", str(exc)).encode())
            return
        connection.send(StateMessage(state.version, state.to_json()).encode())

    async def _cancel(self, connection: Connection, room: Room, message: CancelMessage) -> None:
        layer_id = message.layer_id
        if not connection.can_edit or self.renders is None or layer_id is None:
            why = "a viewer cannot cancel renders" if not connection.can_edit else "nothing to cancel"
            connection.send(Error("cannot_cancel", why).encode())
            return
        if not await self.renders.cancel(connection.canvas_id, layer_id, connection.user):
            connection.send(Error("not_rendering", f"layer {layer_id!r} is not rendering").encode())


def _parse(raw: dict[str, Any], limit: int) -> tuple[dict[str, Any], str | None]:
    text = raw.get("text")
    if text is None:
        return {}, "binary frames are not part of the protocol; send JSON text"
    if len(text) > limit:
        return {}, f"message is {len(text)} bytes; the limit is {limit}"
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return {}, f"not valid JSON: {exc}"
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return {}, 'a message is a JSON object with a string "type"'
    return message, None


def _user_refusal(user: Any) -> str | None:
    """Why the hello's `user` is refused, or None. Omitted (or null) is the token's anonymous id; anything
    else must be a valid id: replacing a bad one with a fresh id would lose that person's undo history on
    every reconnect, silently."""
    if user is None or (isinstance(user, str) and USER_PATTERN.match(user)):
        return None
    return "user must be 1 to 64 of the characters A-Z a-z 0-9 _ . @ - (or be omitted for an anonymous id)"


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(Error(error, message).encode())
        await websocket.close(code, message[:120])
