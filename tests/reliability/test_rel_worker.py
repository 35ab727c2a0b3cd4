"""The render worker survives anything a user sends (issue #12), tried on real server processes over real
sockets: wrong types from an import, a model that cannot be found, oversized work, cancellation inside the
VAE decode, SIGTERM in the middle of a render (also one that ignores cancellation), viewers looking at the
past, and live previews.
"""

from __future__ import annotations

import asyncio
import base64
import io
import signal
import textwrap
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from engine.limits import fit_within
from tests.reliability.relsupport import (
    health,
    join,
    layers,
    new_canvas,
    read_log,
    record_figures,
    share,
    start_server,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STUBBORN = textwrap.dedent(
    '''
    """An operation that never checks its cancellation (a badly written extension)."""
    import time

    from pydantic import Field

    from engine.operation import Operation, Params


    class StubbornParams(Params):
        seconds: float = Field(1.0, ge=0, le=600)


    class Stubborn(Operation):
        name = "stubborn"
        title = "Stubborn"
        Params = StubbornParams

        def run(self, ctx, inputs, params):
            from PIL import Image

            time.sleep(params.seconds)
            return Image.new("RGB", (8, 8), (1, 2, 3))
    '''
)


def command(client: httpx.Client, canvas_id: str, command_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": command_id, "command": body})


def add(client: httpx.Client, canvas_id: str, layer_id: str, operation: str, params: dict[str, Any]) -> None:
    response = command(client, canvas_id, f"add-{layer_id}",
                       {"type": "add_layer", "layer_id": layer_id, "operation": operation, "params": params})  # fmt: skip
    assert response.status_code == 200, response.text


def settled(client: httpx.Client, canvas_id: str, *names: str) -> bool:
    state = layers(client, canvas_id)
    return all(state[name]["status"] in ("rendered", "failed") for name in names)


def upload(client: httpx.Client, canvas_id: str, image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    response = client.post(f"/api/blobs?canvas={canvas_id}", content=buffer.getvalue(),
                           headers={"content-type": f"image/{kind.lower()}"})  # fmt: skip
    assert response.status_code in (200, 201), response.text
    return response.json()["sha256"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    extensions = root / "extensions"
    extensions.mkdir()
    (extensions / "stubborn.py").write_text(STUBBORN)
    running = start_server(root / "data", "--extensions", str(extensions))
    yield running
    running.stop()


# --- nothing outside a try ---------------------------------------------------------------------------------


def workflow_with(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": "opendream.workflow", "version": 1, "events": [
        {"seq": index + 1, "type": kind, "payload": payload} for index, (kind, payload) in enumerate(
            [("canvas.created", {"name": "Imported"}), *[(e["type"], e["payload"]) for e in events]])]}  # fmt: skip


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (
            {
                "type": "layer.added",
                "payload": {
                    "layer_id": 5,
                    "operation": "blank",
                    "params": {},
                    "seed": None,
                    "parents": [],
                    "name": "x",
                },
            },
            "events[1].payload.layer_id",
        ),
        (
            {
                "type": "layer.added",
                "payload": {
                    "layer_id": "a",
                    "operation": "blank",
                    "params": {},
                    "seed": "7",
                    "parents": [],
                    "name": "x",
                },
            },
            "events[1].payload.seed",
        ),
        (
            {
                "type": "layer.restored",
                "payload": {
                    "layers": [
                        {
                            "id": "a",
                            "name": "x",
                            "operation": "blank",
                            "params": {},
                            "seed": None,
                            "parents": [],
                            "visible": True,
                            "opacity": 1.0,
                            "revision": 1,
                            "status": "pending",
                            "output": None,
                            "error": None,
                            "created_seq": "2",
                            "updated_seq": 2,
                        }
                    ],
                    "positions": [0],
                },
            },
            "events[1].payload.layers.0.created_seq",
        ),
    ],
)
def test_an_import_whose_payloads_have_wrong_types_is_refused_naming_the_field(server, event, field):
    with server.client() as client:
        before = len(client.get("/api/canvases").json()["canvases"])
        response = client.post("/api/workflows", json=workflow_with([event]))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == field, error
        assert len(client.get("/api/canvases").json()["canvases"]) == before  # nothing was created


def test_a_canvas_that_cannot_be_scheduled_is_set_aside_while_the_others_render(tmp_path):
    """A log that got wrong types in anyway (an older server, a hand-edited database) must not stop rendering
    for anyone else: the canvas is set aside with a reason, retried with back-off, and logged boundedly."""
    from server.core.events import CanvasCreated, LayerAdded
    from server.service import CanvasService, RecordedEvent
    from server.store.sql import SQLEventStore

    data = tmp_path / "data"
    server = start_server(data)
    server.stop()  # the database exists and is migrated; poison it behind the server's back
    store = SQLEventStore(f"sqlite:///{(data / 'opendream.db').resolve()}")

    async def poison() -> str:
        from server.config import Settings
        from server.core.decide import Decider
        from server.services import load_operations

        service = CanvasService(store, Decider(load_operations(Settings(data_dir=data))))
        await service.start()
        try:
            events = [
                CanvasCreated(name="Poisoned"),
                # reads a layer that does not exist: the scheduler cannot tell whether it is ready
                LayerAdded("ghostly", "img2img", {"source": "ghost", "prompt": ""}, 1, ("ghost",), "Ghostly"),
                # a number for a layer id: the render could never be recorded
                LayerAdded(5, "blank", {"width": 8, "height": 8}, None, (), "Five"),  # type: ignore[arg-type]
            ]
            result = await service.import_log([RecordedEvent(e, "import", None, 0.0) for e in events])
            return result.canvas_id
        finally:
            await service.stop()

    poisoned = asyncio.run(poison())
    store.close()
    server.start()
    try:
        canvas_id, _ = new_canvas(server, "Healthy")
        with server.client() as client:
            add(client, canvas_id, "fine", "txt2img", {"prompt": "a lake", "width": 64, "height": 64, "steps": 2})
            wait_for(lambda: layers(client, canvas_id)["fine"]["status"] == "rendered", 60, "the healthy canvas")
            blocked = wait_for(lambda: client.get(f"/api/canvases/{poisoned}/renders").json()["blocked"], 30,
                               "the poisoned canvas to be set aside")  # fmt: skip
            assert "cannot be scheduled" in blocked["reason"] and blocked["retry_in_s"] >= 0
            overview = client.get("/api/renders").json()
            assert any(c["canvas_id"] == poisoned and c["blocked"] for c in overview["canvases"]), overview
            time.sleep(6)  # back-off 1, 2, 4 s: at most four attempts in this time
            attempts = client.get(f"/api/canvases/{poisoned}/renders").json()["blocked"]["attempts"]
            assert 2 <= attempts <= 4, attempts
            # and the worker still serves the others
            add(client, canvas_id, "after", "txt2img", {"prompt": "a hill", "width": 64, "height": 64, "steps": 2})
            wait_for(lambda: layers(client, canvas_id)["after"]["status"] == "rendered", 60, "a later render")
            assert health(server)
    finally:
        server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if poisoned in line and "set aside" in line]
    assert 1 <= len(lines) <= 2, lines  # once, then once more per back-off step of the log (10 s, 20 s, ...)


