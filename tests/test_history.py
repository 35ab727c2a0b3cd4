"""Undo and redo: per user, on the server, by appending compensating events; surviving restarts."""

from __future__ import annotations

import contextlib
import random

import pytest

from server.core.commands import (
    AddLayer,
    ChangeParams,
    DeleteLayer,
    MoveLayer,
    Redo,
    RenameCanvas,
    RenameLayer,
    SetOpacity,
    SetVisibility,
    Undo,
)
from server.core.decide import CommandRejected
from server.service import CanvasService

pytestmark = pytest.mark.anyio


def content(state) -> dict:
    """What a user sees: everything but bookkeeping that moves with every event (a revision counts the
    renders a layer has needed; going back to earlier params is one more)."""
    data = state.to_json()
    for layer in data["layers"]:
        layer.pop("updated_seq")
        layer.pop("revision")
    data.pop("version")
    data.pop("history")
    return data


async def new_canvas(service: CanvasService) -> str:
    return (await service.create_canvas("History", "alice")).canvas_id


async def do(service, canvas_id, user, command):
    return await service.execute(canvas_id, command, user, command_id=f"{user}-{random.random()}")


async def test_undo_then_redo_walks_back_and_forth_through_one_users_edits(service):
    canvas_id = await new_canvas(service)
    steps = [
        AddLayer(layer_id="a", operation="generate", params={"prompt": "sea"}),
        RenameLayer(layer_id="a", name="Sea"),
        SetOpacity(layer_id="a", opacity=0.4),
        AddLayer(layer_id="b", operation="edit", params={"source": "a"}),
        ChangeParams(layer_id="b", params={"source": "a", "prompt": "storm"}),
        SetVisibility(layer_id="a", visible=False),
        MoveLayer(layer_id="b", index=0),
        RenameCanvas(name="Stormy sea"),
    ]
    seen = [content(await service.state(canvas_id))]
    for step in steps:
        await do(service, canvas_id, "alice", step)
        seen.append(content(await service.state(canvas_id)))
    for expected in reversed(seen[:-1]):
        result = await do(service, canvas_id, "alice", Undo())
        assert result.events[0].type == "history.undone"
        assert content(await service.state(canvas_id)) == expected
    with pytest.raises(CommandRejected) as info:
        await do(service, canvas_id, "alice", Undo())
    assert info.value.code == "nothing_to_undo"
    for expected in seen[1:]:
        await do(service, canvas_id, "alice", Redo())
        assert content(await service.state(canvas_id)) == expected
    with pytest.raises(CommandRejected) as info:
        await do(service, canvas_id, "alice", Redo())
    assert info.value.code == "nothing_to_redo"
    state = await service.state(canvas_id)
    assert state.to_json()["history"]["alice"] == {"undo": len(steps), "redo": 0}


async def test_undoing_a_cascading_delete_brings_every_deleted_layer_back(service, store):
    canvas_id = await new_canvas(service)
    for command in (
        AddLayer(layer_id="a", operation="generate"),
        AddLayer(layer_id="b", operation="edit", params={"source": "a"}),
        AddLayer(layer_id="c", operation="blend", params={"a": "a", "b": "b"}),
        AddLayer(layer_id="d", operation="generate"),
        MoveLayer(layer_id="d", index=1),
    ):
        await do(service, canvas_id, "alice", command)
    before = content(await service.state(canvas_id))
    await do(service, canvas_id, "alice", DeleteLayer(layer_id="a"))
    assert (await service.state(canvas_id)).order == ("d",)
    await do(service, canvas_id, "alice", Undo())
    assert content(await service.state(canvas_id)) == before
    kinds = [event.type for event in store.read(canvas_id)][-2:]
    assert kinds == ["history.undone", "layer.restored"]  # the log only grows


async def test_a_new_edit_ends_what_could_be_redone(service):
    canvas_id = await new_canvas(service)
    await do(service, canvas_id, "alice", AddLayer(layer_id="a", operation="generate"))
    await do(service, canvas_id, "alice", RenameLayer(layer_id="a", name="x"))
    await do(service, canvas_id, "alice", Undo())
    await do(service, canvas_id, "alice", SetOpacity(layer_id="a", opacity=0.5))
    with pytest.raises(CommandRejected) as info:
        await do(service, canvas_id, "alice", Redo())
    assert info.value.code == "nothing_to_redo"


