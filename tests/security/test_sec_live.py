"""Live connections are bounded in the units they cost (issue 13, "limits in the right units"), against a real
`opendream serve` in a child process, over real sockets:

- a client that stops reading is cut off (4008) before its outbound buffer passes the byte limit: the server's
  RSS grows by well under 3x that limit while an editor keeps getting acks, and reconnecting with the `since`
  the close gives gets exactly the events it missed;
- connections are capped per client address and per token (an `error` `too_many_connections`, close 4429), and
  every closed, refused or cut-off connection gives its slot back;
- a presence flood from viewers leaves an editor's acks as fast as without it (each connection's presence goes
  out at most `presence_per_s`, a room fans out at most `fanout_per_s` lossy deliveries, the latest one wins);
- a flood of binary frames is rate-limited before anything is parsed or answered, and the server stays
  responsive.

The clients bind distinct loopback source addresses (127.0.0.x) to stand for distinct client addresses. The
floods run in a child process (FLOODER below), so that the flooders' own CPU does not slow the editor measuring
its acks in this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.live import LiveLimits
from tests.reliability.relsupport import (
    health,
    new_canvas,
    percentile,
    read_log,
    record_figures,
    rss_kb,
    share,
    start_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LIMITS = LiveLimits()  # the shipped defaults are what is tested
EDITS_PER_S = 80  # an editor's pace: within the 100 messages a second one connection may send
PROMPT = {"prompt": "p" * 2000, "negative_prompt": "n" * 2000}  # a 4 KiB event that does not grow the state


def text(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


async def open_ws(port: int, canvas_id: str, source: str = "127.0.0.1", **options: Any) -> ClientConnection:
    """A WebSocket to the canvas from the loopback address `source` (each 127.0.0.x is its own client address)."""
    options.setdefault("local_addr", None if "sock" in options else (source, 0))
    if options["local_addr"] is None:
        del options["local_addr"]
    return await connect(f"ws://127.0.0.1:{port}/ws/canvases/{canvas_id}", compression=None, max_size=2**24,
                         open_timeout=30, **options)  # fmt: skip


async def hello(ws: ClientConnection, token: str, **fields: Any) -> dict[str, Any]:
    """Say hello; the first answer (a welcome, or the error of a refusal)."""
    await ws.send(text({"type": "hello", "token": token, **fields}))
    return orjson.loads(await asyncio.wait_for(ws.recv(), 30))


async def joined(port: int, canvas_id: str, token: str, source: str = "127.0.0.1", **fields: Any) -> ClientConnection:
    ws = await open_ws(port, canvas_id, source)
    first = await hello(ws, token, **fields)
    assert first["type"] == "welcome", first
    return ws


async def refusal(port: int, canvas_id: str, token: str, source: str) -> tuple[dict[str, Any], int | None]:
    """Open a connection that is expected to be refused: (its error frame, the close code)."""
    ws = await open_ws(port, canvas_id, source)
    with contextlib.suppress(ConnectionClosed):  # the server may refuse before it reads the hello
        await ws.send(text({"type": "hello", "token": token}))
    first = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 30)
    return first, closed.value.rcvd.code if closed.value.rcvd else None


def stingy_socket(port: int, source: str) -> socket.socket:
    """A TCP socket from `source` with the smallest receive buffer the kernel allows: it fills at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


