"""The WebSocket protocol against a real server process, over real sockets, with the `websockets` client."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.server_process import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
_ids = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("live") / "data") as running:
        yield running


@pytest.fixture
def canvas(server) -> tuple[str, str]:
    """A new canvas: (id, owner token)."""
    with server.client() as client:
        created = client.post("/api/canvases", json={"name": "Live"}).json()
    return created["id"], created["owner_token"]


def share(server: ServerProcess, canvas_id: str, owner_token: str, role: str) -> str:
    with server.client(owner_token) as client:
        return client.post(f"/api/canvases/{canvas_id}/shares", json={"role": role}).json()["token"]


class Peer:
    """A test client: remembers every event it was sent, in order."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.seqs: list[int] = [event["seq"] for event in welcome.get("events", [])]
        self.events: dict[int, str] = {event["seq"]: event["event_id"] for event in welcome.get("events", [])}
        self.inbox: list[dict[str, Any]] = []

    @property
    def version(self) -> int:
        return self.seqs[-1] if self.seqs else self.welcome["version"]

    async def recv(self, timeout: float = 20) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if message["type"] == "event":
            self.seqs.append(message["seq"])
            self.events[message["seq"]] = message["event"]["event_id"]
        self.inbox.append(message)
        return message

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if predicate(message):
                    return message

    async def catch_up(self, seq: int, timeout: float = 30) -> None:
        """Read until the event `seq` has arrived (it may have already)."""
        async with asyncio.timeout(timeout):
            while self.version < seq:
                await self.recv()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def command(self, command: dict[str, Any], **extra: Any) -> dict[str, Any]:
        command_id = f"cmd-{next(_ids)}"
        await self.send({"type": "command", "command_id": command_id, "command": command, **extra})
        return await self.until(lambda m: m["type"] in ("ack", "reject") and m.get("command_id") == command_id)

    async def close(self) -> None:
        await self.ws.close()


async def join(server: ServerProcess, canvas_id: str, token: str | None, **hello: Any) -> Peer:
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}", max_size=2**22)
    await ws.send(json.dumps({"type": "hello", "token": token, **hello}))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 20))
    assert welcome["type"] == "welcome", welcome
    return Peer(ws, welcome)


def gapless(peer: Peer, start: int) -> bool:
    return peer.seqs == list(range(start + 1, start + 1 + len(peer.seqs)))


async def test_a_new_client_gets_the_state_then_every_event_in_order(server, canvas):
    canvas_id, owner = canvas
    peer = await join(server, canvas_id, owner, user="alice")
    assert peer.welcome["state"]["version"] == 1 and peer.welcome["you"]["role"] == "owner"
    ack = await peer.command({"type": "add_layer", "layer_id": "a", "operation": "txt2img", "params": {"prompt": "x",
                             "width": 64, "height": 64, "steps": 2}})  # fmt: skip
    assert ack["type"] == "ack" and ack["seqs"] == [2]
    assert peer.seqs[0] == 2  # the event arrives before its ack
    await peer.close()


@pytest.mark.parametrize("clients", [2, 10])
async def test_concurrent_editors_converge_on_one_log(server, canvas, clients):
    canvas_id, owner = canvas
    editor = share(server, canvas_id, owner, "editor")
    peers = [await join(server, canvas_id, editor, user=f"user{n}") for n in range(clients)]

    async def edit(peer: Peer, n: int) -> None:
        for index in range(5):
            ack = await peer.command({"type": "rename_canvas", "name": f"{n}-{index}"})
            assert ack["type"] == "ack"

    await asyncio.gather(*(edit(peer, n) for n, peer in enumerate(peers)))
    final = 1 + clients * 5
    for peer in peers:
        await peer.catch_up(final)
        assert gapless(peer, 1) and peer.version == final
    reference = peers[0].events
    assert all(peer.events == reference for peer in peers)  # the same events, in the same order, everywhere
    with server.client() as client:
        assert client.get(f"/api/canvases/{canvas_id}/state").json()["version"] == final
    for peer in peers:
        await peer.close()


