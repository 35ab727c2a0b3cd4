"""The HTTP API of a real `opendream serve` process, over a real socket."""

from __future__ import annotations

import io
import signal
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow


def png_bytes(width: int = 8, height: int = 8, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def command(client: httpx.Client, canvas_id: str, body: dict) -> httpx.Response:
    return client.post(f"/api/canvases/{canvas_id}/commands", json=body)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("server") / "data") as running:
        yield running


@pytest.fixture
def client(server: ServerProcess) -> httpx.Client:
    with server.client(**{"x-opendream-user": "tester"}) as client:
        yield client


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_log_survives_a_server_restart(tmp_path: Path, stop_signal: int):
    data = tmp_path / "data"
    with ServerProcess(data) as first, first.client() as client:
        canvas_id = client.post("/api/canvases", json={"name": "Persistent"}).json()["id"]
        upload = client.post(f"/api/blobs?canvas={canvas_id}", content=png_bytes(),
                             headers={"content-type": "image/png"}).json()  # fmt: skip
        for index, body in enumerate(
            [
                {"type": "add_layer", "layer_id": "a", "operation": "txt2img", "params": {"prompt": "a lighthouse"}},
                {"type": "add_layer", "layer_id": "b", "operation": "img2img", "params": {"source": "a"}},
                {"type": "set_opacity", "layer_id": "b", "opacity": 0.5},
                {"type": "rename_layer", "layer_id": "a", "name": "Lighthouse"},
            ]
        ):
            assert command(client, canvas_id, {"command_id": f"c{index}", "command": body}).status_code == 200
        state_before = client.get(f"/api/canvases/{canvas_id}/state").json()
        events_before = client.get(f"/api/canvases/{canvas_id}/events").json()["events"]
        # Every acknowledged command was fsynced before its answer: even SIGKILL loses none of it.
        assert first.stop(stop_signal) in (0, -stop_signal)  # uvicorn re-raises SIGTERM after a clean shutdown

    with ServerProcess(data) as second, second.client() as client:
        assert client.get(f"/api/canvases/{canvas_id}/state").json() == state_before
        assert client.get(f"/api/canvases/{canvas_id}/events").json()["events"] == events_before
        assert [c["id"] for c in client.get("/api/canvases").json()["canvases"]] == [canvas_id]
        assert client.get(f"/api/blobs/{upload['sha256']}").content == png_bytes()
        # The idempotency record survived too: a late retry appends nothing.
        retry = command(
            client, canvas_id, {"command_id": "c2", "command": {"type": "set_opacity", "layer_id": "b", "opacity": 0.5}}
        ).json()
        assert retry["duplicate"] and retry["seqs"] == [4]
        assert len(client.get(f"/api/canvases/{canvas_id}/events").json()["events"]) == len(events_before)


def test_health_and_operations(client):
    assert client.get("/api/health").json()["status"] == "ok"
    operations = {op["name"]: op for op in client.get("/api/operations").json()["operations"]}
    assert {"txt2img", "img2img", "inpaint"} <= set(operations)
    assert operations["img2img"]["inputs"] == {"source": "image"}


def test_create_list_and_read_a_canvas(client):
    created = client.post("/api/canvases", json={"name": "Garden"})
    assert created.status_code == 201 and created.json()["version"] == 1
    canvas_id = created.json()["id"]
    assert canvas_id in [c["id"] for c in client.get("/api/canvases").json()["canvases"]]
    state = client.get(f"/api/canvases/{canvas_id}/state").json()
    assert state == {
        "canvas_id": canvas_id,
        "version": 1,
        "name": "Garden",
        "order": [],
        "layers": [],
        "history": {},
        "origin": None,
        "checkpoints": [],
        "document": {"width": 0, "height": 0, "background": None},
    }
    [event] = client.get(f"/api/canvases/{canvas_id}/events").json()["events"]
    assert (
        event["type"] == "canvas.created"
        and event["seq"] == 1
        and event["actor"].startswith("t")
        and event["actor"].endswith(".tester")
    )