def test_a_model_that_cannot_be_found_fails_its_layers_at_once_with_what_to_do(tmp_path):
    server = start_server(tmp_path / "data", "--model", "nobody/not-cached", env={"HF_HUB_OFFLINE": "1"})
    try:
        canvas_id, _ = new_canvas(server, "No model")
        started = time.monotonic()
        with server.client() as client:
            for index in range(5):
                add(client, canvas_id, f"t{index}", "txt2img", {"prompt": f"p{index}", "width": 64, "height": 64})
            wait_for(lambda: settled(client, canvas_id, *(f"t{i}" for i in range(5))), 30, "the layers to fail")
            elapsed = time.monotonic() - started
            state = layers(client, canvas_id)
            # an editing operation needs no model and still works
            add(client, canvas_id, "plain", "blank", {"width": 8, "height": 8})
            wait_for(lambda: layers(client, canvas_id)["plain"]["status"] == "rendered", 30, "a blank layer")
    finally:
        server.stop()
    for index in range(5):
        layer = state[f"t{index}"]
        assert layer["status"] == "failed"
        assert "not in the local Hugging Face cache" in layer["error"] and "hf download" in layer["error"], layer
    log_lines = [line for line in server.log_path.read_text().splitlines() if "nobody/not-cached" in line]
    assert len(log_lines) <= 2, log_lines
    assert "Traceback" not in server.log_path.read_text()
    record_figures("worker_unresolvable_model", {"five_layers_failed_in_s": round(elapsed, 2),
                                                 "log_lines": len(log_lines)})  # fmt: skip


# --- bounded work ------------------------------------------------------------------------------------------


