"""The server's model library over real sockets: GET /api/models, the admin's rescan, the schemas' model and
LoRA choices, and a command naming a model the library lacks refused when decided."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.relsupport import layers, new_canvas, start_server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.models.loader import ModelManager, ModelOptions
    from tests.engine.standins import build_lora

    root = tmp_path_factory.mktemp("models")
    built = tmp_path_factory.mktemp("built")
    manager = ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=built))
    sd1 = manager.get("builtin:tiny")._resolve_path()
    shutil.copytree(manager.get("builtin:tiny-sdxl")._resolve_path(), root / "checkpoints" / "tiny-xl")
    from diffusers import UNet2DConditionModel

    build_lora(UNet2DConditionModel.from_pretrained(str(sd1), subfolder="unet"), root / "loras" / "style.safetensors")
    (root / "checkpoints" / "notes.safetensors").write_bytes(b"not a model")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_root: Path):
    process = start_server(tmp_path_factory.mktemp("data"), env={"OPENDREAM_MODELS": str(models_root)})
    yield process
    process.stop()


def test_the_library_is_listed_with_reasons(server, models_root: Path) -> None:
    with server.client() as client:
        response = client.get("/api/models")
        body = response.json()
    assert str(models_root) not in response.text  # an open route: no server paths
    listed = {entry["name"]: entry for entry in body["models"]}
    assert body["placeholder"] is True and body["default"] == "builtin:tiny"
    assert listed["checkpoints/tiny-xl"]["family"] == "sdxl" and listed["checkpoints/tiny-xl"]["usable"]
    assert listed["loras/style.safetensors"]["kind"] == "lora"
    assert "not a readable" in listed["checkpoints/notes.safetensors"]["problem"]
    assert "spec" not in listed["checkpoints/tiny-xl"]  # no server paths for clients


def test_schemas_offer_the_library(server) -> None:
    with server.client() as client:
        operations = {op["name"]: op for op in client.get("/api/operations").json()["operations"]}
    schema = operations["txt2img"]["params_schema"]
    (choice,) = [option for option in schema["properties"]["model"]["anyOf"] if "enum" in option]
    assert set(choice["enum"]) == {"builtin:tiny", "checkpoints/tiny-xl"}
    assert schema["$defs"]["LoraRef"]["properties"]["name"]["enum"] == ["loras/style.safetensors"]


def test_a_layer_renders_with_its_own_model_and_an_unknown_one_is_refused(server) -> None:
    canvas_id, token = new_canvas(server)
    with server.client(token) as client:
        refused = client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": "bad-1", "command": {
            "type": "add_layer", "layer_id": "bad", "operation": "txt2img",
            "params": {"prompt": "x", "width": 64, "height": 64, "steps": 2, "model": "checkpoints/elsewhere"}}})  # fmt: skip
        assert refused.status_code == 422 and "model" in refused.text
        accepted = client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": "xl-1", "command": {
            "type": "add_layer", "layer_id": "xl", "operation": "txt2img",
            "params": {"prompt": "x", "width": 64, "height": 64, "steps": 2, "model": "checkpoints/tiny-xl"}}})  # fmt: skip
        assert accepted.status_code in (200, 201), accepted.text
    with server.client(token) as client:
        status = wait_for(lambda: layers(client, canvas_id).get("xl", {}).get("status") in ("rendered", "failed")
                          and layers(client, canvas_id)["xl"], 120, "the SDXL layer")  # fmt: skip
        assert status["status"] == "rendered", status.get("error")
        assert set(layers(client, canvas_id)) == {"xl"}  # the refused command changed nothing
    with server.client() as client:
        listed = {entry["name"]: entry for entry in client.get("/api/models").json()["models"]}
    assert listed["checkpoints/tiny-xl"]["loaded"]


def test_a_rescan_is_the_admins_and_finds_new_files(server, models_root: Path) -> None:
    _, token = new_canvas(server)
    with server.client(token) as client:
        assert client.post("/api/models/rescan").status_code == 403
    shutil.copy(models_root / "loras" / "style.safetensors", models_root / "loras" / "second.safetensors")
    with server.client(server.admin_token) as client:
        body = client.post("/api/models/rescan").json()
        assert "loras/second.safetensors" in {entry["name"] for entry in body["models"]}
        schema = {op["name"]: op for op in client.get("/api/operations").json()["operations"]}["img2img"]
    names = schema["params_schema"]["$defs"]["LoraRef"]["properties"]["name"]["enum"]
    assert "loras/second.safetensors" in names


@pytest.mark.anyio
async def test_a_flood_of_rescan_notices_scans_once_and_once_more(monkeypatch) -> None:
    """Other processes' `opendream_models` notices (server/bus.py): however many come while one scan runs, one
    more follows it (`rescan` itself runs them one at a time)."""
    import asyncio

    import server.library
    from server.services import _rescanning

    scans: list[object] = []

    async def slow_rescan(services: object) -> None:
        scans.append(services)
        await asyncio.sleep(0.05)

    monkeypatch.setattr(server.library, "rescan", slow_rescan)
    on_models = _rescanning(object())  # type: ignore[arg-type]
    for _ in range(50):
        on_models()
    await asyncio.sleep(0.3)
    assert len(scans) == 2
    on_models()  # after the flood: a notice is heard again
    await asyncio.sleep(0.1)
    assert len(scans) == 3
