"""People with names, over real sockets against a real server process: the server stores each person's name and
colour with their identity on the canvas, lists the canvas's people in the welcome (offline ones too), tells the
others of someone new or renamed, and serves them at GET /api/canvases/{id}/people; what a hostile client sends
is cleaned and bounded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server_process import ServerProcess
from tests.test_live import join, share
from tests.test_scale import shared  # noqa: F401 (a fixture: a PostgreSQL schema and a data directory)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LAYER = {"type": "add_layer", "operation": "txt2img", "params": {"prompt": "x", "width": 64, "height": 64, "steps": 2}}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> ServerProcess:
    with ServerProcess(tmp_path_factory.mktemp("people") / "data", None, "--no-render") as running:
        yield running


@pytest.fixture
def canvas(server) -> tuple[str, str]:
    """A new canvas: (id, owner token)."""
    with server.client() as client:
        created = client.post("/api/canvases", json={"name": "People"}).json()
    return created["id"], created["owner_token"]


def people_of(server: ServerProcess, canvas_id: str, token: str) -> dict[str, dict[str, Any]]:
    with server.client(token) as client:
        response = client.get(f"/api/canvases/{canvas_id}/people")
    assert response.status_code == 200, response.text
    return {person["user"]: person for person in response.json()["people"]}


def named(people: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {person["user"]: (person["name"], person["colour"]) for person in people}


async def test_the_welcome_names_everyone_and_the_others_hear_of_a_newcomer(server, canvas):
    canvas_id, owner = canvas
    ada = await join(server, canvas_id, owner, user="u-ada", name="Ada", colour="#E4572E")
    ada_id = ada.welcome["you"]["user"]
    assert named(ada.welcome["people"]) == {ada_id: ("Ada", "#e4572e")}  # herself, as stored
    bo = await join(server, canvas_id, share(server, canvas_id, owner, "editor"), user="u-bo", name="Bo",
                    colour="#17bebb")  # fmt: skip
    bo_id = bo.welcome["you"]["user"]
    assert named(bo.welcome["people"]) == {ada_id: ("Ada", "#e4572e"), bo_id: ("Bo", "#17bebb")}
    news = await ada.until(lambda m: m["type"] == "people")
    assert named(news["people"]) == {bo_id: ("Bo", "#17bebb")}
    ack = await ada.command(LAYER)
    event = await bo.until(lambda m: m["type"] == "event" and m["seq"] == ack["seqs"][0])
    assert event["event"]["actor"] == ada_id  # the history's actor is a user the people list names
    await ada.close()
    await bo.close()


async def test_people_who_left_are_still_named_also_for_their_edits_over_http(server, canvas):
    canvas_id, owner = canvas
    ada = await join(server, canvas_id, owner, user="u-ada", name="Ada", colour="#e4572e")
    ada_id = ada.welcome["you"]["user"]
    await ada.close()
    with server.client(owner, **{"x-opendream-user": "u-ada"}) as client:  # the same person, over HTTP
        posted = client.post(f"/api/canvases/{canvas_id}/commands", json={"command_id": "h1", "command": LAYER})
    assert posted.status_code == 200, posted.text
    viewer = share(server, canvas_id, owner, "viewer")
    cy = await join(server, canvas_id, viewer, user="u-cy", name="Cy", colour="#ffc914")
    assert named(cy.welcome["people"])[ada_id] == ("Ada", "#e4572e")  # not here, still named
    actors = {layer_event["actor"] for layer_event in posted.json()["events"]}
    assert actors == {ada_id}
    listed = people_of(server, canvas_id, viewer)  # viewer access
    assert listed[ada_id]["name"] == "Ada" and listed[cy.welcome["you"]["user"]]["name"] == "Cy"
    assert next(iter(listed)) == cy.welcome["you"]["user"]  # most recently seen first
    await cy.close()
    with server.client() as client:
        assert client.get("/api/canvases/nope/people").status_code == 404
    with server.client("not-a-token") as client:
        assert client.get(f"/api/canvases/{canvas_id}/people").status_code == 401


async def test_a_rename_is_stored_and_told_to_the_others(server, canvas):
    canvas_id, owner = canvas
    bo = await join(server, canvas_id, owner, user="u-bo", name="Bo", colour="#17bebb")
    ada = await join(server, canvas_id, owner, user="u-ada", name="Ada", colour="#e4572e")
    ada_id = ada.welcome["you"]["user"]
    await bo.until(lambda m: m["type"] == "people")
    await ada.close()  # the name dialog drops the connection; the next hello carries the new name
    ada = await join(server, canvas_id, owner, user="u-ada", name="Ada Lovelace", colour="#7c5cff")
    news = await bo.until(lambda m: m["type"] == "people")
    assert named(news["people"]) == {ada_id: ("Ada Lovelace", "#7c5cff")}
    await ada.send({"type": "presence", "cursor": {"x": 1, "y": 2}, "selected_layer": None})
    presence = await bo.until(lambda m: m["type"] == "presence")
    assert (presence["user"], presence["name"], presence["colour"]) == (ada_id, "Ada Lovelace", "#7c5cff")
    assert people_of(server, canvas_id, owner)[ada_id]["name"] == "Ada Lovelace"
    again = await join(server, canvas_id, owner, user="u-ada", name="Ada Lovelace", colour="#7c5cff")
    with pytest.raises(TimeoutError):  # the same name again is no news
        await bo.until(lambda m: m["type"] == "people", timeout=1.5)
    for peer in (ada, again, bo):
        await peer.close()


async def test_a_hostile_name_and_colour_are_cleaned_before_anyone_sees_them(server, canvas):
    canvas_id, owner = canvas
    watcher = await join(server, canvas_id, owner, user="u-w", name="W", colour="#111111")
    hostile = await join(server, canvas_id, owner, user="u-x", name="\u202eAda\x00\n" + "x" * 500,
                         colour="red;background:url(//evil)")  # fmt: skip
    user = hostile.welcome["you"]["user"]
    name, colour = named(hostile.welcome["people"])[user]
    assert name == "Ada " + "x" * 60 and colour == "#888888"
    assert named((await watcher.until(lambda m: m["type"] == "people"))["people"])[user] == (name, colour)
    await hostile.send({"type": "presence", "cursor": None, "selected_layer": None})
    presence = await watcher.until(lambda m: m["type"] == "presence")
    assert (presence["name"], presence["colour"]) == (name, colour)
    for peer in (watcher, hostile):
        await peer.close()


async def test_a_flood_of_hellos_and_renames_leaves_the_table_bounded_and_the_others_named(server, canvas):
    canvas_id, owner = canvas
    ada = await join(server, canvas_id, owner, user="u-ada", name="Ada", colour="#e4572e")
    ada_id = ada.welcome["you"]["user"]
    await ada.close()
    link = share(server, canvas_id, owner, "viewer")  # a link posted publicly
    for i in range(120):  # as 120 people, one after the other
        peer = await join(server, canvas_id, link, user=f"bot-{i}", name=f"Bot {i}", colour="#000000")
        await peer.close()
    listed = people_of(server, canvas_id, owner)
    assert len([user for user in listed if user != ada_id]) <= 50  # one link's bound
    assert listed[ada_id]["name"] == "Ada"  # the flood did not push Ada out


async def test_renames_as_fast_as_a_client_can_are_rate_limited(server, canvas):
    canvas_id, owner = canvas
    watcher = await join(server, canvas_id, owner, user="u-w", name="W", colour="#111111")
    first = await join(server, canvas_id, owner, user="u-r", name="Renamed", colour="#000000")
    user = first.welcome["you"]["user"]
    await first.close()
    await watcher.until(lambda m: m["type"] == "people")
    for i in range(20):  # one user renaming as fast as it can
        peer = await join(server, canvas_id, owner, user="u-r", name=f"Renamed {i}", colour="#000000")
        await peer.close()
    told: list[str] = []
    with pytest.raises(TimeoutError):
        while True:
            news = await watcher.until(lambda m: m["type"] == "people", timeout=1.5)
            told.append(news["people"][0]["name"])
    assert told == [f"Renamed {i}" for i in range(5)]  # the rename budget of one user: 5 at once
    assert people_of(server, canvas_id, owner)[user]["name"] == "Renamed 4"
    await watcher.close()


async def test_people_cross_replicas_on_postgresql(shared):  # noqa: F811 (the fixture imported above)
    """Two web replicas over one database: the welcome on one lists who said hello on the other, and the news of
    a newcomer is relayed to the other replica's clients."""
    db, data = shared
    with (
        ServerProcess(data, None, "--db", db, "--no-worker") as one,
        ServerProcess(data, None, "--db", db, "--no-worker") as two,
    ):
        with one.client() as client:
            created = client.post("/api/canvases", json={"name": "Shared people"}).json()
        canvas_id, owner = created["id"], created["owner_token"]
        ada = await join(one, canvas_id, owner, user="u-ada", name="Ada", colour="#e4572e")
        bo = await join(two, canvas_id, owner, user="u-bo", name="Bo", colour="#17bebb")
        assert named(bo.welcome["people"])[ada.welcome["you"]["user"]] == ("Ada", "#e4572e")
        news = await ada.until(lambda m: m["type"] == "people")  # from replica two, through the bus
        assert named(news["people"]) == {bo.welcome["you"]["user"]: ("Bo", "#17bebb")}
        await ada.close()
        await bo.close()
