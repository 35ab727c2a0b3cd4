"""Workflow files: export → import → replay, a corpus of broken files, PNGs that carry their workflow,
and files saved by the original Opendream."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import os
import subprocess
import sys

import httpx
import orjson
import pytest
from PIL import Image

from server.blobstore import LocalBlobStore
from server.config import WorkflowLimits
from server.workflow import InvalidWorkflow, export_workflow, load_document, parse_workflow
from tests.server_process import ServerProcess
from tests.test_renders import canvas_with, engine, img2img, model_options, operations, renderer, txt2img  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def admin(server: ServerProcess) -> dict[str, str]:
    """Importing needs a token (no anonymous writes): the server's admin's."""
    return {"authorization": f"Bearer {server.admin_token}"}


def png(colour=(10, 200, 30), size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.anyio
async def test_export_import_and_replay_give_identical_hashes(engine, tmp_path, model_options):  # noqa: F811
    from server.core.commands import AddLayer

    service, queue, blobs, store, _ = engine
    upload = blobs.put(png())
    canvas_id = await canvas_with(
        service,
        txt2img("a", seed=11),
        img2img("b", "a"),
        AddLayer(layer_id="u", operation="upload", params={"blob": upload}),
        AddLayer(
            layer_id="m",
            operation="mask",
            params={"layer": "u", "strokes": [{"points": [[2, 2], [9, 9]], "radius": 2}]},
        ),
    )
    await queue.wait_idle()
    original = await service.state(canvas_id)
    assert all(layer.status == "rendered" for layer in original.layers.values())
    events = store.read(canvas_id)
    document = export_workflow(original.name, canvas_id, events, blobs, operations())
    assert document["format"] == "opendream.workflow" and document["version"] == 2
    assert document["models"] == [
        {"name": "builtin:tiny", "hash": original.layers["a"].output.fingerprint["model_hash"]}
    ]
    assert upload in document["blobs"] and original.layers["a"].output.sha256 in document["blobs"]
    lean = export_workflow(original.name, canvas_id, events, blobs, operations(), include_renders=False)
    assert set(lean["blobs"]) == {upload}  # only what cannot be regenerated

    # The lean file in a fresh store: the engine renders every layer again, to the same bytes.
    from server.core.decide import Decider
    from server.render_queue import RenderQueue
    from server.service import CanvasService
    from server.store.sql import SQLEventStore
    from server.workflow import import_workflow

    fresh_store = SQLEventStore(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh_store.migrate()
    fresh_blobs = LocalBlobStore(tmp_path / "fresh-blobs")
    fresh = CanvasService(fresh_store, Decider(operations(), blob_exists=fresh_blobs.exists))
    await fresh.start()
    fresh_queue = RenderQueue(fresh, fresh_store, fresh_blobs, operations(), queue.renderer)
    await fresh_queue.start()
    workflow = parse_workflow(lean, operations(), WorkflowLimits())
    imported = await import_workflow(workflow, fresh, fresh_blobs, operations())
    await fresh_queue.wait_idle()
    again = await fresh.state(imported.canvas_id)
    assert again.origin["kind"] == "workflow" and again.origin["canvas_id"] == canvas_id
    assert {i: again.layers[i].output.sha256 for i in again.order} == {
        i: original.layers[i].output.sha256 for i in original.order
    }
    # Renders whose images came with the file are kept (the upload's, here); the others were computed again.
    at_hand = [layer_id for layer_id, layer in original.layers.items() if layer.output.sha256 in lean["blobs"]]
    assert at_hand == ["u"] and fresh_queue.stats["computed"] == 3
    await fresh_queue.stop()
    await fresh.stop()
    fresh_store.close()

    # And `opendream replay FILE --verify` in another process agrees, layer by layer.
    path = tmp_path / "canvas.opendream.json"
    path.write_bytes(orjson.dumps(document))
    (tmp_path / "replay-data").mkdir()
    (tmp_path / "replay-data" / "models").symlink_to(model_options.models_dir)
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "replay", str(path), "--verify", "--json", "--data", str(tmp_path / "replay-data")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["counts"] == {"identical": 4}


# --- the corpus of broken files, over HTTP -----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("workflows") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def good(server) -> dict:
    """A small valid workflow exported from a real canvas: an upload and an edit of it."""
    with server.client() as client:
        canvas = client.post("/api/canvases", json={"name": "Source"}).json()
        blob = client.post(f"/api/blobs?canvas={canvas['id']}", content=png()).json()["sha256"]
        for command in (
            {"type": "add_layer", "layer_id": "u", "operation": "upload", "params": {"blob": blob}},
            {
                "type": "add_layer",
                "layer_id": "c",
                "operation": "crop",
                "params": {"source": "u", "width": 8, "height": 8},
            },
            {
                "type": "add_layer",
                "layer_id": "r",
                "operation": "resize",
                "params": {"source": "c", "width": 4, "height": 4},
            },
        ):
            assert (
                client.post(
                    f"/api/canvases/{canvas['id']}/commands",
                    json={"command_id": command["layer_id"], "command": command},
                ).status_code
                == 200
            )
        return client.get(f"/api/canvases/{canvas['id']}/workflow", params={"renders": "0"}).json()


def test_a_valid_workflow_imports_as_a_new_canvas(server, good):
    response = httpx.post(server.url + "/api/workflows", headers=admin(server), content=orjson.dumps(good))
    assert response.status_code == 201, response.text
    created = response.json()
    with server.client(created["owner_token"]) as client:
        state = client.get(f"/api/canvases/{created['id']}/state").json()
    assert state["order"] == ["u", "c", "r"] and state["origin"]["kind"] == "workflow"


def broken(good: dict, change) -> bytes:
    document = copy.deepcopy(good)
    result = change(document)
    return result if isinstance(result, bytes) else orjson.dumps(document)


def _event(document: dict, layer_id: str) -> dict:
    return next(e for e in document["events"] if e["type"] == "layer.added" and e["payload"]["layer_id"] == layer_id)


CORPUS = {
    "truncated": (lambda d: orjson.dumps(d)[:-50], "not JSON"),
    "not an object": (lambda d: b"[1, 2, 3]", "a workflow is a JSON object"),
    "wrong format": (lambda d: d.update(format="comfyui"), "format is 'comfyui'"),
    "newer version": (lambda d: d.update(version=99), "format version 99 is newer"),
    "wrong hash": (lambda d: d["blobs"].update({next(iter(d["blobs"])): base64.b64encode(png((1, 2, 3))).decode()}),
                   "sha256 is"),
    "not base64": (lambda d: d["blobs"].update({next(iter(d["blobs"])): "%%%"}), "not valid base64"),
    "unknown operation": (lambda d: _event(d, "r").update(payload={**_event(d, "r")["payload"], "operation": "warp"}),
                          "unknown operation 'warp'"),
    "bad params": (lambda d: _event(d, "c")["payload"]["params"].update(width=-5), "params.width"),
    "unknown event type": (lambda d: d["events"][1].update(type="layer.teleported"), "unknown event type"),
    "gap in the log": (lambda d: d["events"][2].update(seq=7), "gapless"),
    "missing image": (lambda d: _event(d, "u")["payload"]["params"].update(blob="f" * 64),
                      "neither in the file nor on this server"),
    "cyclic parents": (lambda d: d["events"].append({"seq": len(d["events"]) + 1, "type": "layer.params_changed",
                                                      "schema_version": 1, "actor": "x", "command_id": None,
                                                      "timestamp": 0, "payload": {"layer_id": "c", "seed": None,
                                                      "params": {"source": "r", "width": 8, "height": 8},
                                                      "parents": ["r"]}}), "cycle"),
    "parents that lie": (lambda d: _event(d, "r")["payload"].update(parents=["u"]), "do not match"),
    "oversized": (lambda d: b"{" + b" " * (300 * 1024 * 1024) + b"}", "too_large"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_a_broken_workflow_is_rejected_whole_with_its_own_message(server, good, case):
    change, message = CORPUS[case]
    with server.client() as client:
        before = len(client.get("/api/canvases").json()["canvases"])
    body = broken(good, change)
    carried = images_in(body)
    new_images = {sha for sha in carried if not (server.data_dir / "blobs" / sha[:2] / sha).exists()}
    response = httpx.post(server.url + "/api/workflows", headers=admin(server), content=body, timeout=120)
    assert response.status_code in (413, 422), response.text
    error = response.json()["error"]
    assert message in error["message"] or message == error["code"], error
    with server.client() as client:
        assert len(client.get("/api/canvases").json()["canvases"]) == before  # nothing was created
    assert not any((server.data_dir / "blobs" / sha[:2] / sha).exists() for sha in new_images)  # nor stored


def images_in(body: bytes) -> set[str]:
    """The names of the images a file carries, and the hashes of their contents."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return set()
    names = set()
    for sha, data in (document.get("blobs") or {}).items() if isinstance(document, dict) else []:
        names.add(sha)
        with contextlib.suppress(ValueError):
            names.add(hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest())
    return names