def test_an_oversized_img2img_is_resized_to_fit_or_refused_by_the_limit(server):
    canvas_id, _ = new_canvas(server, "Big photo")
    size = (3000, 2000)
    photo = Image.linear_gradient("L").resize(size).convert("RGB")
    with server.client() as client:
        sha = upload(client, canvas_id, photo, "JPEG")
        add(client, canvas_id, "photo", "upload", {"blob": sha})
        wait_for(lambda: layers(client, canvas_id)["photo"]["status"] == "rendered", 60, "the upload")
        limits = client.get("/api/operations").json()["limits"]
        # The default rule: resized into the model's working size, aspect kept; the output says so.
        add(client, canvas_id, "fit", "img2img", {"source": "photo", "prompt": "a painting", "steps": 4})
        wait_for(lambda: settled(client, canvas_id, "fit"), 120, "the fitted img2img")
        fitted = layers(client, canvas_id)["fit"]
        assert fitted["status"] == "rendered", fitted
        assert fitted["params"]["resize"] == "fit"  # the rule is recorded in the layer's params
        expected = fit_within(size, limits["working_pixels"])
        assert (fitted["output"]["width"], fitted["output"]["height"]) == expected
        assert expected[0] * expected[1] <= limits["working_pixels"]
        assert abs(expected[0] / expected[1] - 1.5) < 0.01
        # Asking for the full size is refused before anything runs, naming the limit.
        refused = command(client, canvas_id, "full", {"type": "add_layer", "layer_id": "full", "operation": "img2img",
                          "params": {"source": "photo", "prompt": "x", "resize": "none"}})  # fmt: skip
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "over_limit" and "max_pixels" in error["message"] and "3000x2000" in error["message"]
        # Too many steps at a large size: refused, naming the other limit.
        heavy = command(client, canvas_id, "heavy", {"type": "add_layer", "operation": "txt2img",
                        "params": {"prompt": "x", "width": 1024, "height": 1024, "steps": 150}})  # fmt: skip
        assert heavy.status_code == 422 and "max_work" in heavy.json()["error"]["message"], heavy.text
        assert "full" not in layers(client, canvas_id)


# --- cancellation ------------------------------------------------------------------------------------------


async def test_cancel_during_the_vae_decode_of_a_large_render_frees_the_worker(server):
    canvas_id, owner = new_canvas(server, "Large")
    peer = await join(server.port, canvas_id, owner, user="canceller")
    params = {"prompt": "a city", "width": 1024, "height": 1024, "steps": 1}
    try:
        # The same render once to its end: how long its decode takes here.
        await peer.command("whole", {"type": "add_layer", "layer_id": "whole", "operation": "txt2img",
                                     "params": params, "seed": 1})  # fmt: skip
        await peer.until(lambda m: m.get("type") == "progress" and m.get("layer_id") == "whole"
                         and m.get("stage") == "decode", 120)  # fmt: skip
        decode_started = time.monotonic()
        await peer.until(lambda m: m.get("type") == "render_finished" and m.get("layer_id") == "whole", 120)
        decode_s = time.monotonic() - decode_started
        # And again, cancelled as soon as the decode starts.
        await peer.command("cut", {"type": "add_layer", "layer_id": "cut", "operation": "txt2img", "params": params,
                                   "seed": 2})  # fmt: skip
        await peer.until(lambda m: m.get("type") == "progress" and m.get("layer_id") == "cut"
                         and m.get("stage") == "decode", 120)  # fmt: skip
        cancelled_at = time.monotonic()
        await peer.send({"type": "cancel", "layer_id": "cut"})
        ended = await peer.until(lambda m: m.get("layer_id") == "cut" and m.get("type") in
                                 ("render_cancelled", "render_finished"), 60)  # fmt: skip
        cancel_s = time.monotonic() - cancelled_at
        assert ended["type"] == "render_cancelled", ended
        assert cancel_s < decode_s / 2, (cancel_s, decode_s)
        # The worker is free: the next render starts and finishes.
        await peer.command("next", {"type": "add_layer", "layer_id": "next", "operation": "txt2img",
                                    "params": {"prompt": "x", "width": 64, "height": 64, "steps": 2}})  # fmt: skip
        await peer.until(lambda m: m.get("type") == "render_finished" and m.get("layer_id") == "next", 60)
    finally:
        await peer.close()
    log = read_log(server, canvas_id)
    assert not [e for e in log if e["type"] == "layer.rendered" and e["payload"]["layer_id"] == "cut"]
    record_figures("worker_cancel_in_decode", {"decode_s": round(decode_s, 2), "cancel_s": round(cancel_s, 3)})


