"""Engine faults: operations that raise, run out of memory, exit the interpreter, return garbage or are
cancelled leave a `layer.failed` event and a working server; renders in flight when the server is killed are
resumed (or failed explicitly) after the restart, never left pending.

The faulty operations come from a real extension file loaded with `--extensions DIR`, as an operator would
install one.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.relsupport import (
    health,
    join,
    layers,
    new_canvas,
    read_log,
    record_figures,
    start_server,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAULTS = textwrap.dedent(
    '''
    """Operations that misbehave on purpose (reliability tests)."""
    import time

    from pydantic import Field

    from engine.operation import Operation, Params


    class FaultParams(Params):
        kind: str = "ok"
        seconds: float = Field(0.0, ge=0, le=600)
        nonce: int = 0


    class Fault(Operation):
        name = "fault"
        title = "Fault"
        Params = FaultParams

        def run(self, ctx, inputs, params):
            from PIL import Image

            kind = params.kind
            if kind == "raise":
                raise RuntimeError("the operation blew up")
            if kind == "memory":
                raise MemoryError("simulated: cannot allocate 68719476736 bytes")
            if kind == "torch_oom":
                import torch

                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB (simulated)")
            if kind == "allocate":  # a real allocation failure: more than the address space can hold
                bytearray(1 << 62)
            if kind == "exit":
                raise SystemExit(3)
            if kind == "interrupt":
                raise KeyboardInterrupt
            if kind == "garbage":
                return "not an image"
            if kind == "empty":
                return []
            deadline = time.monotonic() + params.seconds
            step = 0
            while time.monotonic() < deadline:
                time.sleep(0.02)
                step += 1
                ctx.progress(step, max(1, int(params.seconds / 0.02)))
                ctx.check_cancelled()
            return Image.new("RGB", (8, 8), (params.nonce % 256, 0, 0))
    '''
)

# kind -> words the recorded reason must contain
KINDS = {
    "raise": "RuntimeError: the operation blew up",
    "memory": "MemoryError",
    "torch_oom": "OutOfMemoryError",
    "allocate": "MemoryError",
    "exit": "SystemExit",
    "interrupt": "KeyboardInterrupt",
    "garbage": "must return a PIL image",
    "empty": "must return a PIL image",
}


def extension_dir(root: Path) -> Path:
    directory = root / "extensions"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "faults.py").write_text(FAULTS)
    return directory


def add(client: httpx.Client, canvas_id: str, layer_id: str, operation: str, params: dict[str, Any]) -> None:
    response = client.post(f"/api/canvases/{canvas_id}/commands", json={
        "command_id": f"add-{layer_id}", "command": {"type": "add_layer", "layer_id": layer_id, "operation": operation,
                                                     "params": params}})  # fmt: skip
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-faults")
    running = start_server(root / "data", "--extensions", str(extension_dir(root)))
    yield running
    running.stop()


async def test_failing_operations_leave_a_failed_layer_and_a_working_server(server):
    canvas_id, owner = new_canvas(server, "Faults")
    peer = await join(server.port, canvas_id, owner, user="watcher")
    with server.client() as client:
        for index, kind in enumerate(KINDS):
            add(client, canvas_id, f"bad-{kind}", "fault", {"kind": kind, "nonce": index})
        add(client, canvas_id, "fine", "fault", {"kind": "ok", "nonce": 99})  # queued behind all the failures
        wait_for(lambda: all(layer["status"] in ("failed", "rendered") for layer in layers(client, canvas_id).values()),
                 120, "every fault to be recorded")  # fmt: skip
        state = layers(client, canvas_id)
        assert health(server), "the server died"
        log = read_log(server, canvas_id)
    failed = {
        event["payload"]["layer_id"]: event["payload"]["reason"] for event in log if event["type"] == "layer.failed"
    }
    for kind, words in KINDS.items():
        layer = state[f"bad-{kind}"]
        assert layer["status"] == "failed", (kind, layer)
        assert words in failed[f"bad-{kind}"], (kind, failed[f"bad-{kind}"])
        assert layer["error"] == failed[f"bad-{kind}"]
    assert state["fine"]["status"] == "rendered", "the worker stopped after the failures"
    # Live clients were told, with the reason.
    notices = []
    async with asyncio.timeout(30):
        while {n["layer_id"] for n in notices} < {f"bad-{kind}" for kind in KINDS}:
            message = await peer.recv()
            if message["type"] == "render_failed":
                notices.append(message)
    await peer.close()
    record_figures("engine_faults", {"kinds": sorted(KINDS), "reasons": {k: failed[f"bad-{k}"][:80] for k in KINDS}})


def test_cancelling_a_running_and_a_queued_render(server):
    canvas_id, _ = new_canvas(server, "Cancel")
    with server.client() as client:
        add(client, canvas_id, "long", "fault", {"kind": "ok", "seconds": 120, "nonce": 1})
        add(client, canvas_id, "queued", "fault", {"kind": "ok", "seconds": 120, "nonce": 2})
        wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                          if q["layer_id"] == "long" and q["rendering"]], 30, "the render to start")  # fmt: skip
        started = time.monotonic()
        assert client.post(f"/api/canvases/{canvas_id}/layers/queued/cancel").status_code == 200
        assert client.post(f"/api/canvases/{canvas_id}/layers/long/cancel").status_code == 200
        wait_for(lambda: layers(client, canvas_id)["long"]["status"] == "failed", 10, "the cancellation")
        cancel_s = time.monotonic() - started
        state = layers(client, canvas_id)
        assert state["queued"]["status"] == "failed" and "cancelled" in state["queued"]["error"]
        assert state["long"]["error"] == "render cancelled"
        # Nothing left to cancel: a clear refusal, not a crash.
        again = client.post(f"/api/canvases/{canvas_id}/layers/long/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_rendering"
        # And the worker is free: retrying renders again (and can be cancelled again).
        retry = client.post(f"/api/canvases/{canvas_id}/commands",
                            json={"command_id": "retry", "command": {"type": "retry_render", "layer_id": "queued"}})  # fmt: skip
        assert retry.status_code == 200, retry.text
        wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                          if q["layer_id"] == "queued" and q["rendering"]], 30, "the retried render to start")  # fmt: skip
        assert client.post(f"/api/canvases/{canvas_id}/layers/queued/cancel").status_code == 200
        wait_for(lambda: layers(client, canvas_id)["queued"]["status"] == "failed", 10, "the second cancellation")
    assert cancel_s < 5
    record_figures("engine_cancel", {"running_render_cancelled_in_s": round(cancel_s, 3)})


def test_renders_in_flight_at_a_sigkill_resume_or_fail_explicitly(tmp_path):
    """SIGKILL while a slow txt2img renders (256 px, 150 steps) with more work queued behind it; then again
    while an extension's operation renders, restarting without that extension."""
    extensions = extension_dir(tmp_path)
    server = start_server(tmp_path / "data", "--extensions", str(extensions))
    figures: dict[str, Any] = {}
    try:
        canvas_id, owner = new_canvas(server, "Interrupted")
        with server.client() as client:
            add(
                client, canvas_id, "slow", "txt2img", {"prompt": "a harbour", "width": 256, "height": 256, "steps": 150}
            )
            add(client, canvas_id, "next", "fault", {"kind": "ok", "seconds": 1, "nonce": 3})
            add(client, canvas_id, "child", "img2img", {"source": "slow", "prompt": "at night", "steps": 2})
            progress = asyncio.run(_progress_of(server.port, canvas_id, owner, "slow", steps=3))
        figures["killed_at_step"] = progress
        server.stop(signal.SIGKILL)
        server.start()
        with server.client() as client:
            state = layers(client, canvas_id)
            assert {state[name]["status"] for name in ("slow", "next", "child")} == {"pending"}
            # The interrupted render is taken up again by itself: nobody asked.
            started = time.monotonic()
            wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                              if q["layer_id"] == "slow" and q["rendering"]], 60, "the render to resume")  # fmt: skip
            figures["resumed_after_s"] = round(time.monotonic() - started, 2)
            # Proven resumed; cancelling it (rather than waiting the whole render on a CPU) is the other explicit end.
            assert client.post(f"/api/canvases/{canvas_id}/layers/slow/cancel").status_code == 200
            wait_for(lambda: layers(client, canvas_id)["next"]["status"] == "rendered", 120, "the queued render")
            state = layers(client, canvas_id)
            assert state["slow"]["status"] == "failed" and state["slow"]["error"] == "render cancelled"
            assert state["child"]["status"] == "pending"  # waits for its input, which failed: it is not lost either

            # Killed while an extension's operation renders; restarted without the extension.
            add(client, canvas_id, "ext", "fault", {"kind": "ok", "seconds": 120, "nonce": 4})
            wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                              if q["layer_id"] == "ext" and q["rendering"]], 30, "the extension render")  # fmt: skip
        server.stop(signal.SIGKILL)
        (extensions / "faults.py").unlink()
        server.start()
        with server.client() as client:
            wait_for(lambda: layers(client, canvas_id)["ext"]["status"] == "failed", 60, "the orphaned render to fail")
            state = layers(client, canvas_id)
            assert "not available" in state["ext"]["error"], state["ext"]
            # Editing the failed txt2img (smaller, to spare the CPU) renders it again; its child follows.
            change = client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": "fast", "command": {
                "type": "change_params", "layer_id": "slow", "params": {"prompt": "a harbour", "width": 64,
                                                                        "height": 64, "steps": 2}}})  # fmt: skip
            assert change.status_code == 200, change.text
            wait_for(lambda: all(layer["status"] in ("rendered", "failed") for layer in layers(client, canvas_id).values()),
                     180, "every layer to settle")  # fmt: skip
            state = layers(client, canvas_id)
            assert state["slow"]["status"] == "rendered" and state["child"]["status"] == "rendered"
            assert client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"] == []
        log = read_log(server, canvas_id)
        # No revision of any layer was recorded twice.
        rendered = Counter(
            (e["payload"]["layer_id"], e["payload"]["revision"]) for e in log if e["type"] == "layer.rendered"
        )
        assert all(count == 1 for count in rendered.values()), rendered
        figures["statuses"] = {name: layer["status"] for name, layer in state.items()}
    finally:
        server.stop()
    record_figures("engine_sigkill", figures)


async def _progress_of(port: int, canvas_id: str, token: str, layer_id: str, steps: int) -> int:
    """Wait (over the live socket) until `layer_id` has rendered `steps` steps; return the step reached."""
    peer = await join(port, canvas_id, token, user="watcher")
    try:
        message = await peer.until(
            lambda m: m["type"] == "progress" and m["layer_id"] == layer_id and m["step"] >= steps, timeout=120
        )
        return message["step"]
    finally:
        await peer.close()