async def test_a_client_that_reconnects_with_since_misses_nothing_and_sees_nothing_twice(server, canvas):
    canvas_id, owner = canvas
    steady = await join(server, canvas_id, owner, user="steady")
    flaky = await join(server, canvas_id, owner, user="flaky")
    for index in range(3):
        await steady.command({"type": "rename_canvas", "name": f"a{index}"})
    await flaky.catch_up(4)
    seen = flaky.version
    await flaky.close()
    for index in range(4):  # while it is away
        await steady.command({"type": "rename_canvas", "name": f"b{index}"})
    back = await join(server, canvas_id, owner, user="flaky", since=seen)
    assert [event["seq"] for event in back.welcome["events"]] == [5, 6, 7, 8]
    await steady.command({"type": "rename_canvas", "name": "c"})
    await back.catch_up(9)
    assert back.seqs == [5, 6, 7, 8, 9]
    too_old = await join(server, canvas_id, owner, user="late", since=10_000)  # ahead of the log: fresh state
    assert too_old.welcome["state"]["version"] == 9 and "events" not in too_old.welcome
    for peer in (steady, back, too_old):
        await peer.close()


async def test_presence_is_relayed_and_cleared_on_disconnect(server, canvas):
    canvas_id, owner = canvas
    viewer = share(server, canvas_id, owner, "viewer")
    alice = await join(server, canvas_id, owner, user="alice", name="Alice", colour="#ff0000")
    bob = await join(server, canvas_id, viewer, user="bob", name="Bob")
    await alice.send({"type": "presence", "cursor": {"x": 10, "y": 20.5}, "selected_layer": None})
    seen = await bob.until(lambda m: m["type"] == "presence")
    # users are bound to the token they came with: <token id>.<the name the client gave>
    assert (
        seen["user"].startswith("t")
        and seen["user"].endswith(".alice")
        and seen["user"] == alice.welcome["you"]["user"]
    )
    assert (seen["name"], seen["colour"], seen["cursor"]) == (
        "Alice",
        "#ff0000",
        {"x": 10.0, "y": 20.5},
    )
    carol = await join(server, canvas_id, viewer, user="carol")
    assert [p["user"] for p in carol.welcome["presence"]] == [alice.welcome["you"]["user"]]
    await alice.close()
    left = await bob.until(lambda m: m["type"] == "presence_left")
    assert left["user"] == alice.welcome["you"]["user"]
    await bob.close()
    await carol.close()


async def test_render_progress_reaches_every_client(server, canvas):
    canvas_id, owner = canvas
    alice = await join(server, canvas_id, owner, user="alice")
    watcher = await join(server, canvas_id, share(server, canvas_id, owner, "viewer"), user="watcher")
    params = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 3}
    await alice.command({"type": "add_layer", "layer_id": "lh", "operation": "txt2img", "params": params, "seed": 3})
    finished = await watcher.until(lambda m: m["type"] == "render_finished", timeout=120)
    kinds = [m["type"] for m in watcher.inbox]
    assert kinds.index("render_started") < kinds.index("progress") < kinds.index("render_finished")
    steps = [m["step"] for m in watcher.inbox if m["type"] == "progress" and m["stage"] == "denoise" and m["step"]]
    assert steps == [1, 2, 3]
    # The layer.rendered event is committed, and so broadcast, before the render is announced finished.
    [rendered] = [m for m in watcher.inbox if m["type"] == "event" and m["event"]["type"] == "layer.rendered"]
    assert kinds.index("progress") < watcher.inbox.index(rendered) < kinds.index("render_finished")
    assert rendered["event"]["payload"]["output"] == finished["output"]
    await alice.close()
    await watcher.close()


async def test_a_viewer_sees_but_cannot_edit(server, canvas):
    canvas_id, owner = canvas
    viewer = await join(server, canvas_id, share(server, canvas_id, owner, "viewer"), user="v")
    assert viewer.welcome["you"]["role"] == "viewer"
    reject = await viewer.command({"type": "rename_canvas", "name": "mine now"})
    assert reject["type"] == "reject" and reject["code"] == "forbidden"
    await viewer.send({"type": "cancel", "layer_id": "x"})
    assert (await viewer.until(lambda m: m["type"] == "error"))["code"] == "cannot_cancel"
    await viewer.close()


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_a_missing_or_unknown_token_is_refused(server, canvas, token):
    canvas_id, _ = canvas
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}")
    await ws.send(json.dumps({"type": "hello", "token": token}))
    error = json.loads(await ws.recv())
    assert error == {"type": "error", "code": "unauthorized", "message": "missing, unknown or revoked token"}
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 4401


async def test_a_token_for_one_canvas_opens_no_other(server, canvas):
    _, owner = canvas
    with server.client() as client:
        other = client.post("/api/canvases", json={"name": "Other"}).json()["id"]
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{other}")
    await ws.send(json.dumps({"type": "hello", "token": owner}))
    assert json.loads(await ws.recv())["code"] == "forbidden"
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 4403


