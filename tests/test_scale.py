"""Scale-out on PostgreSQL: several web replicas and separate render workers over one database."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from websockets.asyncio.client import connect

from tests.conftest import POSTGRES_URL
from tests.server_process import ServerProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture
def shared(tmp_path):
    """A fresh PostgreSQL schema and one data directory (blobs, models) shared by every process."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    data = tmp_path / "data"
    from engine.models.loader import ModelManager, ModelOptions

    ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=data / "models")).get()._resolve_path()
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", data
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def start_worker(db: str, data: Path, lease: float = 30.0) -> subprocess.Popen[bytes]:
    log = (data.parent / f"worker-{secrets.token_hex(3)}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "worker", "--db", db, "--data", str(data), "--lease", str(lease)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def wait_for(predicate, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not met in time")


@pytest.mark.anyio
async def test_clients_on_two_replicas_converge_on_one_canvas(shared):
    db, data = shared
    with (
        ServerProcess(data, None, "--db", db, "--no-worker") as one,
        ServerProcess(data, None, "--db", db, "--no-worker") as two,
    ):
        with one.client() as client:
            created = client.post("/api/canvases", json={"name": "Shared"}).json()
        canvas_id, token = created["id"], created["owner_token"]

        async def join(server: ServerProcess, user: str):
            ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}")
            await ws.send(json.dumps({"type": "hello", "token": token, "user": user, "since": 1}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            return ws

        alice, bob = await join(one, "alice"), await join(two, "bob")
        seen: dict[str, list[int]] = {"alice": [], "bob": []}
        presence: list[dict] = []

        async def read(ws, user: str, until: int) -> None:
            while not seen[user] or seen[user][-1] < until:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "event":
                    seen[user].append(message["seq"])
                elif message["type"] == "presence":
                    presence.append(message)

        async def edit(ws, user: str) -> None:
            for index in range(10):
                await ws.send(json.dumps({"type": "command", "command_id": f"{user}-{index}",
                                          "command": {"type": "rename_canvas", "name": f"{user} {index}"}}))  # fmt: skip

        await alice.send(json.dumps({"type": "presence", "cursor": {"x": 1, "y": 2}}))
        await asyncio.gather(edit(alice, "alice"), edit(bob, "bob"))
        await asyncio.gather(read(alice, "alice", 21), read(bob, "bob", 21))
        assert seen["alice"] == seen["bob"] == list(range(2, 22))  # one order, no gap, no duplicate, on both
        assert any(p["user"].endswith(".alice") for p in presence)  # presence crossed from replica one to two
        await alice.close()
        await bob.close()


def test_a_rescan_on_one_replica_is_a_rescan_on_every_replica(shared):
    """A model put in the shared models directory and rescanned on one replica is offered by the other too
    (opendream_models over LISTEN/NOTIFY), so that a command naming it is accepted whichever replica decides it."""
    db, data = shared
    from engine.models.loader import ModelManager, ModelOptions

    tiny = ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=data / "models")).get()._resolve_path()
    with (
        ServerProcess(data, None, "--db", db, "--no-worker") as one,
        ServerProcess(data, None, "--db", db, "--no-worker") as two,
    ):

        def offered(server: ServerProcess) -> set[str]:
            with server.client() as client:
                listed = {entry["name"] for entry in client.get("/api/models").json()["models"]}
                operations = {op["name"]: op for op in client.get("/api/operations").json()["operations"]}
            choice = operations["txt2img"]["params_schema"]["properties"]["model"]
            enum = next((item["enum"] for item in choice.get("anyOf", [choice]) if "enum" in item), [])
            return listed & set(enum)

        assert "checkpoints/second" not in offered(two)
        shutil.copytree(tiny, data / "models" / "checkpoints" / "second")
        with one.client() as client:
            assert client.post("/api/models/rescan").status_code == 200
        assert "checkpoints/second" in offered(one)
        wait_for(lambda: "checkpoints/second" in offered(two), timeout=20)
        with two.client() as client:  # and the other replica accepts a layer on it
            created = client.post("/api/canvases", json={"name": "On the new model"}).json()
            command = {
                "type": "add_layer",
                "operation": "txt2img",
                "params": {"prompt": "x", "model": "checkpoints/second"},
            }
            answer = client.post(
                f"/api/canvases/{created['id']}/commands", json={"command_id": "c1", "command": command}
            )
            assert answer.status_code == 200, answer.text


def rendered_events(server: ServerProcess, canvas_id: str) -> list[dict]:
    with server.client() as client:
        events = client.get(f"/api/canvases/{canvas_id}/events").json()["events"]
    return [event for event in events if event["type"] in ("layer.rendered", "layer.failed")]


def add_layers(server: ServerProcess, canvas_id: str, count: int, steps: int = 2, size: int = 64) -> None:
    with server.client() as client:
        for index in range(count):
            params = {"prompt": f"{canvas_id} p{index}", "width": size, "height": size, "steps": steps}
            command = {
                "type": "add_layer",
                "layer_id": f"l{index}",
                "operation": "txt2img",
                "params": params,
                "seed": index,
            }
            assert client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": f"c{index}",
                                                                           "command": command}).status_code == 200  # fmt: skip


def test_two_workers_drain_the_queue_without_rendering_anything_twice(shared):
    db, data = shared
    with ServerProcess(data, None, "--db", db, "--no-worker") as web:
        with web.client() as client:
            canvases = [client.post("/api/canvases", json={"name": f"c{n}"}).json()["id"] for n in range(3)]
        for canvas_id in canvases:
            add_layers(web, canvas_id, 4)
        workers = [start_worker(db, data), start_worker(db, data)]
        try:
            for canvas_id in canvases:
                wait_for(lambda canvas_id=canvas_id: len(rendered_events(web, canvas_id)) >= 4)
            time.sleep(1.0)  # a duplicate would show up now
            for canvas_id in canvases:
                events = rendered_events(web, canvas_id)
                assert sorted(e["payload"]["layer_id"] for e in events) == ["l0", "l1", "l2", "l3"]
                assert all(e["type"] == "layer.rendered" for e in events)
            engine = create_engine(db)
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM renders").scalar() == 12  # each computed once
                assert conn.exec_driver_sql("SELECT count(*) FROM render_jobs").scalar() == 0  # drained
            engine.dispose()
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)


def test_a_job_whose_worker_dies_is_finished_by_another(shared):
    db, data = shared
    with ServerProcess(data, None, "--db", db, "--no-worker") as web:
        with web.client() as client:
            canvas_id = client.post("/api/canvases", json={"name": "slow"}).json()["id"]
        add_layers(web, canvas_id, 1, steps=150, size=256)
        doomed = start_worker(db, data, lease=3.0)
        engine = create_engine(db)
        try:

            def claimed() -> bool:
                with engine.connect() as conn:
                    return conn.exec_driver_sql("SELECT claimed_by FROM render_jobs").scalar() is not None

            wait_for(claimed)
            time.sleep(1.0)  # mid-render
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            assert rendered_events(web, canvas_id) == []
            survivor = start_worker(db, data, lease=3.0)
            try:
                wait_for(lambda: rendered_events(web, canvas_id), timeout=180)
                [event] = rendered_events(web, canvas_id)
                assert event["type"] == "layer.rendered" and event["payload"]["layer_id"] == "l0"
            finally:
                survivor.send_signal(signal.SIGTERM)
                survivor.wait(30)
        finally:
            engine.dispose()
