"""The browser client's logic that is not drawing: its Node unit tests (`node --test client/tests/`), and its
reducer checked against the server's fold on a real event log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser.support import Canvas, wait_until

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed: the client's unit tests run with `node --test`"
)


@needs_node
def test_client_unit_tests_pass(tmp_path: Path):
    # The schema tests read GET /api/operations' body; give them this registry's, not the stored copy.
    from engine.discovery import load_registry

    registry = load_registry()
    catalogue = {
        "operations": [registry.get(name).describe() for name in registry.names()],
        "unavailable": [{"name": name, "error": reason} for name, reason in sorted(registry.unavailable().items())],
    }
    operations = tmp_path / "operations.json"
    operations.write_text(json.dumps(catalogue))
    result = subprocess.run(
        [NODE, "--test", "client/tests/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENDREAM_OPERATIONS_JSON": str(operations), "NODE_NO_WARNINGS": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


def fold_in_node(events: list[dict], versions: list[int], start: dict | None = None) -> dict[int, dict]:
    result = subprocess.run(
        [NODE, str(Path(__file__).with_name("fold.mjs"))],
        input=json.dumps({"events": events, "versions": versions, "start": start}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {int(version): state for version, state in json.loads(result.stdout).items()}


@needs_node
@pytest.mark.slow
def test_the_client_reducer_folds_a_real_log_exactly_as_the_server(server):
    canvas = Canvas(server, "Parity")
    bob = server.client(canvas.token, **{"x-opendream-user": "bob"})

    def as_bob(command: dict) -> None:
        response = bob.post(
            f"/api/canvases/{canvas.id}/commands",
            json={"command_id": f"bob-{len(canvas.events())}", "command": command},
        )
        assert response.status_code == 200, response.text

    canvas.txt2img("a", "a harbour")
    canvas.wait_rendered("a")
    canvas.mask("m", on="a")
    canvas.inpaint("i", source="a", mask="m")
    canvas.wait_rendered("m", "i")
    as_bob(
        {
            "type": "add_layer",
            "layer_id": "b",
            "operation": "txt2img",
            "params": {"prompt": "bob", "width": 64, "height": 64, "steps": 2},
        }
    )
    canvas.command(
        {
            "type": "change_params",
            "layer_id": "a",
            "params": {"prompt": "a harbour at night", "width": 64, "height": 64, "steps": 2},
        }
    )
    canvas.wait_rendered("a", "m", "i", "b")
    canvas.command({"type": "set_visibility", "layer_id": "m", "visible": False})
    canvas.command({"type": "set_opacity", "layer_id": "i", "opacity": 0.25})
    as_bob({"type": "rename_layer", "layer_id": "b", "name": "Bob's"})
    canvas.command({"type": "move_layer", "layer_id": "b", "index": 0})
    canvas.command({"type": "rename_canvas", "name": "Parity, renamed"})
    canvas.command({"type": "delete_layer", "layer_id": "a"})  # takes m and i with it
    canvas.command({"type": "undo"})  # brings them back (layer.restored)
    canvas.command({"type": "redo"})
    canvas.command({"type": "undo"})
    as_bob({"type": "undo"})
    as_bob({"type": "redo"})
    middle = canvas.state()["version"]
    restored = canvas.http.post(f"/api/canvases/{canvas.id}/restore", json={"version": 4, "command_id": "restore-1"})
    assert restored.status_code == 200, restored.text
    canvas.command({"type": "undo"})  # the restore is undone like any edit
    wait_until(
        lambda: all(layer["status"] in ("rendered", "failed") for layer in canvas.state()["layers"]),
        60,
        message="renders to settle",
    )

    events = canvas.events()
    head = events[-1]["seq"]
    types = {event["type"] for event in events}
    assert {
        "layer.added",
        "layer.params_changed",
        "layer.deleted",
        "layer.restored",
        "layer.rendered",
        "history.undone",
        "history.redone",
        "layer.moved",
    } <= types
    versions = list(range(1, head + 1))
    server_states = {version: canvas.state(version) for version in versions}
    # from an empty canvas, event by event: the same state at every version
    client_states = fold_in_node(events, versions)
    for version in versions:
        assert client_states[version] == server_states[version], f"the client's fold differs at version {version}"
    # from a state (as a welcome after a long absence brings it), then events: the same again
    later = fold_in_node(events, [head], start=server_states[middle])
    assert later[head] == server_states[head]
