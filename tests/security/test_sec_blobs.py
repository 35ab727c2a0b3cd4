"""Images are served under the access of a canvas that names them (issue #13), on a real server process."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from tests.reliability.relsupport import new_canvas, share, start_server

pytestmark = [pytest.mark.slow]


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def wait_rendered(client: httpx.Client, canvas_id: str, layer_id: str) -> dict:
    for _ in range(600):
        layers = {layer["id"]: layer for layer in client.get(f"/api/canvases/{canvas_id}/state").json()["layers"]}
        if layers.get(layer_id, {}).get("status") == "rendered":
            return layers[layer_id]
        time.sleep(0.05)
    raise AssertionError(f"{layer_id} did not render")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("blobs") / "data")
    mine, mine_owner = new_canvas(server, "Mine")
    theirs, theirs_owner = new_canvas(server, "Theirs")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {theirs_owner}"}) as client:
        secret = client.post(f"/api/blobs?canvas={theirs}", content=png("purple")).json()["sha256"]
        command = {"type": "add_layer", "layer_id": "s", "operation": "upload", "params": {"blob": secret}}
        assert client.post(f"/api/canvases/{theirs}/commands", json={"command_id": "s", "command": command}).is_success
        rendered = wait_rendered(client, theirs, "s")["output"]["sha256"]
    yield server, {"mine": mine, "mine_owner": mine_owner, "theirs": theirs, "theirs_owner": theirs_owner,
                   "secret": secret, "rendered": rendered}  # fmt: skip
    server.stop()


def get(server, path: str, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return httpx.get(server.url + path, headers=headers, timeout=30)


def test_members_read_their_canvas_images_privately(world):
    server, w = world
    viewer = share(server, w["theirs"], w["theirs_owner"], "viewer")["token"]
    for sha in (w["secret"], w["rendered"]):
        response = get(server, f"/api/canvases/{w['theirs']}/blobs/{sha}", viewer)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"].startswith("private")
    # as an <img> would: the token in the query
    assert httpx.get(f"{server.url}/api/canvases/{w['theirs']}/blobs/{w['secret']}?token={viewer}").status_code == 200


def test_nobody_else_reads_them_by_hash(world):
    server, w = world
    for sha in (w["secret"], w["rendered"]):
        assert get(server, f"/api/blobs/{sha}", w["mine_owner"]).status_code == 403  # the bare hash: admins only
        assert get(server, f"/api/blobs/{sha}", None).status_code == 401
        assert get(server, f"/api/canvases/{w['theirs']}/blobs/{sha}", w["mine_owner"]).status_code == 403
        # through a canvas one may read, which does not name it: not found (no oracle of other canvases' images)
        assert get(server, f"/api/canvases/{w['mine']}/blobs/{sha}", w["mine_owner"]).status_code == 404
        assert get(server, f"/api/blobs/{sha}", server.admin_token).status_code == 200


def test_a_revoked_share_cannot_fetch_the_images(world):
    server, w = world
    link = share(server, w["theirs"], w["theirs_owner"], "viewer")
    path = f"/api/canvases/{w['theirs']}/blobs/{w['rendered']}"
    assert get(server, path, link["token"]).status_code == 200
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {w['theirs_owner']}"}) as owner:
        assert owner.delete(f"/api/canvases/{w['theirs']}/shares/{link['id']}").status_code == 200
    assert get(server, path, link["token"]).status_code == 401


def test_a_layer_cannot_name_another_canvas_s_image_to_read_it(world):
    server, w = world
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {w['mine_owner']}"}) as client:
        command = {"type": "add_layer", "layer_id": "stolen", "operation": "upload", "params": {"blob": w["secret"]}}
        refused = client.post(f"/api/canvases/{w['mine']}/commands", json={"command_id": "x", "command": command})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_blob", refused.text
        # nor by importing a file that names it without carrying it
        workflow = {"format": "opendream.workflow", "version": 1, "events": [
            {"seq": 1, "type": "canvas.created", "payload": {"name": "Heist"}},
            {"seq": 2, "type": "layer.added", "payload": {"layer_id": "a", "operation": "upload",
             "params": {"blob": w["secret"]}, "seed": None, "parents": [], "name": "A"}}]}  # fmt: skip
        imported = client.post("/api/workflows", json=workflow)
        assert imported.status_code == 422 and "neither in the file" in imported.json()["error"]["message"]
        rendered = dict(workflow, events=[*workflow["events"][:1], {"seq": 2, "type": "layer.added", "payload": {
            "layer_id": "b", "operation": "blank", "params": {"width": 6, "height": 6}, "seed": None, "parents": [],
            "name": "B"}}, {"seq": 3, "type": "layer.rendered", "payload": {"layer_id": "b", "revision": 1,
            "output": w["rendered"], "width": 6, "height": 6, "fingerprint": {}, "duration_ms": 1.0}}])  # fmt: skip
        made = client.post("/api/workflows", json=rendered)
        assert made.status_code == 201, made.text
        heist = made.json()
    assert get(server, f"/api/canvases/{heist['id']}/blobs/{w['rendered']}", heist["owner_token"]).status_code == 404


def test_an_upload_for_a_canvas_is_shown_there_at_once(world):
    server, w = world
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {w['mine_owner']}"}) as client:
        bound = client.post(f"/api/blobs?canvas={w['mine']}", content=png("orange")).json()["sha256"]
        loose = client.post("/api/blobs", content=png("olive")).json()["sha256"]
        assert client.get(f"/api/canvases/{w['mine']}/blobs/{bound}").status_code == 200
        assert client.get(f"/api/canvases/{w['mine']}/blobs/{loose}").status_code == 404
        # an upload for a canvas one cannot edit is refused
        assert client.post(f"/api/blobs?canvas={w['theirs']}", content=png("navy")).status_code == 403
