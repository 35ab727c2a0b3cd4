"""Access control over HTTP: every canvas route against no token, another canvas's token, viewer, editor,
owner, admin and a revoked link."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

ROLES = ["none", "other", "revoked", "viewer", "editor", "owner", "admin"]
RANK = {role: index for index, role in enumerate(ROLES)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("access") / "data") as server:
        with server.client() as admin:
            canvas = admin.post("/api/canvases", json={"name": "Guarded"}).json()
            other = admin.post("/api/canvases", json={"name": "Elsewhere"}).json()
        canvas_id, owner = canvas["id"], canvas["owner_token"]
        tokens = {"none": None, "other": other["owner_token"], "owner": owner, "admin": server.admin_token}
        with server.client(owner) as client:
            for role in ("viewer", "editor"):
                tokens[role] = client.post(f"/api/canvases/{canvas_id}/shares", json={"role": role}).json()["token"]
            revoked = client.post(f"/api/canvases/{canvas_id}/shares", json={"role": "editor"}).json()
            client.delete(f"/api/canvases/{canvas_id}/shares/{revoked['id']}")
            tokens["revoked"] = revoked["token"]
        yield server, canvas_id, tokens


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


# (method, path, body or content, weakest role allowed)
ROUTES = [
    ("GET", "/api/canvases/{id}", None, "viewer"),
    ("GET", "/api/canvases/{id}/state", None, "viewer"),
    ("GET", "/api/canvases/{id}/events", None, "viewer"),
    ("GET", "/api/canvases/{id}/renders", None, "viewer"),
    ("POST", "/api/canvases/{id}/commands", {"command_id": "rename", "command": {"type": "rename_canvas", "name": "x"}},
     "editor"),
    ("POST", "/api/canvases/{id}/layers/nothing/cancel", None, "editor"),
    ("GET", "/api/canvases/{id}/shares", None, "owner"),
    ("POST", "/api/canvases/{id}/shares", {"role": "viewer"}, "owner"),
]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "needs"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_canvas_routes(setup, role, method, path, body, needs):
    server, canvas_id, tokens = setup
    headers = {} if tokens[role] is None else {"authorization": f"Bearer {tokens[role]}"}
    response = httpx.request(method, server.url + path.format(id=canvas_id), json=body, headers=headers, timeout=30)
    if role in ("none", "revoked"):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    elif role == "other" or RANK[role] < RANK[needs]:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    else:
        assert response.status_code not in (401, 403), response.text


@pytest.mark.parametrize("role", ROLES)
def test_uploads_need_an_editor(setup, role):
    server, _, tokens = setup
    headers = {} if tokens[role] is None else {"authorization": f"Bearer {tokens[role]}"}
    response = httpx.post(server.url + "/api/blobs", content=png(), headers=headers, timeout=30)
    # "other" is the owner of another canvas: uploading for that one is fine.
    allowed = role in ("other", "editor", "owner", "admin")
    assert response.status_code == (201 if allowed else 401 if role in ("none", "revoked") else 403), response.text


def test_the_canvas_list_shows_only_what_the_token_opens(setup):
    server, canvas_id, tokens = setup
    with server.client(tokens["viewer"]) as client:
        assert [c["id"] for c in client.get("/api/canvases").json()["canvases"]] == [canvas_id]
    with server.client() as client:
        assert len(client.get("/api/canvases").json()["canvases"]) >= 2
    assert httpx.get(server.url + "/api/canvases").status_code == 401


def test_creating_a_canvas_hands_out_its_owner_token_once(setup):
    server, _, tokens = setup
    with server.client(tokens["editor"]) as client:  # creating needs a token: an editor's (or more) of some canvas
        first = client.post("/api/canvases", json={"name": "Mine", "command_id": "create-1"}).json()
        assert first["owner_token"] and not first["duplicate"]
        again = client.post("/api/canvases", json={"name": "Mine", "command_id": "create-1"}).json()
        assert again["id"] == first["id"] and again["duplicate"] and again["owner_token"] is None
        other = client.post("/api/canvases", json={"name": "Mine"}).json()  # no command id: a new canvas
        assert other["id"] != first["id"]
        with_id = client.post("/api/canvases", json={"id": "fixed", "command_id": "c-fixed"}).json()
        retry = client.post("/api/canvases", json={"id": "fixed", "command_id": "c-fixed"}).json()
        assert with_id["owner_token"] and retry["duplicate"] and retry["owner_token"] is None
    anonymous = httpx.post(server.url + "/api/canvases", json={"name": "Anyone's"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"


def test_the_local_session_hands_the_admin_token_to_this_machine(setup):
    server, _, _ = setup
    session = httpx.get(server.url + "/api/session").json()
    assert session == {"token": server.admin_token, "role": "admin"}


def test_open_routes(setup):
    server, _, _ = setup
    assert httpx.get(server.url + "/api/health").status_code == 200
    assert httpx.get(server.url + "/api/operations").status_code == 200
