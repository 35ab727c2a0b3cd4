"""A server on an SDXL model offers what the model can run, and says why not for the rest (real process)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

pytestmark = [pytest.mark.slow]


def test_an_sdxl_server_lists_what_its_model_cannot_run_and_renders_the_rest(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", None, "--model", "builtin:tiny-sdxl") as server, server.client() as client:
        health = client.get("/api/health").json()
        assert health["model"]["family"]["name"] == "sdxl"
        listing = client.get("/api/operations").json()
        unavailable = {entry["name"]: entry["error"] for entry in listing["unavailable"]}
        assert "controlnet_canny component" in unavailable["controlnet_canny"]
        assert "unet_pix2pix component" in unavailable["instruct_pix2pix"]
        assert listing["limits"]["working_pixels"] == 1024 * 1024  # the family's native size
        canvas = client.post("/api/canvases", json={"name": "XL"}).json()
        refused = client.post(f"/api/canvases/{canvas['id']}/commands", json={"command_id": "c", "command": {
            "type": "add_layer", "operation": "controlnet_canny", "params": {"control": "x"}}})  # fmt: skip
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "operation_unavailable"
        added = client.post(f"/api/canvases/{canvas['id']}/commands", json={"command_id": "t", "command": {
            "type": "add_layer", "layer_id": "t", "operation": "txt2img",
            "params": {"prompt": "a bay", "width": 64, "height": 64, "steps": 2}}})  # fmt: skip
        assert added.status_code == 200, added.text
        for _ in range(600):
            layer = client.get(f"/api/canvases/{canvas['id']}/state").json()["layers"][0]
            if layer["status"] in ("rendered", "failed"):
                break
            time.sleep(0.1)
        assert layer["status"] == "rendered", layer
        assert layer["output"]["fingerprint"]["family"] == "sdxl"


def test_a_hub_model_that_is_not_cached_is_reported_at_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    server = ServerProcess(tmp_path / "data", None, "--model", "nobody/not-cached", "--log-level", "info")
    with server, server.client() as client:
        model = client.get("/api/health").json()["model"]
    assert "not cached on this machine" in model["problem"] and "HF_HUB_OFFLINE" in model["problem"]
    assert "nobody/not-cached is not cached on this machine" in server.log_path.read_text()