def test_every_broken_file_names_a_different_problem(good):
    messages = set()
    for case, (change, _) in CORPUS.items():
        if case == "oversized":
            continue
        with pytest.raises(InvalidWorkflow) as info:
            document = load_document(broken(good, change), WorkflowLimits())
            parse_workflow(document, operations(), WorkflowLimits())
        messages.add(str(info.value))
    assert len(messages) == len(CORPUS) - 1


# --- PNG ----------------------------------------------------------------------------------------------------


def test_a_png_carries_its_workflow_and_imports_back(server, good):
    created = httpx.post(server.url + "/api/workflows", headers=admin(server), content=orjson.dumps(good)).json()
    with server.client(created["owner_token"]) as client:
        for _ in range(200):
            state = client.get(f"/api/canvases/{created['id']}/state").json()
            if all(layer["status"] == "rendered" for layer in state["layers"]):
                break
            import time

            time.sleep(0.1)
        picture = client.get(f"/api/canvases/{created['id']}/layers/r/image.png")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        composite = client.get(f"/api/canvases/{created['id']}/composite.png")
        assert composite.status_code == 200
    image = Image.open(io.BytesIO(picture.content))
    assert image.size == (4, 4) and "opendream-workflow" in image.text
    again = httpx.post(
        server.url + "/api/workflows", content=picture.content, headers={**admin(server), "content-type": "image/png"}
    )
    assert again.status_code == 201, again.text
    with server.client(again.json()["owner_token"]) as client:
        assert client.get(f"/api/canvases/{again.json()['id']}/state").json()["order"] == ["u", "c", "r"]
    plain = httpx.post(server.url + "/api/workflows", headers=admin(server), content=png())
    assert plain.status_code == 422 and "carries no Opendream workflow" in plain.json()["error"]["message"]