def test_commands_events_and_past_versions(client):
    canvas_id = client.post("/api/canvases", json={}).json()["id"]
    result = command(
        client,
        canvas_id,
        {"command_id": "x1", "command": {"type": "add_layer", "layer_id": "a", "operation": "txt2img", "seed": 9}},
    ).json()
    assert result["seqs"] == [2] and result["events"][0]["payload"]["seed"] == 9
    command(client, canvas_id, {"command_id": "x2", "command": {"type": "delete_layer", "layer_id": "a"}})
    assert client.get(f"/api/canvases/{canvas_id}/state").json()["layers"] == []
    past = client.get(f"/api/canvases/{canvas_id}/state", params={"version": 2}).json()
    assert [layer["id"] for layer in past["layers"]] == ["a"] and past["version"] == 2
    tail = client.get(f"/api/canvases/{canvas_id}/events", params={"after": 1}).json()["events"]
    assert [event["type"] for event in tail] == ["layer.added", "layer.deleted"]
    assert [e["seq"] for e in client.get(f"/api/canvases/{canvas_id}/events?after=1&limit=1").json()["events"]] == [2]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b"{not json", 400, "malformed_json", None),
        (b'{"command_id": "1", "command": {"type": "warp"}}', 400, "malformed_command", "command"),
        # Only the engine records renders: a client cannot forge one.
        (b'{"command_id": "1", "command": {"type": "record_render", "layer_id": "a", "revision": 1, "output": "' + b"a" * 64 + b'", "width": 1, "height": 1, "fingerprint": {}, "duration_ms": 1}}', 400, "malformed_command", "command"),
        (b'{"command_id": "1", "command": {"type": "add_layer", "operation": "warp"}}', 422, "unknown_operation", "operation"),
        (b'{"command_id": "1", "command": {"type": "add_layer", "operation": "txt2img", "params": {"steps": -1}}}', 422,
         "invalid_params", "params.steps"),
        (b'{"command_id": "1", "command": {"type": "delete_layer", "layer_id": "ghost"}}', 422, "unknown_layer", "layer_id"),
        (b'{"command_id": "1", "expected_version": 7, "command": {"type": "rename_canvas", "name": "x"}}', 409,
         "version_conflict", "expected_version"),
    ],
)  # fmt: skip
def test_bad_commands_get_a_clear_error_and_change_nothing(client, body, status, code, field):
    canvas_id = client.post("/api/canvases", json={}).json()["id"]
    response = client.post(f"/api/canvases/{canvas_id}/commands", content=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field) and error["message"]
    assert client.get(f"/api/canvases/{canvas_id}").json()["version"] == 1


def test_unknown_canvas_routes_and_queries(client):
    assert client.get("/api/canvases/nope/state").json()["error"]["code"] == "canvas_not_found"
    assert client.get("/api/canvases/nope/events").status_code == 404
    missing = client.post("/api/canvases/nope/commands", json={"command_id": "1", "command": {"type": "delete_layer",
                                                                                            "layer_id": "a"}})  # fmt: skip
    assert missing.status_code == 404
    assert client.get("/api/nothing-here").json()["error"]["code"] == "not_found"
    canvas_id = client.post("/api/canvases", json={}).json()["id"]
    assert client.get(f"/api/canvases/{canvas_id}/state?version=abc").json()["error"]["field"] == "version"
    assert client.get(f"/api/canvases/{canvas_id}/state?version=5").json()["error"]["code"] == "bad_version"


def test_oversized_json_is_refused(client):
    canvas_id = client.post("/api/canvases", json={}).json()["id"]
    huge = {"command_id": "1", "command": {"type": "rename_canvas", "name": "x" * (2 * 1024 * 1024)}}
    response = client.post(f"/api/canvases/{canvas_id}/commands", json=huge)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_blob_upload_and_download(client):
    data = png_bytes(16, 8)
    response = client.post("/api/blobs", content=data, headers={"content-type": "image/png"})
    assert response.status_code == 201
    info = response.json()
    assert (info["width"], info["height"], info["media_type"], info["size"]) == (16, 8, "image/png", len(data))
    fetched = client.get(f"/api/blobs/{info['sha256']}")
    assert fetched.content == data and fetched.headers["content-type"] == "image/png"
    assert "immutable" in fetched.headers["cache-control"]
    assert client.post("/api/blobs", content=data).json()["sha256"] == info["sha256"]  # stored once


def decompression_bomb() -> bytes:
    """A valid PNG header claiming 100000 x 100000 pixels, a few hundred bytes long."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is not an image", "not an image"),
        (png_bytes(64, 64)[:-40], "truncated"),
        (decompression_bomb(), "pixels"),
        (b"GIF89a" + b"\0" * 50, "not an image"),
    ],
    ids=["empty", "text", "truncated", "bomb", "gif"],
)
def test_bad_uploads_are_rejected_with_a_reason(client, payload, reason):
    response = client.post("/api/blobs", content=payload)
    assert response.status_code == 422
    assert reason in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "ABC", "a" * 63, "g" * 64])
def test_blob_names_never_become_paths(client, name):
    response = client.get(f"/api/blobs/{name}")
    assert response.status_code in (400, 404)
    assert response.json()["error"]["code"] in ("bad_blob_name", "not_found")


def test_a_missing_blob_is_404(client):
    assert client.get(f"/api/blobs/{'0' * 64}").json()["error"]["code"] == "blob_not_found"


def test_render_queue_and_cancel_routes(client):
    canvas_id = client.post("/api/canvases", json={}).json()["id"]
    renders = client.get(f"/api/canvases/{canvas_id}/renders").json()
    assert renders["queue"] == [] and "stats" in renders
    response = client.post(f"/api/canvases/{canvas_id}/layers/ghost/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_rendering"
    assert client.get("/api/canvases/nope/renders").status_code == 404
