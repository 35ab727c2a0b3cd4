"""Shared by the reliability tests: a real server process, WebSocket peers, reading and folding the log,
measuring a process's memory, and recording the figures docs/reliability.md quotes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from server.core.events import Event, decode_payload
from server.core.projection import empty_state, project
from server.core.state import CanvasState
from tests.server_process import ServerProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Where to collect the figures docs/reliability.md quotes (a JSON file); unset: they are only printed (pytest -s).
FIGURES = os.environ.get("OPENDREAM_RELIABILITY_FIGURES")


def record_figures(section: str, figures: dict[str, Any]) -> None:
    """Print `figures` and merge them under `section` into $OPENDREAM_RELIABILITY_FIGURES when it is set."""
    print(f"\n[reliability] {section}: {json.dumps(figures, sort_keys=True)}")
    if not FIGURES:
        return
    path = Path(FIGURES)
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        current = {}
    current[section] = {**figures, "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_server(data_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None):
    """A running `opendream serve`; `env` adds environment variables for the child."""
    server = ServerProcess(data_dir, port, *args)
    if env:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            return server.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return server.start()


def new_canvas(server: ServerProcess, name: str = "Reliability") -> tuple[str, str]:
    with server.client() as client:
        response = client.post("/api/canvases", json={"name": name})
        assert response.status_code == 201, response.text
        body = response.json()
    return body["id"], body["owner_token"]


def share(server: ServerProcess, canvas_id: str, owner_token: str, role: str) -> dict[str, Any]:
    with server.client(owner_token) as client:
        response = client.post(f"/api/canvases/{canvas_id}/shares", json={"role": role})
        assert response.status_code == 201, response.text
        return response.json()


def read_log(server: ServerProcess, canvas_id: str) -> list[dict[str, Any]]:
    """The whole log of a canvas over HTTP (admin token), every page."""
    events: list[dict[str, Any]] = []
    with server.client() as client:
        while True:
            response = client.get(f"/api/canvases/{canvas_id}/events", params={"after": len(events)})
            assert response.status_code == 200, response.text
            page = response.json()["events"]
            if not page:
                return events
            events.extend(page)


def to_event(data: dict[str, Any]) -> Event:
    return Event(
        canvas_id=data["canvas_id"],
        seq=data["seq"],
        event_id=data["event_id"],
        data=decode_payload(data["type"], data["schema_version"], data["payload"]),
        actor=data["actor"],
        command_id=data["command_id"],
        timestamp=data["timestamp"],
        schema_version=data["schema_version"],
    )


def fold(canvas_id: str, events: list[dict[str, Any]]) -> CanvasState:
    """The state the log's events give, folded from nothing (no snapshot)."""
    return project(empty_state(canvas_id), [to_event(event) for event in events])


def assert_gapless(events: list[dict[str, Any]]) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs are not 1..{len(seqs)}: first break near {_first_break(seqs)}"


def _first_break(seqs: list[int]) -> Any:
    for index, seq in enumerate(seqs, start=1):
        if seq != index:
            return (index, seq)
    return None


class Peer:
    """One WebSocket connection that speaks the protocol and remembers the events it saw."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.version: int = welcome["version"]
        self.seqs: list[int] = [event["seq"] for event in welcome.get("events", [])]
        if self.seqs:
            self.version = self.seqs[-1]
        self.inbox: list[dict[str, Any]] = []

    async def recv(self, timeout: float = 20) -> dict[str, Any]:
        message = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if message.get("type") == "event":
            assert message["seq"] == self.version + 1, f"event {message['seq']} after {self.version}"
            self.version = message["seq"]
            self.seqs.append(message["seq"])
        return message

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if predicate(message):
                    return message
                self.inbox.append(message)

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else orjson.dumps(message).decode())

    async def command(self, command_id: str, command: dict[str, Any], **extra: Any) -> dict[str, Any]:
        await self.send({"type": "command", "command_id": command_id, "command": command, **extra})
        return await self.until(lambda m: m.get("type") in ("ack", "reject") and m.get("command_id") == command_id)

    async def close(self) -> None:
        await self.ws.close()


async def join(port: int, canvas_id: str, token: str | None, **hello: Any) -> Peer:
    ws = await connect(f"ws://127.0.0.1:{port}/ws/canvases/{canvas_id}", max_size=2**24, open_timeout=20)
    await ws.send(orjson.dumps({"type": "hello", "token": token, **hello}).decode())
    welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
    assert welcome["type"] == "welcome", welcome
    return Peer(ws, welcome)


def health(server: ServerProcess) -> bool:
    try:
        return httpx.get(server.url + "/api/health", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def model_settled(server: ServerProcess, timeout: float = 120) -> None:
    """Wait until the model's background load has ended (ready or failed): a load finishing in the middle of
    a measurement adds its weights to the server's memory and its CPU to the latencies."""

    def settled() -> bool:
        model = httpx.get(server.url + "/api/health", timeout=10).json().get("model") or {}
        return model.get("state", "ready") in ("ready", "failed")

    wait_for(settled, timeout, "the model's background load")


def layers(client: httpx.Client, canvas_id: str) -> dict[str, dict[str, Any]]:
    """The canvas's layers by id, as the HTTP API shows them now."""
    return {layer["id"]: layer for layer in client.get(f"/api/canvases/{canvas_id}/state").json()["layers"]}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something true (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)