class Editor:
    """An editor on its own connection: one command at a time, the time to each ack measured."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any], name: str) -> None:
        self.ws, self.name = ws, name
        self.version: int = welcome["version"]
        self.seqs: list[int] = [event["seq"] for event in welcome.get("events", [])]
        self.ack_ms: list[float] = []
        self.seen: list[dict[str, Any]] = []  # everything that is neither an event nor an ack
        self.count = 0

    async def recv(self) -> dict[str, Any]:
        message = orjson.loads(await asyncio.wait_for(self.ws.recv(), 30))
        if message["type"] == "event":
            assert message["seq"] == self.version + 1, f"event {message['seq']} after {self.version}"
            self.version = message["seq"]
        return message

    async def command(self, command: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        command_id = f"{self.name}-{self.count}"
        started = time.perf_counter()
        await self.ws.send(text({"type": "command", "command_id": command_id, "command": command}))
        while True:
            message = await self.recv()
            if message["type"] in ("ack", "reject") and message.get("command_id") == command_id:
                self.ack_ms.append((time.perf_counter() - started) * 1000)
                return message
            if message["type"] != "event":
                self.seen.append(message)

    async def edit_for(self, seconds: float, command: Callable[[int], dict[str, Any]]) -> list[float]:
        """Edit for `seconds`, one command at a time, at most EDITS_PER_S (within the message rate); the ack times
        of those edits."""
        first, stop = len(self.ack_ms), time.perf_counter() + seconds
        while (now := time.perf_counter()) < stop:
            reply = await self.command(command(self.count))
            assert reply["type"] == "ack", reply
            await asyncio.sleep(max(0.0, now + 1 / EDITS_PER_S - time.perf_counter()))
        return self.ack_ms[first:]


async def editor_on(port: int, canvas_id: str, token: str, name: str = "editor") -> Editor:
    ws = await open_ws(port, canvas_id)
    welcome = await hello(ws, token, user=name)
    assert welcome["type"] == "welcome", welcome
    return Editor(ws, welcome, name)


def opacity(n: int) -> dict[str, Any]:
    return {"type": "set_opacity", "layer_id": "L", "opacity": round((n % 100) / 100, 2)}


def blank_layer(server: Any, canvas_id: str, owner: str) -> None:
    with server.client(owner) as client:
        response = client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": "add-L", "command": {
            "type": "add_layer", "layer_id": "L", "operation": "blank", "params": {"width": 8, "height": 8}}})  # fmt: skip
        assert response.status_code == 200, response.text


# --- a client that stops reading ----------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_cut_off_before_its_buffer_passes_the_byte_limit(tmp_path):
    server = start_server(tmp_path / "data", "--no-render")
    limit = LIMITS.outbound_bytes
    try:
        canvas_id, owner = new_canvas(server, "Non-reader")
        token = share(server, canvas_id, owner, "editor")["token"]
        editor = await editor_on(server.port, canvas_id, token)
        await editor.command({"type": "add_layer", "layer_id": "L", "operation": "txt2img",
                              "params": {"width": 64, "height": 64, "steps": 1}})  # fmt: skip

        def big_edit(n: int) -> dict[str, Any]:  # a 4 KiB event, every time a different one
            return {"type": "change_params", "layer_id": "L", "params": {**PROMPT, "prompt": f"{n:06d}" + "p" * 1994}}

        await editor.edit_for(1.5, big_edit)  # warm the server up: caches, SQLite, the allocator
        pid = server.process.pid
        baseline = rss_kb(pid)

        # The non-reader: its own address, the smallest receive buffer, four messages buffered by the library. It
        # reads its welcome, shows a cursor, and then reads nothing; it asks for pongs of 512 KiB that it never
        # reads (a client that pins memory on purpose), while the editor's 4 KiB events pile up for it too.
        source = "127.0.0.9"
        slow = await open_ws(server.port, canvas_id, sock=stingy_socket(server.port, source), max_queue=4,
                             ping_interval=None)  # fmt: skip
        slow_welcome = await hello(slow, token, user="slow")
        slow_conn, version = slow_welcome["you"]["conn"], slow_welcome["version"]
        await slow.send(text({"type": "presence", "cursor": {"x": 1, "y": 1}}))

        peak = baseline
        stop, cut = asyncio.Event(), asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_kb(pid))
                await asyncio.sleep(0.02)

        async def pin() -> None:
            payload = "t" * (512 * 1024)
            for _ in range(64):  # up to 32 MiB of pongs: 4x the limit, within the burst of the rate limit
                if cut.is_set():
                    return
                await slow.send(text({"type": "ping", "t": payload}))  # cancelled if it waits once it is cut off
                await asyncio.sleep(0.04)

        sampler, pinner = asyncio.create_task(sample()), asyncio.create_task(pin())
        cut_at, started = None, time.perf_counter()
        during = len(editor.ack_ms)
        while cut_at is None and time.perf_counter() - started < 30:
            await editor.command(big_edit(editor.count))
            await asyncio.sleep(1 / EDITS_PER_S)
            left = [m for m in editor.seen if m["type"] == "presence_left" and m["conn"] == slow_conn]
            if left:
                cut_at = time.perf_counter() - started  # it left the room: it was cut off
                cut.set()
        await editor.edit_for(0.3, big_edit)  # the room goes on after it left
        await asyncio.sleep(0.3)
        stop.set()
        pinner.cancel()
        await asyncio.gather(sampler, pinner, return_exceptions=True)
        acks = editor.ack_ms[during:]
        head = len(read_log(server, canvas_id))
        assert cut_at is not None, "the non-reading client was never cut off"

        # Now it reads: what had reached its socket, then the close saying where to resume.
        seen: list[int] = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(60):
                async for raw in slow:
                    message = orjson.loads(raw)
                    if message["type"] == "event":
                        seen.append(message["seq"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008, closed.value
        reason = closed.value.rcvd.reason
        assert reason.startswith("fell behind; reconnect with since="), reason
        resume = int(reason.rsplit("since=", 1)[1])
        assert seen == list(range(version + 1, resume + 1)), "the non-reader's stream had a gap before the cut"
        assert resume < head

        # Following the advice brings it back without a gap and without a duplicate.
        back = await open_ws(server.port, canvas_id, source)
        welcome = await hello(back, token, since=resume)
        assert [event["seq"] for event in welcome["events"]] == list(range(resume + 1, head + 1))
        await back.close()

        # Its slot was given back: every slot of its address opens again.
        await asyncio.sleep(0.3)
        many = await asyncio.gather(*(joined(server.port, canvas_id, owner, source)
                                      for _ in range(LIMITS.max_connections_per_address)))  # fmt: skip
        for ws in many:
            await ws.close()
        await editor.ws.close()
        assert health(server)
    finally:
        server.stop()

    growth_mb = (peak - baseline) / 1024
    figures = {
        "outbound_limit_mib": limit / 2**20,
        "rss_baseline_mb": round(baseline / 1024, 1),
        "rss_growth_mb": round(growth_mb, 1),
        "cut_off_after_s": round(cut_at, 2),
        "events_it_got_before_the_cut": resume - version,
        "events_it_missed_then_caught_up": head - resume,
        "editor_acks": len(acks),
        "editor_ack_p50_ms": round(percentile(acks, 0.5), 1),
        "editor_ack_p99_ms": round(percentile(acks, 0.99), 1),
    }
    record_figures("security_non_reader", figures)
    assert growth_mb * 2**20 < 3 * limit, f"the server's memory grew past 3x the outbound limit: {figures}"
    assert percentile(acks, 0.99) < 1000, figures


# --- connection caps --------------------------------------------------------------------------------------


async def test_connections_are_capped_per_address_and_per_token_and_slots_are_given_back(tmp_path):
    server = start_server(tmp_path / "data", "--no-render")
    per_address, per_token = LIMITS.max_connections_per_address, LIMITS.max_connections_per_token
    assert per_token > per_address  # a share link is used by many people: one address alone cannot fill it
    port = server.port
    opened: list[ClientConnection] = []

    async def fill(source: str, token: str, count: int) -> list[ClientConnection]:
        batch = []
        for start in range(0, count, 32):
            batch += await asyncio.gather(*(joined(port, canvas_id, token, source)
                                            for _ in range(min(32, count - start))))  # fmt: skip
        opened.extend(batch)
        return batch

    async def close_all(connections: list[ClientConnection]) -> None:
        await asyncio.gather(*(ws.close() for ws in connections))

    try:
        canvas_id, owner = new_canvas(server, "Crowded")
        editor = share(server, canvas_id, owner, "editor")["token"]
        started = time.perf_counter()

        # Per address: the cap holds for 127.0.0.2 while another address still gets in.
        first = await fill("127.0.0.2", owner, per_address)
        error, code = await refusal(port, canvas_id, owner, "127.0.0.2")
        assert (error["type"], error["code"], code) == ("error", "too_many_connections", 4429), (error, code)
        assert "address" in error["message"]
        await fill("127.0.0.3", owner, 1)
        # Closing some gives their slots back (once the server has seen them go).
        await close_all(first[:10])
        await asyncio.sleep(0.3)
        await fill("127.0.0.2", owner, 10)
        error, code = await refusal(port, canvas_id, owner, "127.0.0.2")
        assert code == 4429, (error, code)

        # Per token: the owner token has per_address + 1 open; spread the rest over more addresses.
        open_with_owner = per_address + 1
        sources = iter(f"127.0.0.{n}" for n in range(3, 250))
        source = next(sources)
        from_source = 1
        while open_with_owner < per_token:
            count = min(per_token - open_with_owner, per_address - from_source)
            await fill(source, owner, count)
            open_with_owner += count
            source, from_source = next(sources), 0
        error, code = await refusal(port, canvas_id, owner, source)
        assert (error["code"], code) == ("too_many_connections", 4429), (error, code)
        assert "token" in error["message"]
        # The refusal gave its address slot back; another token from that address gets in.
        await asyncio.sleep(0.3)
        await fill(source, editor, per_address)
        caps_s = time.perf_counter() - started

        # Everything closed: every slot comes back. Then open and close many times, refusals included.
        await close_all(opened)
        opened.clear()
        await asyncio.sleep(0.5)
        cycles = 300
        for n in range(cycles):
            ws = await joined(port, canvas_id, owner, "127.0.0.200", user=f"cycle{n}")
            if n % 3 == 0:  # some leave by a reset, not a close frame
                ws.transport.abort()
            else:
                await ws.close()
        for _ in range(100):  # refused for a bad token, a bad hello, a bad canvas: none keeps its slot
            for what, token, canvas in (("unauthorized", "nope", canvas_id), ("bad_hello", 5, canvas_id),
                                        ("canvas_not_found", server.admin_token, "c-missing")):  # fmt: skip
                ws = await open_ws(port, canvas, "127.0.0.201")
                answer = await hello(ws, token)
                assert answer["code"] == what, answer
                await ws.close()
        await asyncio.sleep(0.5)
        await fill("127.0.0.200", owner, per_address)
        await fill("127.0.0.201", owner, per_address)  # both addresses full: the token's slots came back too
        error, code = await refusal(port, canvas_id, owner, "127.0.0.201")
        assert code == 4429
        await close_all(opened)
        assert health(server)
    finally:
        server.stop()
    record_figures("security_connection_caps", {
        "per_address": per_address, "per_token": per_token, "open_at_once": per_token + per_address + 1,
        "caps_checked_in_s": round(caps_s, 1), "open_close_cycles": cycles, "refused_cycles": 300})  # fmt: skip


# --- floods -----------------------------------------------------------------------------------------------

# Run as `python -c FLOODER port canvas token mode connections seconds`: `connections` sockets, each sending
# presence (mode "presence") or binary frames (mode "binary") as fast as the server takes them for `seconds`,
# while reading whatever comes back. Prints "ready" once every socket is welcomed, then one JSON line of tallies.
FLOODER = r"""
import asyncio, json, sys, time
from websockets.asyncio.client import connect

