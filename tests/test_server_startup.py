"""Start-up (issue #15): the server answers at once, loads the model in the background with its progress in
/api/health and the log, a first render waits for the load, a model that cannot load fails fast with the
reason, and the generating operations' defaults follow the family within the server's limits (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.limits import RenderLimits
from tests.server_process import ServerProcess

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _health(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    return response.json()["model"]


def _add_layer(client: httpx.Client, canvas_id: str, layer_id: str, params: dict[str, Any]) -> httpx.Response:
    command = {"type": "add_layer", "layer_id": layer_id, "operation": "txt2img", "params": params}
    return client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": layer_id, "command": command})


def _settled(client: httpx.Client, canvas_id: str, layer_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        layers = {layer["id"]: layer for layer in client.get(f"/api/canvases/{canvas_id}/state").json()["layers"]}
        layer = layers[layer_id]
        if layer["status"] in ("rendered", "failed") or time.monotonic() > deadline:
            return layer
        time.sleep(0.05)


def test_the_start_path_imports_no_torch() -> None:
    """Everything `opendream serve` does before it answers, short of the background load: no torch/diffusers."""
    code = (
        "import sys\n"
        "from server.config import Settings\n"
        "from server.app import create_app\n"
        "from server.services import describe_model, install_family_defaults, load_operations\n"
        "import server.cli, server.render_queue, server.live, server.store.sql\n"
        "settings = Settings(model='builtin:tiny-sdxl')\n"
        "registry = load_operations(settings)\n"
        "describe_model(settings, registry)\n"
        "install_family_defaults(settings, registry)\n"
        "create_app(settings, registry)\n"
        "print([name for name in ('torch', 'diffusers', 'transformers') if name in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_health_answers_while_the_model_loads_and_a_first_render_waits_for_it(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server, server.client() as client:
        seen = [_health(client)]  # answered before torch is even imported
        canvas = client.post("/api/canvases", json={"name": "First"}).json()
        added = _add_layer(client, canvas["id"], "first", {"prompt": "a bay", "width": 64, "height": 64, "steps": 2})
        assert added.status_code == 200, added.text
        deadline = time.monotonic() + 60
        while seen[-1]["state"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
            seen.append(_health(client))
        layer = _settled(client, canvas["id"], "first", 60)
        log = server.log_path.read_text()
    states = [model["state"] for model in seen]
    ready = seen[-1]
    assert ready["state"] == "ready", ready
    assert set(states) <= {"loading", "ready"}, states
    # builtin:tiny is an SD 1.x folder of 5 components (model_index.json), each counted as it loads.
    assert ready["total"] == ready["done"] == 5 and len(ready["loaded"]) == 5, ready
    assert "unet" in ready["loaded"] and ready["seconds"] > 0 and ready["error"] is None
    if "loading" in states:
        loading = next(model for model in seen if model["state"] == "loading")
        assert loading["progress"] and loading["family"]["name"] == "sd1"
    assert "loading 5/5 components (vae)" in log and "loaded and warmed up" in log
    assert layer["status"] == "rendered", layer  # the first render waited for the load instead of failing


def test_a_model_that_cannot_load_is_reported_failed_and_renders_fail_fast(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"  # an SD 1.x folder by its configs, with no weights
    (broken / "unet").mkdir(parents=True)
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}
    (broken / "model_index.json").write_text(json.dumps(index))
    (broken / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with ServerProcess(tmp_path / "data", None, "--model", str(broken)) as server, server.client() as client:
        deadline = time.monotonic() + 60
        model = _health(client)
        while model["state"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
            model = _health(client)
        assert model["state"] == "failed", model
        assert "could not be loaded" in model["error"] and str(broken) in model["error"], model
        canvas = client.post("/api/canvases", json={"name": "Broken"}).json()
        started = time.monotonic()
        assert _add_layer(client, canvas["id"], "x", {"prompt": "a bay", "width": 64, "height": 64}).status_code == 200
        layer = _settled(client, canvas["id"], "x", 30)
        elapsed = time.monotonic() - started
    assert layer["status"] == "failed" and layer["error"] == model["error"], layer
    assert elapsed < 5, elapsed  # the reason at once, not a second attempt at loading


def _defaults(client: httpx.Client, operation: str) -> dict[str, Any]:
    listing = client.get("/api/operations").json()
    found = next(entry for entry in listing["operations"] if entry["name"] == operation)
    return {key: value.get("default") for key, value in found["params_schema"]["properties"].items()} | {
        "_steps_description": found["params_schema"]["properties"].get("steps", {}).get("description", "")
    }


def test_schema_defaults_follow_the_family_and_fit_the_cpu_limit(tmp_path: Path) -> None:
    cpu = RenderLimits.for_device("cpu")
    args = ("--model", "builtin:tiny-sdxl", "--device", "cpu")
    with ServerProcess(tmp_path / "xl", None, *args) as server, server.client() as client:
        txt2img = _defaults(client, "txt2img")
        img2img = _defaults(client, "img2img")
        limits = client.get("/api/operations").json()["limits"]
        canvas = client.post("/api/canvases", json={"name": "XL"}).json()
        added = _add_layer(client, canvas["id"], "d", {"prompt": "a bay"})  # width, height, steps omitted
        decided = client.get(f"/api/canvases/{canvas['id']}/state").json()["layers"][0]["params"]
        client.post(f"/api/canvases/{canvas['id']}/layers/d/cancel")  # nobody waits for its render
    assert limits["max_work"] == cpu.max_work  # a CPU server: 512x512x60 pixel-steps
    assert txt2img["width"] == txt2img["height"] == 1024
    assert txt2img["steps"] < 25 and 1024 * 1024 * txt2img["steps"] <= cpu.max_work
    assert 1024 * 1024 * (txt2img["steps"] + 1) > cpu.max_work  # lowered only as far as needed
    assert (
        f"not 25: 1024x1024 at 25 steps is over its limit of {cpu.max_work / 1e6:.1f} M"
        in (txt2img["_steps_description"])
    )
    assert img2img["steps"] < 30  # a 1024x1024 source at the default strength fits too
    # The command that omitted them was decided with the same defaults, and not refused by the server's limits.
    assert added.status_code == 200, added.text
    assert (decided["width"], decided["height"], decided["steps"]) == (1024, 1024, txt2img["steps"])

    with ServerProcess(tmp_path / "sd1", None, "--device", "cpu", "--no-render") as server, server.client() as client:
        txt2img = _defaults(client, "txt2img")
        health = _health(client)
    assert (txt2img["width"], txt2img["height"], txt2img["steps"]) == (512, 512, 25)  # 512x512x25 fits
    assert "state" not in health  # a web replica loads no model
