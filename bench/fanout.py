"""Collaboration benchmark: a real server process, real sockets, 1, 10 and 50 clients on one canvas.

    .venv/bin/python bench/fanout.py [--commands 300] [--clients 1,10,50,200]

For each client count:
- latency: one client sends commands one at a time; for each, the time from sending it to its event having
  reached every connected client (p50, p99). Appends are durable (SQLite, fsync per commit).
- throughput: every client sends commands as fast as its acks come back; commands/s over all of them.
- the limit, measured in the same run: a bare `websockets` server in its own process that broadcasts each
  message it receives to every client (no decision, no storage), the same clients, the same timing.
Ends with one JSON line: {"p99_ms_50_clients", "raw_p99_ms_50_clients", "fanout_over_raw_p99_50", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import ClientConnection, connect

from tests.server_process import ServerProcess


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrivals: dict[int, float] = {}  # event seq -> when it arrived
        self.acks: dict[str, dict[str, Any]] = {}
        self.ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.seq_waiters: dict[int, asyncio.Future[None]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            message = json.loads(raw)
            if message["type"] == "event":
                self.arrivals[message["seq"]] = now
                waiter = self.seq_waiters.pop(message["seq"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif message["type"] in ("ack", "reject"):
                waiter = self.ack_waiters.pop(message["command_id"], None)
                if waiter is not None:
                    waiter.set_result(message)

    async def seen(self, seq: int) -> None:
        if seq in self.arrivals:
            return
        future = self.seq_waiters.setdefault(seq, asyncio.get_running_loop().create_future())
        await future

    async def command(self, command_id: str, command: dict[str, Any]) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        self.ack_waiters[command_id] = future
        await self.ws.send(json.dumps({"type": "command", "command_id": command_id, "command": command}))
        return await future


async def open_clients(servers: list[ServerProcess], canvas_id: str, token: str, count: int) -> list[Client]:
    clients = []
    for index in range(count):
        server = servers[index % len(servers)]  # spread over the replicas
        ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}", max_size=2**24)
        await ws.send(json.dumps({"type": "hello", "token": token, "user": f"bench{index}"}))
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        clients.append(Client(ws))
    return clients


RAW_SERVER = """
import asyncio, json, sys
from websockets.asyncio.server import broadcast, serve

clients = set()

async def handler(ws):
    clients.add(ws)
    try:
        async for raw in ws:
            message = json.loads(raw)
            broadcast(clients, json.dumps({"type": "event", "seq": message["seq"], "event": message}))
    finally:
        clients.discard(ws)

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=2**24):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


async def measure_raw(count: int, commands: int) -> dict[str, float]:
    """The same broadcast with nothing in between: a bare websockets server relaying each message to all."""
    import subprocess

    from tests.server_process import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        clients = [Client(await connect(f"ws://127.0.0.1:{port}", max_size=2**24)) for _ in range(count)]
        latencies = []
        for seq in range(1, commands + 1):
            started = time.perf_counter()
            await clients[0].ws.send(json.dumps({"seq": seq, "type": "layer.opacity_changed",
                                                 "payload": {"layer_id": "a", "opacity": seq / 1000}}))  # fmt: skip
            await asyncio.gather(*(client.seen(seq) for client in clients))
            latencies.append(max(client.arrivals[seq] for client in clients) - started)
        for client in clients:
            await client.ws.close()
            client.reader.cancel()
    finally:
        process.terminate()
        process.wait(timeout=10)
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
    }


async def measure(servers: list[ServerProcess], count: int, commands: int) -> dict[str, float]:
    with servers[0].client() as http:
        created = http.post("/api/canvases", json={"name": f"fanout-{count}"}).json()
        http.post(
            f"/api/canvases/{created['id']}/commands",
            json={"command_id": "setup", "command": {"type": "add_layer", "layer_id": "a", "operation": "txt2img",
                                                     "params": {"prompt": "x", "width": 64, "height": 64, "steps": 1}}},
        )  # fmt: skip
        # Measure with the engine idle: the first render of a server loads the model.
        for _ in range(600):
            state = http.get(f"/api/canvases/{created['id']}/state").json()
            if state["layers"][0]["status"] == "rendered":
                break
            time.sleep(0.1)
    clients = await open_clients(servers, created["id"], created["owner_token"], count)
    sender = clients[0]

    latencies = []
    for index in range(commands):
        started = time.perf_counter()
        ack = await sender.command(
            f"lat-{index}", {"type": "set_opacity", "layer_id": "a", "opacity": (index % 100) / 100 + 0.001}
        )
        seq = ack["seqs"][0]
        await asyncio.gather(*(client.seen(seq) for client in clients))
        latencies.append(max(client.arrivals[seq] for client in clients) - started)

    per_client = max(1, commands // count)
    started = time.perf_counter()

    async def flood(client: Client, n: int) -> None:
        for index in range(per_client):
            await client.command(f"tp-{n}-{index}", {"type": "rename_layer", "layer_id": "a", "name": f"{n}-{index}"})

    await asyncio.gather(*(flood(client, n) for n, client in enumerate(clients)))
    throughput = per_client * count / (time.perf_counter() - started)
    for client in clients:
        await client.ws.close()
        client.reader.cancel()
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "commands_per_s": round(throughput, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--clients", default="1,10,50,200")
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="for the two-replica figure: two servers on one PostgreSQL, clients split between them ('' to skip)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.clients.split(",")]
    figures: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        # one client machine opens every connection: the per-address cap must let them all in
        ServerProcess(Path(tmp) / "data", None, "--log-level", "warning", "--ws-max-per-address", "1000") as server,
    ):
        for count in counts:
            report(figures, f"{count} clients", f"_{count}_clients", await measure([server], count, args.commands))
            raw = await measure_raw(count, args.commands)
            figures[f"raw_p50_ms_{count}_clients"] = raw["p50_ms"]
            figures[f"raw_p99_ms_{count}_clients"] = raw["p99_ms"]
            ratio = figures[f"p99_ms_{count}_clients"] / raw["p99_ms"]
            figures[f"fanout_over_raw_p99_{count}"] = round(ratio, 3)
            print(f"  raw websockets broadcast: p50 {raw['p50_ms']} ms, p99 {raw['p99_ms']} ms -> x{ratio:.2f}")
    if args.postgres:
        result = await two_replicas(args.postgres, max(counts), args.commands)
        report(figures, f"{max(counts)} clients, 2 replicas", f"_{max(counts)}_clients_2_replicas", result)
    print(json.dumps(figures))


def report(figures: dict[str, float], label: str, suffix: str, result: dict[str, float]) -> None:
    print(f"{label}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
          f"{result['commands_per_s']} commands/s (all clients sending)")  # fmt: skip
    for key, value in result.items():
        figures[key + suffix] = value


async def two_replicas(postgres: str, count: int, commands: int) -> dict[str, float]:
    """Half the clients on each of two replicas over one PostgreSQL: every event crosses NOTIFY to reach half."""
    import secrets

    from sqlalchemy import create_engine

    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    db = f"{postgres}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            with (
                ServerProcess(data, None, "--db", db, "--log-level", "warning", "--ws-max-per-address", "1000") as one,
                ServerProcess(
                    data, None, "--db", db, "--no-worker", "--log-level", "warning", "--ws-max-per-address", "1000"
                ) as two,  # fmt: skip
            ):
                return await measure([one, two], count, commands)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