async def test_a_revoked_share_no_longer_opens_the_canvas(server, canvas):
    canvas_id, owner = canvas
    with server.client(owner) as client:
        created = client.post(f"/api/canvases/{canvas_id}/shares", json={"role": "editor"}).json()
        assert client.delete(f"/api/canvases/{canvas_id}/shares/{created['id']}").json()["revoked"]
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}")
    await ws.send(json.dumps({"type": "hello", "token": created["token"]}))
    assert json.loads(await ws.recv())["code"] == "unauthorized"


async def test_bad_messages_get_an_error_and_the_connection_stays(server, canvas):
    canvas_id, owner = canvas
    peer = await join(server, canvas_id, owner, user="fuzzer")
    await peer.ws.send("{this is not json")
    assert (await peer.until(lambda m: m["type"] == "error"))["code"] == "malformed"
    await peer.ws.send(b"\x00\x01binary")
    assert "binary" in (await peer.until(lambda m: m["type"] == "error"))["message"]
    await peer.send({"type": "teleport"})
    assert (await peer.until(lambda m: m["type"] == "error"))["code"] == "unknown_type"
    reject = await peer.command({"type": "add_layer", "operation": "nope"})
    assert reject["code"] == "unknown_operation"
    reject = await peer.command({"type": "delete_layer"})
    assert reject["code"] == "malformed_command" and reject["field"] == "command.delete_layer.layer_id"
    await peer.send({"type": "ping", "t": 5})
    assert (await peer.until(lambda m: m["type"] == "pong"))["t"] == 5
    ack = await peer.command({"type": "rename_canvas", "name": "still here"})
    assert ack["type"] == "ack"
    await peer.close()


async def test_the_first_message_must_be_a_hello(server, canvas):
    canvas_id, _ = canvas
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}")
    await ws.send(json.dumps({"type": "command", "command_id": "x", "command": {}}))
    assert json.loads(await ws.recv())["code"] == "bad_hello"
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 4400


async def test_undo_and_redo_across_two_users(server, canvas):
    canvas_id, owner = canvas
    editor = share(server, canvas_id, owner, "editor")
    alice = await join(server, canvas_id, owner, user="alice")
    bob = await join(server, canvas_id, editor, user="bob")
    gen = {"prompt": "x", "width": 64, "height": 64, "steps": 1}
    assert (await alice.command({"type": "add_layer", "layer_id": "a", "operation": "txt2img", "params": gen}))[
        "type"
    ] == "ack"
    built = await bob.command({"type": "add_layer", "layer_id": "b", "operation": "img2img",
                               "params": {"source": "a", "steps": 1}})  # fmt: skip
    assert built["type"] == "ack"
    refused = await alice.command({"type": "undo"})
    assert refused["code"] == "history_conflict" and "'b' is built on layer 'a'" in refused["message"]
    assert (await bob.command({"type": "undo"}))["type"] == "ack"
    assert (await alice.command({"type": "undo"}))["type"] == "ack"
    with server.client() as client:
        assert client.get(f"/api/canvases/{canvas_id}/state").json()["order"] == []
    assert (await bob.command({"type": "redo"}))["code"] == "history_conflict"  # 'a' is gone: b cannot come back
    assert (await alice.command({"type": "redo"}))["type"] == "ack"
    assert (await bob.command({"type": "redo"}))["type"] == "ack"
    with server.client() as client:
        state = client.get(f"/api/canvases/{canvas_id}/state").json()
    assert state["order"] == ["a", "b"] and state["history"][alice.welcome["you"]["user"]] == {"undo": 1, "redo": 0}
    await alice.close()
    await bob.close()


async def test_a_client_can_ask_for_any_past_state(server, canvas):
    canvas_id, owner = canvas
    peer = await join(server, canvas_id, owner, user="scrubber")
    await peer.command({"type": "rename_canvas", "name": "second"})
    await peer.command({"type": "rename_canvas", "name": "third"})
    await peer.send({"type": "get_state", "version": 2})
    past = await peer.until(lambda m: m["type"] == "state")
    assert past["version"] == 2 and past["state"]["name"] == "second"
    await peer.send({"type": "get_state", "version": 99})
    assert (await peer.until(lambda m: m["type"] == "error"))["code"] == "bad_version"
    await peer.close()
