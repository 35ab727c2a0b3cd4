"""GET /api/canvases/{id}/composite.png?version=N: the canvas flattened as it was at a version (the timeline's
hover card shows it), with the pictures its layers got later; `thumbnail=1` makes it small and bare."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageChops

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("composite") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def canvas(server) -> dict:
    """A canvas with one rendered 320 x 64 layer: v2 adds it, v3 records its picture."""
    with server.client() as admin:
        created = admin.post("/api/canvases", json={"name": "Versions"}).json()
    with server.client(created["owner_token"]) as owner:
        command = {"type": "add_layer", "layer_id": "a", "operation": "txt2img", "seed": 3,
                   "params": {"prompt": "a harbour", "width": 320, "height": 64, "steps": 2}}  # fmt: skip
        assert owner.post(f"/api/canvases/{created['id']}/commands",
                          json={"command_id": "add-a", "command": command}).status_code == 200  # fmt: skip
        for _ in range(600):
            if owner.get(f"/api/canvases/{created['id']}/state").json()["layers"][0]["status"] == "rendered":
                break
            time.sleep(0.1)
        viewer = owner.post(f"/api/canvases/{created['id']}/shares", json={"role": "viewer"}).json()["token"]
    return {"id": created["id"], "viewer": viewer}


def picture(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def test_a_viewer_gets_the_composite_of_a_past_version_with_its_later_picture(server, canvas):
    with server.client(canvas["viewer"]) as viewer:
        rendered = viewer.get(f"/api/canvases/{canvas['id']}/composite.png?version=3")
        added = viewer.get(f"/api/canvases/{canvas['id']}/composite.png?version=2")
        before = viewer.get(f"/api/canvases/{canvas['id']}/composite.png?version=1")
        beyond = viewer.get(f"/api/canvases/{canvas['id']}/composite.png?version=99")
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/png"
    assert "opendream-workflow" in picture(rendered.content).text  # a file to keep carries its workflow
    # at v2 the layer had no picture yet: the one its params made (v3's) stands in, as in the editor
    assert added.status_code == 200, added.text
    first, later = picture(added.content).convert("RGBA"), picture(rendered.content).convert("RGBA")
    assert first.size == later.size == (320, 64) and ImageChops.difference(first, later).getbbox() is None
    assert before.status_code == 404 and before.json()["error"]["code"] == "no_image"  # nothing yet at v1
    assert beyond.status_code == 400 and beyond.json()["error"]["field"] == "version"


def test_a_thumbnail_is_small_and_carries_no_workflow(server, canvas):
    with server.client(canvas["viewer"]) as viewer:
        response = viewer.get(f"/api/canvases/{canvas['id']}/composite.png?version=2&thumbnail=1")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    thumbnail = picture(response.content)
    assert thumbnail.size == (256, 51) and "opendream-workflow" not in thumbnail.text
