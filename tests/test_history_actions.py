"""Named history actions (issue #19): a restore is one step that says which version it went back to, and can
be undone at once; checkpoints name versions, in the state and through the protocol. Real service and store."""

from __future__ import annotations

import pytest

from server.core.commands import (
    AddLayer,
    MalformedCommand,
    NameVersion,
    RenameLayer,
    Restore,
    SetOpacity,
    Undo,
    parse_envelope,
)
from server.core.decide import CommandRejected
from server.service import CanvasService

pytestmark = pytest.mark.anyio


def looks(state) -> list[dict]:
    """The layers as they look (when each last changed aside)."""
    return [{key: value for key, value in layer.items() if key != "updated_seq"} for layer in state.to_json()["layers"]]


async def edited_canvas(service: CanvasService) -> str:
    canvas_id = (await service.create_canvas("Actions", "ada")).canvas_id
    await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "ada", "add")  # version 2
    await service.execute(canvas_id, RenameLayer(layer_id="a", name="Sky"), "ada", "rename")
    await service.execute(canvas_id, SetOpacity(layer_id="a", opacity=0.5), "ada", "fade")
    await service.execute(canvas_id, AddLayer(layer_id="b", operation="generate"), "ada", "add-b")
    return canvas_id


async def test_a_restore_is_one_step_marked_with_its_version_and_one_undo_takes_it_back(service, store):
    canvas_id = await edited_canvas(service)
    before = await service.state(canvas_id)
    result = await service.execute(canvas_id, Restore(version=2), "ada", "restore")
    events = list(result.events)
    assert events[0].type == "canvas.restored"
    assert (events[0].data.version, events[0].data.count) == (2, len(events) - 1)
    restored = await service.state(canvas_id)
    assert list(restored.layers) == ["a"] and restored.layers["a"].opacity == 1.0
    assert len(restored.history["ada"].undo) == len(before.history["ada"].undo) + 1, "the restore is one step"
    await service.execute(canvas_id, Undo(), "ada", "undo")
    back = await service.state(canvas_id)
    assert looks(back) == looks(before)


async def test_restoring_the_current_version_changes_nothing(service):
    canvas_id = await edited_canvas(service)
    head = (await service.state(canvas_id)).version
    result = await service.execute(canvas_id, Restore(version=head), "ada", "noop")
    assert result.events == ()


async def test_checkpoints_name_versions_survive_restarts_and_undo(store, decider):
    first = CanvasService(store, decider, snapshot_every=3)
    await first.start()
    canvas_id = await edited_canvas(first)
    await first.execute(canvas_id, NameVersion(version=3, label="  before\nthe sky "), "ada", "cp-1")
    await first.execute(canvas_id, NameVersion(version=5, label="with b"), "bob", "cp-2")
    await first.execute(canvas_id, NameVersion(version=3, label="the sky"), "ada", "cp-3")
    assert (await first.state(canvas_id)).to_json()["checkpoints"] == [
        {"version": 3, "label": "the sky"},
        {"version": 5, "label": "with b"},
    ]
    await first.stop()
    second = CanvasService(store, decider, snapshot_every=3)  # read back through a snapshot
    await second.start()
    try:
        assert dict((await second.state(canvas_id)).checkpoints) == {3: "the sky", 5: "with b"}
        await second.execute(canvas_id, Undo(), "ada", "undo")
        assert dict((await second.state(canvas_id)).checkpoints) == {3: "before the sky", 5: "with b"}
        await second.execute(canvas_id, NameVersion(version=5, label=""), "bob", "cp-4")
        assert dict((await second.state(canvas_id)).checkpoints) == {3: "before the sky"}
        with pytest.raises(CommandRejected) as info:
            await second.execute(canvas_id, NameVersion(version=999, label="future"), "ada", "cp-5")
        assert (info.value.code, info.value.field) == ("bad_version", "version")
    finally:
        await second.stop()


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"type": "name_version", "version": 0, "label": "x"}, "command.name_version.version"),
        ({"type": "name_version", "version": 2, "label": "x" * 81}, "command.name_version.label"),
        ({"type": "name_version", "version": 2}, "command.name_version.label"),
    ],
)
def test_a_malformed_checkpoint_is_refused_naming_the_field(command, field):
    with pytest.raises(MalformedCommand) as info:
        parse_envelope({"command_id": "c", "command": command})
    assert info.value.field == field