async def test_deleting_or_editing_a_rendering_layer_cancels_its_render(server):
    canvas_id, owner = new_canvas(server, "Edited")
    peer = await join(server.port, canvas_id, owner, user="editor")
    slow = {"prompt": "a forest", "width": 512, "height": 512, "steps": 60}
    try:
        for name, change in (("gone", {"type": "delete_layer", "layer_id": "gone"}),
                             ("moved", {"type": "change_params", "layer_id": "moved",
                                        "params": {**slow, "steps": 2, "width": 64, "height": 64}})):  # fmt: skip
            await peer.command(f"add-{name}", {"type": "add_layer", "layer_id": name, "operation": "txt2img",
                                               "params": slow})  # fmt: skip
            await peer.until(lambda m, name=name: m.get("type") == "progress" and m.get("layer_id") == name
                             and m.get("step", 0) >= 1, 60)  # fmt: skip
            changed_at = time.monotonic()
            ack = await peer.command(f"change-{name}", change)
            assert ack["type"] == "ack", ack
            await peer.until(lambda m, name=name: m.get("type") == "render_cancelled" and m.get("layer_id") == name, 30)
            assert time.monotonic() - changed_at < 10  # not the ~40 s the whole render takes
        await peer.until(lambda m: m.get("type") == "render_finished" and m.get("layer_id") == "moved", 60)
    finally:
        await peer.close()
    with server.client() as client:
        state = layers(client, canvas_id)
    assert "gone" not in state and state["moved"]["status"] == "rendered"
    assert state["moved"]["output"]["width"] == 64  # the edited revision, not the cancelled one


# --- shutdown ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["txt2img", "stubborn"])
def test_sigterm_during_a_render_exits_within_10_s_and_the_render_resumes(tmp_path, what):
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    (extensions / "stubborn.py").write_text(STUBBORN)
    server = start_server(tmp_path / "data", "--extensions", str(extensions))
    params = {"prompt": "a storm", "width": 512, "height": 512, "steps": 60} if what == "txt2img" else {"seconds": 60.0}
    try:
        canvas_id, _ = new_canvas(server, "Interrupted")
        with server.client() as client:
            add(client, canvas_id, "slow", what, params)
            wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                              if q["layer_id"] == "slow" and q["rendering"]], 60, "the render to start")  # fmt: skip
            time.sleep(1.0)
        assert server.process is not None
        process = server.process
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        exit_s = time.monotonic() - started
        server.process = None
        assert exit_s < 10, exit_s
        server.start()
        with server.client() as client:
            state = layers(client, canvas_id)
            assert state["slow"]["status"] == "pending", state["slow"]  # never half-recorded, never failed
            wait_for(lambda: [q for q in client.get(f"/api/canvases/{canvas_id}/renders").json()["queue"]
                              if q["layer_id"] == "slow" and q["rendering"]], 60, "the render to resume")  # fmt: skip
            assert client.post(f"/api/canvases/{canvas_id}/layers/slow/cancel").status_code == 200
        assert not [e for e in read_log(server, canvas_id) if e["type"] == "layer.rendered"]
    finally:
        server.stop(signal.SIGKILL)
    record_figures(f"worker_sigterm_{what}", {"exit_s": round(exit_s, 2)})


# --- fairness and the queue view ---------------------------------------------------------------------------


def test_the_queue_says_why_a_layer_waits_and_admins_see_the_whole_server(server):
    busy, _ = new_canvas(server, "Busy")
    other, other_owner = new_canvas(server, "Other")
    viewer = share(server, other, other_owner, "viewer")["token"]
    with server.client() as client:
        add(client, busy, "hog", "stubborn", {"seconds": 3.0})
        wait_for(lambda: [q for q in client.get(f"/api/canvases/{busy}/renders").json()["queue"]
                          if q["rendering"]], 30, "the hog to start")  # fmt: skip
        add(client, busy, "hog2", "stubborn", {"seconds": 0.5})
        add(client, other, "waiter", "blank", {"width": 8, "height": 8})
        add(client, other, "child", "crop", {"source": "waiter", "x": 0, "y": 0, "width": 4, "height": 4})
        with server.client(viewer) as member:
            view = member.get(f"/api/canvases/{other}/renders").json()
            assert member.get("/api/renders").status_code == 403  # the whole server is for admins
        items = {item["layer_id"]: item for item in view["queue"]}
        # "hog" renders, "hog2" has its turn first (its canvas was marked first): two renders, both elsewhere
        assert (items["waiter"]["ahead"], items["waiter"]["ahead_elsewhere"]) == (2, 2), items
        assert items["waiter"]["wait_reason"].startswith("behind 2 renders on other canvases"), items
        assert items["child"]["wait_reason"].startswith("waiting for “"), items
        overview = client.get("/api/renders").json()
        assert overview["rendering"]["canvas_id"] == busy and overview["rendering"]["layer_id"] == "hog"
        assert {c["canvas_id"] for c in overview["canvases"]} >= {busy, other}
        wait_for(lambda: settled(client, other, "waiter", "child"), 60, "the waiting canvas")