async def test_each_user_undoes_only_their_own_edits(service):
    canvas_id = await new_canvas(service)
    await do(service, canvas_id, "alice", AddLayer(layer_id="a", operation="generate"))
    await do(service, canvas_id, "bob", AddLayer(layer_id="b", operation="generate"))
    await do(service, canvas_id, "alice", Undo())
    state = await service.state(canvas_id)
    assert state.order == ("b",)
    with pytest.raises(CommandRejected):
        await do(service, canvas_id, "alice", Undo())
    await do(service, canvas_id, "bob", Undo())
    assert (await service.state(canvas_id)).order == ()
    await do(service, canvas_id, "alice", Redo())
    assert (await service.state(canvas_id)).order == ("a",)


async def test_an_undo_that_would_destroy_another_users_work_is_refused(service):
    canvas_id = await new_canvas(service)
    await do(service, canvas_id, "alice", AddLayer(layer_id="a", operation="generate"))
    await do(service, canvas_id, "bob", AddLayer(layer_id="b", operation="edit", params={"source": "a"}))
    with pytest.raises(CommandRejected) as info:
        await do(service, canvas_id, "alice", Undo())
    assert info.value.code == "history_conflict" and "'b' is built on layer 'a'" in info.value.message
    assert (await service.state(canvas_id)).order == ("a", "b")  # nothing was written
    await do(service, canvas_id, "bob", Undo())
    await do(service, canvas_id, "alice", Undo())
    assert (await service.state(canvas_id)).order == ()


async def test_an_undo_never_overwrites_a_value_someone_else_set_since(service):
    canvas_id = await new_canvas(service)
    await do(service, canvas_id, "alice", AddLayer(layer_id="a", operation="generate"))
    await do(service, canvas_id, "alice", SetOpacity(layer_id="a", opacity=0.4))
    await do(service, canvas_id, "bob", SetOpacity(layer_id="a", opacity=0.8))
    with pytest.raises(CommandRejected) as info:
        await do(service, canvas_id, "alice", Undo())
    assert "opacity of layer 'a' was changed since" in info.value.message
    assert (await service.state(canvas_id)).layers["a"].opacity == 0.8


async def test_history_survives_a_restart(store, decider):
    first = CanvasService(store, decider, snapshot_every=3)
    await first.start()
    canvas_id = await new_canvas(first)
    for index in range(5):
        await do(first, canvas_id, "alice", AddLayer(layer_id=f"l{index}", operation="generate"))
    await first.stop()
    second = CanvasService(store, decider, snapshot_every=3)
    await second.start()
    await do(second, canvas_id, "alice", Undo())
    await do(second, canvas_id, "alice", Undo())
    assert (await second.state(canvas_id)).order == ("l0", "l1", "l2")
    await do(second, canvas_id, "alice", Redo())
    assert (await second.state(canvas_id)).order == ("l0", "l1", "l2", "l3")
    await second.stop()


@pytest.mark.parametrize("seed", range(5))
async def test_undoing_n_times_then_redoing_n_times_restores_the_same_state(service, seed):
    rng = random.Random(seed)
    canvas_id = await new_canvas(service)
    users = ["alice", "bob"]
    for counter in range(30):
        state = await service.state(canvas_id)
        user = rng.choice(users)
        live = list(state.order)
        choices = [AddLayer(layer_id=f"l{counter}", operation="generate", params={"prompt": str(counter)})]
        if live:
            target = rng.choice(live)
            choices += [
                AddLayer(layer_id=f"e{counter}", operation="edit", params={"source": target}),
                RenameLayer(layer_id=target, name=f"n{counter}"),
                SetOpacity(layer_id=target, opacity=rng.choice([0.1, 0.5, 0.9])),
                SetVisibility(layer_id=target, visible=rng.random() < 0.5),
                MoveLayer(layer_id=target, index=rng.randrange(len(live))),
                DeleteLayer(layer_id=target),
            ]
        with contextlib.suppress(CommandRejected):
            await do(service, canvas_id, user, rng.choice(choices))
    user = "alice"
    reference = content(await service.state(canvas_id))
    undone = 0
    for _ in range(rng.randrange(1, 10)):
        try:
            await do(service, canvas_id, user, Undo())
            undone += 1
        except CommandRejected as exc:
            assert exc.code in ("nothing_to_undo", "history_conflict")
            break
    for _ in range(undone):
        await do(service, canvas_id, user, Redo())
    assert content(await service.state(canvas_id)) == reference
