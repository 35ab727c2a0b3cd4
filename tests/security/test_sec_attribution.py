"""Attribution is bound to the credential (issue #13): whatever a client claims, its events are attributed to
its token, and it can undo only its own edits. Real server process, HTTP and WebSocket."""

from __future__ import annotations

import pytest

from tests.reliability.relsupport import join, new_canvas, read_log, share, start_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("attribution") / "data")
    yield running
    running.stop()


def rename(server, canvas_id: str, token: str, user: str, command_id: str) -> dict:
    with server.client(token, **{"x-opendream-user": user}) as client:
        response = client.post(f"/api/canvases/{canvas_id}/commands",
                               json={"command_id": command_id, "command": {"type": "rename_canvas",
                                                                            "name": command_id}})  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()


async def test_an_editor_cannot_be_attributed_as_another_user(server):
    canvas_id, owner = new_canvas(server, "Whose edit")
    editor = share(server, canvas_id, owner, "editor")["token"]
    alice = await join(server.port, canvas_id, owner, user="alice")
    alices_id = alice.welcome["you"]["user"]
    await alice.command("by-alice", {"type": "rename_canvas", "name": "Alice's"})
    for claimed in ("engine", "import", "alice", alices_id):
        events = rename(server, canvas_id, editor, claimed, f"as-{claimed}")["events"]
        actor = events[0]["actor"]
        assert actor not in ("engine", "import", "system", alices_id), actor
        assert actor.endswith(f".{claimed}")
    mallory = await join(server.port, canvas_id, editor, user=alices_id)  # the same claim over the socket
    assert mallory.welcome["you"]["user"] != alices_id
    # Undo follows the identity: the editor's undo takes back the editor's edit, never Alice's.
    undone = await mallory.command("mallory-undo", {"type": "undo"})
    assert undone["type"] == "ack", undone  # it undoes what that same identity did over HTTP
    log = read_log(server, canvas_id)
    alices = [e for e in log if e["actor"] == alices_id]
    assert [e["type"] for e in alices] == ["canvas.renamed"]
    inverted = [e for e in log if e["type"] == "history.undone"]
    assert all(e["actor"] != alices_id for e in inverted)
    await alice.close()
    await mallory.close()
