"""A server on an SD 3 / FLUX.1 model lists what it cannot run, with the reason, and renders the rest (real
process)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize(("model", "family"), [("builtin:tiny-sd3", "sd3"), ("builtin:tiny-flux", "flux")])
def test_a_transformer_family_server_lists_what_it_lacks_and_renders(tmp_path: Path, model: str, family: str) -> None:
    with ServerProcess(tmp_path / "data", None, "--model", model) as server, server.client() as client:
        health = client.get("/api/health").json()
        assert health["model"]["family"]["name"] == family
        listing = client.get("/api/operations").json()
        unavailable = {entry["name"]: entry["error"] for entry in listing["unavailable"]}
        assert "has no controlnet_canny pipeline" in unavailable["controlnet_canny"]
        assert "has no instruct_pix2pix pipeline" in unavailable["instruct_pix2pix"]
        assert listing["limits"]["working_pixels"] == 1024 * 1024
        canvas = client.post("/api/canvases", json={"name": family}).json()
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
        assert layer["output"]["fingerprint"]["family"] == family