port, canvas, token, mode, count, seconds = sys.argv[1:7]
count, seconds = int(count), float(seconds)
tally = {"sent": 0, "replies": {}, "presence_seen": 0}

async def read(ws):
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "presence":
                tally["presence_seen"] += 1
                continue
            if message["type"] == "event":  # the editor's edits
                continue
            key = message["type"] + ":" + str(message.get("code"))
            tally["replies"][key] = tally["replies"].get(key, 0) + 1
    except Exception:
        pass

async def flood(index, ws, deadline):
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if mode == "binary":
            frame = b"\x00\x01" * 32
        else:
            frame = json.dumps({"type": "presence", "cursor": {"x": n, "y": index}, "selected_layer": None})
        try:
            await asyncio.wait_for(ws.send(frame), max(0.01, deadline - time.monotonic()))
        except (TimeoutError, Exception):
            break
        tally["sent"] += 1

async def main():
    sockets = []
    for index in range(count):
        ws = await connect(f"ws://127.0.0.1:{port}/ws/canvases/{canvas}", compression=None, max_size=2**24,
                           ping_interval=None, open_timeout=30, local_addr=("127.0.0.50", 0))
        await ws.send(json.dumps({"type": "hello", "token": token, "user": f"flood{index}"}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        sockets.append(ws)
    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(flood(index, ws, deadline) for index, ws in enumerate(sockets)))
    await asyncio.sleep(0.2)
    for ws in sockets:
        ws.transport.abort()  # what is still in the kernel's buffers goes with it
    await asyncio.gather(*readers, return_exceptions=True)
    print(json.dumps(tally), flush=True)

asyncio.run(main())
"""


class Flood:
    """The flooder child process."""

    def __init__(self, port: int, canvas_id: str, token: str, mode: str, connections: int, seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(port), canvas_id, token, mode, str(connections), str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    async def ready(self) -> None:
        line = await asyncio.to_thread(self.process.stdout.readline)
        assert line.strip() == "ready", (line, self.process.stderr.read() if self.process.poll() is not None else "")

    async def result(self) -> dict[str, Any]:
        out, err = await asyncio.to_thread(self.process.communicate, timeout=60)
        assert self.process.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


class Viewer:
    """A viewer that reads everything and counts the presence it gets, per sender; remembers the latest cursor."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.presence: dict[str, int] = {}
        self.latest: dict[str, Any] = {}
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                if message["type"] == "presence":
                    self.presence[message["conn"]] = self.presence.get(message["conn"], 0) + 1
                    self.latest[message["conn"]] = message["cursor"]
        except ConnectionClosed:
            pass

    def total(self) -> int:
        return sum(self.presence.values())


async def test_a_presence_flood_from_viewers_does_not_slow_an_editors_acks(tmp_path):
    server = start_server(tmp_path / "data", "--no-render")
    seconds, flooders = 5.0, 16
    try:
        canvas_id, owner = new_canvas(server, "Crowd with cursors")
        blank_layer(server, canvas_id, owner)
        editor_token = share(server, canvas_id, owner, "editor")["token"]
        viewer_token = share(server, canvas_id, owner, "viewer")["token"]
        viewers = [Viewer(await joined(server.port, canvas_id, viewer_token, f"127.0.0.{10 + n % 4}", user=f"v{n}"))
                   for n in range(24)]  # fmt: skip
        editor = await editor_on(server.port, canvas_id, editor_token)

        # One cursor moved at 80 moves a second (within the message rate): the others see at most
        # presence_per_s of them, and the last position arrives.
        mover_ws = await joined(server.port, canvas_id, viewer_token, "127.0.0.20", user="mover")
        mover = Viewer(mover_ws)
        await asyncio.sleep(0.2)
        moves = 160
        for n in range(moves):
            await mover_ws.send(text({"type": "presence", "cursor": {"x": n, "y": 0}}))
            await asyncio.sleep(1 / 80)
        await mover_ws.send(text({"type": "presence", "cursor": {"x": -1, "y": -1}}))
        await asyncio.sleep(0.5)
        mover_conn = next(iter(viewers[0].presence))
        got = [viewer.presence.get(mover_conn, 0) for viewer in viewers]
        assert max(got) <= LIMITS.presence_per_s * (moves / 80 + 0.5) + 3, got
        assert all(viewer.latest[mover_conn] == {"x": -1.0, "y": -1.0} for viewer in viewers), "the last move was lost"
        mover.task.cancel()
        await mover_ws.close()

        quiet = await editor.edit_for(seconds, opacity)
        before = sum(viewer.total() for viewer in viewers)
        flood = Flood(server.port, canvas_id, viewer_token, "presence", flooders, seconds + 1.5)
        await flood.ready()
        await asyncio.sleep(0.5)  # the flood is on
        flood_started = time.perf_counter()
        flooded = await editor.edit_for(seconds, opacity)
        flood_s = time.perf_counter() - flood_started
        delivered = sum(viewer.total() for viewer in viewers) - before
        tally = await flood.result()
        after = await editor.edit_for(1.0, opacity)  # and once it is over
        for viewer in viewers:
            await viewer.ws.close()
        await editor.ws.close()
        assert health(server)
    finally:
        server.stop()

    # The viewers' share of the room's lossy deliveries during the flood (24 of the 41 recipients).
    budget = LIMITS.fanout_burst + LIMITS.fanout_per_s * (flood_s + 2.0)
    figures = {
        "flooders": flooders,
        "readers": len(viewers),
        "presence_frames_sent": tally["sent"],
        "flooders_rate_limited_errors": tally["replies"].get("error:rate_limited", 0),
        "presence_delivered_to_readers_per_s": round(delivered / flood_s),
        "cursor_moves_80_per_s_seen_at_most": max(got),
        "ack_quiet_p50_ms": round(percentile(quiet, 0.5), 1),
        "ack_quiet_p99_ms": round(percentile(quiet, 0.99), 1),
        "ack_flood_p50_ms": round(percentile(flooded, 0.5), 1),
        "ack_flood_p99_ms": round(percentile(flooded, 0.99), 1),
        "ack_quiet_count": len(quiet),
        "ack_flood_count": len(flooded),
        "ack_after_p99_ms": round(percentile(after, 0.99), 1),
    }
    record_figures("security_presence_flood", figures)
    assert tally["sent"] > 10 * flooders * LIMITS.presence_per_s * seconds, f"the flood was no flood: {figures}"
    assert delivered > 0, "presence stopped altogether"
    assert delivered <= budget, f"the room fanned out more than its budget: {figures}"
    # A rate-limited frame that is not a command gets at most one `rate_limited` error a second.
    assert figures["flooders_rate_limited_errors"] <= flooders * (seconds + 3), figures
    assert percentile(flooded, 0.99) < 250, f"the flood slowed the editor's acks: {figures}"
    assert len(flooded) >= len(quiet) / 2, f"the editor could make half as many edits during the flood: {figures}"


async def test_a_flood_of_binary_frames_is_rate_limited_and_the_server_stays_responsive(tmp_path):
    server = start_server(tmp_path / "data", "--no-render")
    seconds = 4.0
    try:
        canvas_id, owner = new_canvas(server, "Binary")
        blank_layer(server, canvas_id, owner)
        editor_token = share(server, canvas_id, owner, "editor")["token"]
        editor = await editor_on(server.port, canvas_id, editor_token)
        quiet = await editor.edit_for(2.0, opacity)
        flood = Flood(server.port, canvas_id, editor_token, "binary", 4, seconds + 1.0)
        await flood.ready()
        await asyncio.sleep(0.3)
        flooded = await editor.edit_for(seconds, opacity)
        tally = await flood.result()
        ping = time.perf_counter()
        await editor.ws.send(text({"type": "ping", "t": "still there"}))
        while (await editor.recv())["type"] != "pong":
            pass
        pong_ms = (time.perf_counter() - ping) * 1000
        heavy = await heavy_frames(server.port, canvas_id, editor_token, 2.5)
        await editor.ws.close()
        assert health(server)
    finally:
        server.stop()

    replies = tally["replies"]
    answered = sum(replies.values())
    window = seconds + 1.5
    figures = {
        "binary_frames_sent": tally["sent"],
        "answered": answered,
        "replies": replies,
        "ack_quiet_p99_ms": round(percentile(quiet, 0.99), 1),
        "ack_flood_p50_ms": round(percentile(flooded, 0.5), 1),
        "ack_flood_p99_ms": round(percentile(flooded, 0.99), 1),
        "pong_after_ms": round(pong_ms, 1),
        "heavy_frames_sent": heavy["sent"],
        "heavy_frames_answered": heavy["malformed"],
        "heavy_rate_limited": heavy["rate_limited"],
    }
    record_figures("security_binary_flood", figures)
    assert replies.get("error:rate_limited", 0) >= 4, f"the flood was never rate-limited: {figures}"
    assert set(replies) <= {"error:malformed", "error:rate_limited"}, figures
    # Answered at most at the rate (after the burst), each of the 4 connections, and far from one per frame.
    assert replies.get("error:malformed", 0) <= 4 * (LIMITS.rate_burst + LIMITS.rate_per_s * window), figures
    assert replies.get("error:rate_limited", 0) <= 4 * (window + 2), figures
    assert tally["sent"] > 3 * answered, f"the server answered the flood frame by frame: {figures}"
    assert percentile(flooded, 0.99) < 250, f"the flood slowed the editor's acks: {figures}"
    # Big frames are limited by what they weigh, far below the frame rate (a few dozen frames, not 400).
    heavy_budget = LIMITS.inbound_bytes_burst + LIMITS.inbound_bytes_per_s * heavy["seconds"]
    assert heavy["rate_limited"] >= 1, f"frames of {HEAVY_FRAME} bytes were never limited by weight: {figures}"
    assert heavy["malformed"] <= heavy_budget / HEAVY_FRAME + 4, figures


HEAVY_FRAME = 256 * 1024


async def heavy_frames(port: int, canvas_id: str, token: str, seconds: float) -> dict[str, Any]:
    """Binary frames of HEAVY_FRAME bytes as fast as the server takes them, for `seconds`: what came back."""
    started = time.perf_counter()  # before the server's budget for this connection starts
    ws = await joined(port, canvas_id, token, "127.0.0.60")
    codes: dict[str, int] = {"malformed": 0, "rate_limited": 0}

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = orjson.loads(raw)
                if message["type"] == "error":
                    codes[message["code"]] = codes.get(message["code"], 0) + 1

    reader = asyncio.create_task(read())
    frame, sent = b"\x00" * HEAVY_FRAME, 0
    deadline = time.perf_counter() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.perf_counter()) > 0:
            await asyncio.wait_for(ws.send(frame), left)
            sent += 1
    await asyncio.sleep(0.5)  # the answers to what the server has read
    ws.transport.abort()
    await reader
    return {**codes, "sent": sent, "seconds": time.perf_counter() - started}