# --- viewers never compute ---------------------------------------------------------------------------------


def test_a_viewers_request_for_past_images_starts_no_render(server):
    canvas_id, owner = new_canvas(server, "Past")
    viewer = share(server, canvas_id, owner, "viewer")["token"]
    with server.client() as client:
        add(client, canvas_id, "hog", "stubborn", {"seconds": 2.0})
        add(client, canvas_id, "later", "blank", {"width": 9, "height": 9, "colour": "#123456"})
        version_pending = client.get(f"/api/canvases/{canvas_id}/state").json()["version"]
        assert client.post(f"/api/canvases/{canvas_id}/layers/later/cancel").status_code == 200
        version_cancelled = client.get(f"/api/canvases/{canvas_id}/state").json()["version"]
        wait_for(lambda: settled(client, canvas_id, "hog", "later"), 60, "the canvas to settle")
        computed = client.get(f"/api/canvases/{canvas_id}/renders").json()["stats"].get("computed", 0)
        with server.client(viewer) as member:
            looked = member.get(f"/api/canvases/{canvas_id}/images", params={"version": version_pending}).json()
            assert looked["images"]["later"] == {"sha256": None, "missing": "not rendered at this version"}
            assert looked["missing"] >= 1
            refused = member.post(f"/api/canvases/{canvas_id}/images", params={"version": version_pending})
            assert refused.status_code == 403
        time.sleep(0.5)
        stats = client.get(f"/api/canvases/{canvas_id}/renders").json()["stats"]
        assert stats.get("computed", 0) == computed  # nothing was rendered for the viewer
        # An editor may render a past version; a layer cancelled at that version stays as it was.
        cancelled = client.post(f"/api/canvases/{canvas_id}/images", params={"version": version_cancelled}).json()
        assert cancelled["images"]["later"]["sha256"] is None and "failed" in cancelled["images"]["later"]["missing"]
        rendered = client.post(f"/api/canvases/{canvas_id}/images", params={"version": version_pending}).json()
        assert rendered["images"]["later"]["source"] == "rendered" and rendered["missing"] == 0
    assert len([e for e in read_log(server, canvas_id) if e["type"] == "layer.rendered"]) == 1  # only "hog"


# --- live previews -----------------------------------------------------------------------------------------


async def test_previews_arrive_for_a_render_and_stop_at_its_end(server):
    canvas_id, owner = new_canvas(server, "Previews")
    peer = await join(server.port, canvas_id, owner, user="watcher")
    previews: list[dict[str, Any]] = []
    try:
        await peer.command("p", {"type": "add_layer", "layer_id": "p", "operation": "txt2img",
                                 "params": {"prompt": "a bay", "width": 512, "height": 512, "steps": 20}})  # fmt: skip
        while True:
            message = await peer.until(lambda m: m.get("layer_id") == "p" and m.get("type") in
                                       ("preview", "render_finished", "render_failed"), 120)  # fmt: skip
            if message["type"] != "preview":
                assert message["type"] == "render_finished", message
                break
            message["at"] = time.monotonic()
            previews.append(message)
        after: list[dict[str, Any]] = []
        with pytest.raises(TimeoutError):
            after.append(await peer.until(lambda m: m.get("type") == "preview", 1.5))
    finally:
        await peer.close()
    assert previews, "no preview arrived"
    assert not after
    for preview in previews:
        assert preview["image"].startswith("data:image/jpeg;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(preview["image"].split(",", 1)[1])))
        assert picture.format == "JPEG" and picture.size == (preview["width"], preview["height"])
        assert max(picture.size) <= 256
        assert (preview["render_width"], preview["render_height"]) == (512, 512)
        assert 1 <= preview["step"] < preview["total"] == 20
    span = previews[-1]["at"] - previews[0]["at"]
    assert len(previews) <= 1 + 4 * span + 2, (len(previews), span)  # throttled to ~4 per second
    record_figures("worker_previews", {"previews": len(previews), "over_s": round(span, 2),
                                       "bytes": [len(p["image"]) for p in previews][:5]})  # fmt: skip
