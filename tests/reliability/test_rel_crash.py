"""Crash safety: a real server is killed with SIGKILL again and again while ten WebSocket clients stream
commands at it, and restarted on the same data directory and port.

The clients behave as the protocol asks: every command has a `command_id`, and after a reconnect a client
sends again, with the same id, every command it has no answer for. Afterwards the log must hold every
acknowledged event at the seq it was acknowledged with, gapless, with no command applied twice; every retry of a
committed command must have been answered `duplicate: true`; and the state the server serves, the snapshots on
disk and a fold of the log from nothing must agree.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from engine.builtins import default_registry
from server.core.decide import Decider
from server.core.snapshot import encode_state
from server.service import CanvasService
from server.store.sql import SQLEventStore
from tests.reliability.relsupport import (
    assert_gapless,
    fold,
    new_canvas,
    read_log,
    record_figures,
    start_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SEED = int(os.environ.get("OPENDREAM_RELIABILITY_SEED", "20261125"))
CLIENTS = 10
ROUNDS = 6
WINDOW = 4  # commands a client keeps in flight
ACKS_PER_ROUND = 330  # on average; the kill comes at a random count around it


class CrashClient:
    """Sends a deterministic stream of commands, each changing the canvas (so each appends exactly one event),
    keeps the un-acked ones and sends them again, same ids, after every reconnect."""

    def __init__(self, index: int, canvas_id: str, token: str, seed: int) -> None:
        self.index = index
        self.canvas_id = canvas_id
        self.token = token
        self.rng = random.Random(seed)
        self.unacked: OrderedDict[str, str] = OrderedDict()  # command_id -> the exact message sent
        self.acks: dict[str, dict[str, Any]] = {}  # command_id -> its first ack
        self.duplicate_acks: list[dict[str, Any]] = []  # retries answered `duplicate: true`
        self.rejects: dict[str, dict[str, Any]] = {}
        self.retried: set[str] = set()
        self.sent = 0
        self.connections = 0
        self.dropped = 0
        self.n = 0
        self.layers: dict[str, float] = {}  # this client's live layers (as planned) -> opacity
        self.messages: dict[str, str] = {}  # command_id -> the message, for retrying by hand

    def plan(self) -> tuple[str, str]:
        self.n += 1
        command_id = f"w{self.index}-{self.n}"
        roll = self.rng.random()
        if not self.layers or roll < 0.25:
            layer_id = f"w{self.index}-L{self.n}"
            self.layers[layer_id] = 1.0
            colour = f"#{self.rng.randrange(16**6):06x}"
            command = {"type": "add_layer", "layer_id": layer_id, "operation": "blank",
                       "params": {"width": 8, "height": 8, "colour": colour}}  # fmt: skip
        elif roll < 0.5:
            command = {"type": "rename_layer", "layer_id": self.rng.choice(sorted(self.layers)), "name": command_id}
        elif roll < 0.7:
            command = {"type": "rename_canvas", "name": f"canvas {command_id}"}
        elif roll < 0.9:
            layer_id = self.rng.choice(sorted(self.layers))
            opacity = round(self.rng.random(), 6)
            while opacity == self.layers[layer_id]:
                opacity = round(self.rng.random(), 6)
            self.layers[layer_id] = opacity
            command = {"type": "set_opacity", "layer_id": layer_id, "opacity": opacity}
        else:
            layer_id = self.rng.choice(sorted(self.layers))
            del self.layers[layer_id]
            command = {"type": "delete_layer", "layer_id": layer_id}
        message = orjson.dumps({"type": "command", "command_id": command_id, "command": command}).decode()
        self.messages[command_id] = message
        return command_id, message

    async def run(self, port: int, stop: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{port}/ws/canvases/{self.canvas_id}"
        hello = orjson.dumps({"type": "hello", "token": self.token, "user": f"worker{self.index}"}).decode()
        while not (stop.is_set() and not self.unacked):
            try:
                async with connect(url, max_size=2**24, open_timeout=5, close_timeout=1) as ws:
                    await ws.send(hello)
                    welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert welcome["type"] == "welcome", welcome
                    self.connections += 1
                    for command_id, message in list(self.unacked.items()):  # the retries: same ids, same commands
                        if self.connections > 1:
                            self.retried.add(command_id)
                        await ws.send(message)
                        self.sent += 1
                    await self._stream(ws, stop)
                    return
            except (ConnectionClosed, OSError, TimeoutError, InvalidHandshake, EOFError):
                self.dropped += 1
                await asyncio.sleep(0.05)

    async def _stream(self, ws: Any, stop: asyncio.Event) -> None:
        while True:
            while not stop.is_set() and len(self.unacked) < WINDOW:
                command_id, message = self.plan()
                self.unacked[command_id] = message
                await ws.send(message)
                self.sent += 1
            if stop.is_set() and not self.unacked:
                return
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
            kind, command_id = reply.get("type"), reply.get("command_id")
            if kind not in ("ack", "reject") or command_id not in self.unacked:
                continue  # events, presence, render news; or a second answer to a retried command
            if kind == "reject" and reply["code"] == "rate_limited":
                await asyncio.sleep(0.2)  # not applied: the same command again, later
                await ws.send(self.unacked[command_id])
                self.sent += 1
                continue
            del self.unacked[command_id]
            if kind == "reject":
                self.rejects[command_id] = reply
            else:
                self.acks[command_id] = reply
                if reply["duplicate"]:
                    self.duplicate_acks.append(reply)


@pytest.mark.timeout(900)  # six restarts, each loading the model again, then the drain: minutes on a slow machine
async def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path):
    rng = random.Random(SEED)
    server = start_server(tmp_path / "data")
    started = time.monotonic()
    try:
        canvases = [new_canvas(server, f"Crash {n}") for n in range(2)]
        clients = [CrashClient(index, *canvases[index % 2], seed=rng.randrange(2**32)) for index in range(CLIENTS)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client.run(server.port, stop)) for client in clients]

        def acked() -> int:
            return sum(len(client.acks) for client in clients)

        kills: list[dict[str, Any]] = []
        target = 0
        for round_number in range(ROUNDS):
            target += rng.randint(ACKS_PER_ROUND // 2, ACKS_PER_ROUND * 3 // 2)
            async with asyncio.timeout(60):
                while acked() < target:
                    await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, 0.03))  # a random phase: mid-batch, mid-ack, mid-render
            in_flight = sum(len(client.unacked) for client in clients)
            before = {cid: (client.canvas_id, ack["seqs"]) for client in clients for cid, ack in client.acks.items()}
            pid = server.process.pid
            server.stop(signal.SIGKILL)
            kills.append({"round": round_number, "acked": len(before), "in_flight": in_flight, "pid": pid})
            await asyncio.to_thread(server.start)
            # Everything acknowledged before the kill survived it, at the seq it was acknowledged with.
            logs = {canvas_id: await asyncio.to_thread(read_log, server, canvas_id) for canvas_id, _ in canvases}
            for command_id, (canvas_id, seqs) in before.items():
                for seq in seqs:
                    assert seq <= len(logs[canvas_id]), f"round {round_number}: acked seq {seq} lost"
                    assert logs[canvas_id][seq - 1]["command_id"] == command_id, f"round {round_number}: seq {seq}"

        async with asyncio.timeout(30):  # after the last restart: a little more load, then drain
            while acked() < target + 100:
                await asyncio.sleep(0.005)
        stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks)

        # Renders (blank layers) of the rounds are resumed, not forgotten: the queue drains to empty. A slow machine
        # may take minutes (the model loads again after the last restart); what fails is a queue that stops moving.
        with server.client() as admin:
            started, moved, last = time.monotonic(), time.monotonic(), None
            while queued := sum(len(admin.get(f"/api/canvases/{cid}/renders").json()["queue"]) for cid, _ in canvases):
                if queued != last:
                    moved, last = time.monotonic(), queued
                now = time.monotonic()
                if now - moved > 30 or now - started > 600:  # say why: the worker's view and the server's last words
                    renders = {cid: admin.get(f"/api/canvases/{cid}/renders").json() for cid, _ in canvases}
                    health = admin.get("/api/health").json()
                    tail = server.log_path.read_text(errors="replace")[-3000:]
                    pytest.fail(
                        f"{queued} renders left pending, none done for {now - moved:.0f} s after the restarts: "
                        f"{renders}\nhealth: {health}\nlog: {tail}"
                    )
                time.sleep(0.1)
            served = {cid: admin.get(f"/api/canvases/{cid}/state").json() for cid, _ in canvases}

        heads: dict[str, int] = {}
        for canvas_id, _ in canvases:
            log = read_log(server, canvas_id)
            assert_gapless(log)
            heads[canvas_id] = len(log)
            # The served state is a fold of the log, from nothing.
            assert served[canvas_id]["version"] == len(log)
            assert fold(canvas_id, log).to_json() == served[canvas_id]
            # No command applied twice: a command's events are one contiguous run, once.
            runs: dict[str, list[int]] = defaultdict(list)
            for event in log:
                runs[event["command_id"]].append(event["seq"])
            mine = [client for client in clients if client.canvas_id == canvas_id]
            for client in mine:
                for command_id, ack in client.acks.items():
                    assert runs[command_id] == ack["seqs"] and len(ack["seqs"]) == 1, (command_id, ack)
                for reply in client.duplicate_acks:
                    assert runs[reply["command_id"]] == reply["seqs"]
                for command_id in client.rejects:
                    assert command_id not in runs, f"rejected {command_id} is in the log"
            ours = {cid for client in mine for cid in client.acks}
            strangers = {cid for cid in runs if not cid.startswith("~")} - ours
            assert strangers <= {log[0]["command_id"]}, f"events from commands nobody was acked for: {strangers}"
            anonymous = {event["actor"] for event in log[1:] if event["command_id"].startswith("~")}
            assert anonymous <= {"engine"}, f"events without a client's command id from {anonymous}"

        for client in clients:
            assert not client.rejects, f"client {client.index}: {list(client.rejects.values())[:3]}"
            assert not client.unacked

        # Retrying any acknowledged command (after all those restarts) appends nothing and answers the original.
        sample_rng = random.Random(SEED + 1)
        probe = clients[0]
        sample = sample_rng.sample(sorted(probe.acks), 25)
        async with connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{probe.canvas_id}") as ws:
            await ws.send(orjson.dumps({"type": "hello", "token": probe.token, "user": "worker0"}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            for command_id in sample:
                await ws.send(probe.messages[command_id])
            answers: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(20):
                while len(answers) < len(sample):
                    reply = orjson.loads(await ws.recv())
                    if reply.get("type") in ("ack", "reject"):
                        answers[reply["command_id"]] = reply
            # The same id for another command is refused, not applied.
            await ws.send(orjson.dumps({"type": "command", "command_id": sample[0],
                                        "command": {"type": "rename_canvas", "name": "an impostor"}}).decode())  # fmt: skip
            while (reply := orjson.loads(await asyncio.wait_for(ws.recv(), 20))).get("type") != "reject":
                pass
            assert reply["code"] == "command_id_reused"
        for command_id in sample:
            assert answers[command_id]["type"] == "ack" and answers[command_id]["duplicate"] is True
            assert answers[command_id]["seqs"] == probe.acks[command_id]["seqs"]
        assert len(read_log(server, probe.canvas_id)) == heads[probe.canvas_id], "a retry appended something"

        final_pid = server.process.pid
        server.stop(signal.SIGKILL)  # the last crash: then read the files it left
    finally:
        server.stop(signal.SIGKILL)

    snapshots_checked = check_store(server.data_dir / "opendream.db", heads)
    duplicates = sum(len(client.duplicate_acks) for client in clients)
    retried = sum(len(client.retried) for client in clients)
    record_figures(
        "crash",
        {
            "seed": SEED,
            "clients": CLIENTS,
            "sigkill_rounds": len(kills) + 1,
            "acked_commands": sum(len(client.acks) for client in clients),
            "events_in_logs": sum(heads.values()),
            "retried_after_reconnect": retried,
            "answered_duplicate": duplicates,
            "in_flight_at_kills": [kill["in_flight"] for kill in kills],
            "snapshots_checked": snapshots_checked,
            "seconds": round(time.monotonic() - started, 1),
            "last_pid": final_pid,
        },
    )
    assert retried > 0, "no command was ever in flight at a kill: the test did not test anything"


def check_store(db_path: Path, heads: dict[str, int]) -> int:
    """With the server dead: every snapshot equals the fold of the log up to its version, and the latest state
    read through snapshots equals the fold from seq 1. Returns how many snapshots were compared."""
    store = SQLEventStore(f"sqlite:///{db_path}")
    try:
        service = CanvasService(store, Decider(default_registry()))
        checked = 0
        for canvas_id, head in heads.items():
            assert store.head(canvas_id) == head
            full = service.project_at(canvas_id, head, use_snapshots=False)
            assert encode_state(service.project_at(canvas_id, head)) == encode_state(full)
            for version in range(1, head + 1):
                snapshot = store.snapshot_at_or_before(canvas_id, version)
                if snapshot is None or snapshot.version != version:
                    continue
                folded = service.project_at(canvas_id, version, use_snapshots=False)
                assert orjson.loads(snapshot.state) == orjson.loads(encode_state(folded)), f"snapshot {version}"
                checked += 1
        return checked
    finally:
        store.close()