# --- the original Opendream's files ------------------------------------------------------------------------


ORIGINAL_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "opendream2023")


def test_a_workflow_saved_by_the_original_opendream_is_imported_with_its_images(server):
    """A file the original's web UI saved (tests/fixtures/opendream2023, made by the original's own code): every
    layer comes in with its picture; the layers we cannot run come in as pictures, and the answer says so.
    The conversion itself, layer by layer, is tests/test_workflow_opendream.py."""
    with open(os.path.join(ORIGINAL_FIXTURES, "webui-every-op.json"), "rb") as file:
        original = file.read()
    response = httpx.post(server.url + "/api/workflows", headers=admin(server), content=original)
    assert response.status_code == 201, response.text
    created = response.json()
    assert [w.split(":")[0] for w in created["warnings"]] == ["layer 6 (controlnet_openpose)", "layer 15 (dalle)"]
    with server.client(created["owner_token"]) as client:
        state = client.get(f"/api/canvases/{created['id']}/state").json()
    layers = {layer["id"]: layer for layer in state["layers"]}
    assert layers["layer-1"]["operation"] == "txt2img" and layers["layer-1"]["seed"] == 8  # seed 7, selected 1
    inpaint = layers["layer-3"]  # mask_and_inpaint(mask_layer="2", image_layer="1", ...): the mask first
    assert inpaint["params"]["source"] == "layer-1" and inpaint["params"]["mask"] == "layer-2"
    assert inpaint["output"]["fingerprint"]["source"] == "opendream-2023"
    assert layers["layer-2"]["params"]["layer"] == "layer-1"
    bad = httpx.post(
        server.url + "/api/workflows",
        headers=admin(server),
        content=orjson.dumps({"1": {"op": "teleport", "image": "data:image/png;base64,bm90IGFuIGltYWdl"}}),
    )
    assert bad.status_code == 422 and "layer '1' ('teleport')" in bad.json()["error"]["message"]
