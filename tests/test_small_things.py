"""Issue #19's smaller server-side items: refusals that give sizes people read, the upload limit the client
learns before sending a file, scheduler labels in the schema, and an imported canvas named as a copy."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from engine.image_limits import ImageLimits, MiB
from server.image_checks import InvalidImage, inspect_image
from server.render_queue import is_cancellation
from server.sizes import over_limit, readable_size
from server.workflow.imports import imported_name
from tests.server_process import ServerProcess
from tests.test_renders import canvas_with, engine, img2img, model_options, renderer, txt2img  # noqa: F401 (fixtures)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (900, "900 bytes"),
        (1536, "1.5 KB"),
        (20 * MiB, "20 MB"),
        (int(53.2 * MiB), "53.2 MB"),
        (3 * 1024 * MiB, "3 GB"),
    ],
)
def test_sizes_read_as_people_read_them(size: int, text: str) -> None:
    assert readable_size(size) == text


def test_a_size_just_over_its_limit_is_given_to_the_byte() -> None:
    assert over_limit(int(53.2 * MiB), 50 * MiB) == ("53.2 MB", "50 MB")
    # rounded, 20 MB + 5 bytes would read "20 MB; the limit is 20 MB"
    assert over_limit(20 * MiB + 5, 20 * MiB) == ("20,971,525 bytes", "20 MB (20,971,520 bytes)")


def test_an_oversized_image_is_refused_with_readable_sizes() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = buffer.getvalue() + b"\x00" * 3000
    with pytest.raises(InvalidImage) as refused:
        inspect_image(data, ImageLimits(max_bytes=2048))
    assert str(refused.value) == f"image is {readable_size(len(data))}; the limit is 2 KB"


@pytest.mark.parametrize(
    ("source", "copy"),
    [
        ("Harbour", "Harbour (imported)"),
        ("Harbour (imported)", "Harbour (imported 2)"),
        ("Harbour (imported 2)", "Harbour (imported 3)"),
        ("", "Imported canvas"),
        ("x" * 200, "x" * 180 + " (imported)"),
    ],
)
def test_an_imported_canvas_is_named_as_a_copy(source: str, copy: str) -> None:
    assert imported_name(source) == copy
    assert len(imported_name(source)) <= 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("small") / "data") as running:
        yield running


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(**{"x-opendream-user": "tester"}) as client:
        yield client


def test_the_upload_limit_is_stated_with_the_render_limits(client: httpx.Client) -> None:
    upload = client.get("/api/operations").json()["limits"]["upload"]
    assert upload == {
        "max_bytes": 20 * MiB,
        "max_pixels": 4096 * 4096,
        "max_side": 8192,
        "media_types": ["image/png", "image/jpeg", "image/webp"],
    }


def test_the_server_refuses_an_oversized_upload_in_megabytes(client: httpx.Client) -> None:
    body = b"\x89PNG\r\n\x1a\n" + b"\x00" * (int(1.5 * MiB) + 20 * MiB)
    response = client.post("/api/blobs", content=body)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "request body is 21.5 MB; the limit is 20 MB"


def test_schedulers_carry_human_labels(client: httpx.Client) -> None:
    operations = {op["name"]: op for op in client.get("/api/operations").json()["operations"]}
    scheduler = operations["txt2img"]["params_schema"]["properties"]["scheduler"]
    labels = scheduler["x-opendream-labels"]
    assert labels["dpm++_karras"] == "DPM++ 2M Karras" and labels["euler_a"] == "Euler Ancestral"
    assert set(labels) == set(scheduler["enum"])  # every id has its label
    assert "x-opendream-labels" in operations["img2img"]["params_schema"]["properties"]["scheduler"]


def test_an_imported_canvas_is_not_named_as_its_source(client: httpx.Client) -> None:
    canvas_id = client.post("/api/canvases", json={"name": "Harbour"}).json()["id"]
    rename = {"command_id": "r1", "command": {"type": "rename_canvas", "name": "Harbour at dawn"}}
    assert client.post(f"/api/canvases/{canvas_id}/commands", json=rename).status_code == 200
    workflow = client.get(f"/api/canvases/{canvas_id}/workflow").content
    created = client.post("/api/workflows", content=workflow, headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Harbour at dawn (imported)"
    state = client.get(f"/api/canvases/{created.json()['id']}/state").json()
    assert state["name"] == "Harbour at dawn (imported)"  # the latest name, renames included
    first = client.get(f"/api/canvases/{created.json()['id']}/state?version=1").json()
    assert first["name"] == "Harbour (imported)"  # and every past version's
    assert client.get(f"/api/canvases/{canvas_id}/state").json()["name"] == "Harbour at dawn"  # the source keeps its


def test_a_cancellation_is_told_from_a_failure() -> None:
    assert is_cancellation("cancelled by u-ada") and is_cancellation("render cancelled")
    assert not is_cancellation("RuntimeError: out of memory") and not is_cancellation(None)


@pytest.mark.anyio
async def test_a_layer_waiting_on_a_cancelled_input_says_cancelled_not_failed(engine) -> None:  # noqa: F811
    service, queue, _, _, _ = engine
    await queue.stop()  # nothing runs: both layers stay queued
    canvas_id = await canvas_with(service, txt2img("p"), img2img("c", source="p"))
    assert await queue.cancel(canvas_id, "p", "alice")
    state = await service.state(canvas_id)
    waiting = {item["layer_id"]: item for item in queue.queue(state)}
    name = state.layers["p"].name
    assert waiting["c"]["wait_reason"] == f"its input “{name}” was cancelled; render that layer again first"
