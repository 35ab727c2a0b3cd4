"""Who a person is on a canvas, over real sockets against a real server process: the hello's `user` is kept as
given or refused (never silently replaced, which would lose that person's undo history on every reconnect), and
the share links that let people in can be copied again by whoever made them."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.server_process import ServerProcess
from tests.test_live import join

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("identity") / "data") as running:
        yield running


@pytest.fixture
def canvas(server) -> tuple[str, str]:
    """A new canvas: (id, owner token)."""
    with server.client() as client:
        created = client.post("/api/canvases", json={"name": "Identity"}).json()
    return created["id"], created["owner_token"]


def create_share(server: ServerProcess, canvas_id: str, token: str, role: str = "editor") -> dict[str, Any]:
    with server.client(token) as client:
        response = client.post(f"/api/canvases/{canvas_id}/shares", json={"role": role})
    assert response.status_code == 201, response.text
    return response.json()


def list_shares(server: ServerProcess, canvas_id: str, token: str) -> dict[str, dict[str, Any]]:
    with server.client(token) as client:
        response = client.get(f"/api/canvases/{canvas_id}/shares")
    assert response.status_code == 200, response.text
    return {share["id"]: share for share in response.json()["shares"]}


async def refusal(server: ServerProcess, canvas_id: str, hello: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The error frame and the close code a hello gets."""
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}")
    await ws.send(json.dumps({"type": "hello", **hello}))
    error = json.loads(await ws.recv())
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None
    return error, info.value.rcvd.code


# --- the hello's user -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["Ada Lovelace", "x" * 65, "", "a/b", "émile", 42, ["u-1"], {"id": "u-1"}, True])
async def test_an_invalid_user_is_refused_naming_the_field(server, canvas, user):
    canvas_id, owner = canvas
    error, code = await refusal(server, canvas_id, {"token": owner, "user": user})
    assert code == 4400  # as every other bad hello
    assert error["type"] == "error" and error["code"] == "bad_hello"
    assert error["message"].startswith("user must be"), error
    assert "A-Z a-z 0-9 _ . @ -" in error["message"] and "omitted" in error["message"]


async def test_a_bad_user_is_refused_before_the_token_is_looked_at(server, canvas):
    canvas_id, _ = canvas
    error, code = await refusal(server, canvas_id, {"token": "not-a-token", "user": "no spaces please"})
    assert (error["code"], code) == ("bad_hello", 4400)


@pytest.mark.parametrize("hello", [{}, {"user": None}], ids=["omitted", "null"])
async def test_an_omitted_user_gets_the_links_anonymous_id(server, canvas, hello):
    canvas_id, owner = canvas
    link = create_share(server, canvas_id, owner)
    first = await join(server, canvas_id, link["token"], **hello)
    again = await join(server, canvas_id, link["token"], **hello)
    assert first.welcome["you"]["user"] == again.welcome["you"]["user"] == f"t{link['id']}"
    assert first.welcome["you"]["role"] == "editor"
    await first.close()
    await again.close()


@pytest.mark.parametrize("user", ["u-7f3a", "ada@example.org", "A.b_c-1", "x" * 64])
async def test_a_valid_user_is_kept_across_reconnects_with_its_undo_history(server, canvas, user):
    canvas_id, owner = canvas
    link = create_share(server, canvas_id, owner)
    ada = await join(server, canvas_id, link["token"], user=user)
    assert ada.welcome["you"]["user"] == f"t{link['id']}.{user}"
    assert (await ada.command({"type": "rename_canvas", "name": "Renamed before the reconnect"}))["type"] == "ack"
    await ada.close()

    back = await join(server, canvas_id, link["token"], user=user, since=ada.version)
    assert back.welcome["you"]["user"] == ada.welcome["you"]["user"]
    # the edit made before the reconnect is still this person's to undo
    undo = await back.command({"type": "undo"})
    assert undo["type"] == "ack", undo
    with server.client(owner) as client:
        assert client.get(f"/api/canvases/{canvas_id}/state").json()["name"] == "Identity"
    await back.close()


# --- share links, shown again ---------------------------------------------------------------------------------


def test_the_owner_can_copy_a_link_again_until_it_is_revoked(server, canvas):
    canvas_id, owner = canvas
    editor = create_share(server, canvas_id, owner, "editor")
    viewer = create_share(server, canvas_id, owner, "viewer")
    listed = list_shares(server, canvas_id, owner)
    for created in (editor, viewer):
        assert listed[created["id"]]["token"] == created["token"]
        assert listed[created["id"]]["path"] == created["path"] == f"/?canvas={canvas_id}#token={created['token']}"
        assert listed[created["id"]]["role"] == created["role"] and not listed[created["id"]]["revoked"]

    with server.client(owner) as client:
        assert client.delete(f"/api/canvases/{canvas_id}/shares/{editor['id']}").json()["revoked"]
    listed = list_shares(server, canvas_id, owner)
    assert listed[editor["id"]]["revoked"] and listed[editor["id"]]["token"] is None  # a dead link is not shown
    assert listed[editor["id"]]["path"] is None
    assert listed[viewer["id"]]["token"] == viewer["token"]


def test_a_link_made_by_another_token_is_listed_but_not_shown(server, canvas):
    canvas_id, owner = canvas
    by_admin = create_share(server, canvas_id, server.admin_token, "viewer")
    mine = create_share(server, canvas_id, owner, "editor")
    seen_by_owner = list_shares(server, canvas_id, owner)
    assert seen_by_owner[by_admin["id"]]["token"] is None and seen_by_owner[by_admin["id"]]["path"] is None
    assert seen_by_owner[mine["id"]]["token"] == mine["token"]
    seen_by_admin = list_shares(server, canvas_id, server.admin_token)
    assert seen_by_admin[by_admin["id"]]["token"] == by_admin["token"]
    assert seen_by_admin[mine["id"]]["token"] is None


def test_an_editor_cannot_list_the_links(server, canvas):
    canvas_id, owner = canvas
    editor = create_share(server, canvas_id, owner, "editor")
    with server.client(editor["token"]) as client:
        assert client.get(f"/api/canvases/{canvas_id}/shares").status_code == 403


def test_the_database_still_holds_only_hashes(server, canvas):
    canvas_id, owner = canvas
    link = create_share(server, canvas_id, owner, "editor")
    with sqlite3.connect(server.data_dir / "opendream.db") as db:
        rows = db.execute("SELECT * FROM tokens").fetchall()
    stored = "\n".join(str(value) for row in rows for value in row)
    assert link["token"] not in stored and owner not in stored
