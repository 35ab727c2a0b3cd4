"""One gesture, one history entry, one undo (issue #19): the commands a client marks with one gesture id (a
slider drag, a stroke, a burst of nudges) are undone together, even with other people's edits between them;
every event stays in the log. Over the real service and store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from server.core.commands import AddLayer, MalformedCommand, MoveLayer, RenameLayer, SetOpacity, Undo, parse_envelope
from server.core.projection import GESTURE_SPAN
from server.service import CanvasService
from server.store.sql import SQLEventStore

pytestmark = pytest.mark.anyio


async def canvas_with_layer(service: CanvasService) -> str:
    canvas_id = (await service.create_canvas("Gestures", "ada")).canvas_id
    await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "ada", "add-a")
    await service.execute(canvas_id, AddLayer(layer_id="b", operation="generate"), "bob", "add-b")
    return canvas_id


async def drag_opacity(service: CanvasService, canvas_id: str, values: list[float], gesture: str | None) -> None:
    for index, value in enumerate(values):
        await service.execute(canvas_id, SetOpacity(layer_id="a", opacity=value), "ada", f"{gesture}-{index}",
                              gesture=gesture)  # fmt: skip


async def test_a_slider_drag_of_many_commands_is_one_undo_and_every_tick_stays_in_the_log(service, store):
    canvas_id = await canvas_with_layer(service)
    before = await service.state(canvas_id)
    await drag_opacity(service, canvas_id, [0.9, 0.7, 0.5, 0.3, 0.2], "drag-1")
    after = await service.state(canvas_id)
    assert after.layers["a"].opacity == 0.2
    assert len(after.history["ada"].undo) == 2, "the layer's addition, then the whole drag"
    await service.execute(canvas_id, Undo(), "ada", "undo-1")
    undone = await service.state(canvas_id)
    assert undone.layers["a"].opacity == before.layers["a"].opacity == 1.0
    assert "a" in undone.layers, "one undo took back the drag, not the layer"
    ticks = [event for event in store.read(canvas_id) if event.type == "layer.opacity_changed"]
    assert [event.gesture for event in ticks[:5]] == ["drag-1"] * 5, "grouping is a history fact: nothing deleted"


async def test_without_a_gesture_each_command_is_its_own_undo(service):
    canvas_id = await canvas_with_layer(service)
    await drag_opacity(service, canvas_id, [0.9, 0.7], None)
    await service.execute(canvas_id, Undo(), "ada", "undo-1")
    assert (await service.state(canvas_id)).layers["a"].opacity == 0.9


async def test_another_persons_edit_during_my_gesture_is_not_undone_with_it(service):
    canvas_id = await canvas_with_layer(service)
    await service.execute(canvas_id, SetOpacity(layer_id="a", opacity=0.8), "ada", "g-0", gesture="g")
    await service.execute(canvas_id, RenameLayer(layer_id="b", name="Bob's"), "bob", "bob-rename")
    await service.execute(canvas_id, MoveLayer(layer_id="b", index=0), "bob", "bob-move")
    await service.execute(canvas_id, SetOpacity(layer_id="a", opacity=0.4), "ada", "g-1", gesture="g")
    await service.execute(canvas_id, Undo(), "ada", "undo")
    state = await service.state(canvas_id)
    assert state.layers["a"].opacity == 1.0
    assert state.layers["b"].name == "Bob's" and state.order[0] == "b", "Bob's edits stay"
    assert len(state.history["bob"].undo) == 3, "and are still Bob's to undo"


async def test_two_gestures_are_two_undos(service):
    canvas_id = await canvas_with_layer(service)
    await drag_opacity(service, canvas_id, [0.9, 0.8], "first")
    await drag_opacity(service, canvas_id, [0.5, 0.4], "second")
    await service.execute(canvas_id, Undo(), "ada", "undo-1")
    assert (await service.state(canvas_id)).layers["a"].opacity == 0.8
    await service.execute(canvas_id, Undo(), "ada", "undo-2")
    assert (await service.state(canvas_id)).layers["a"].opacity == 1.0


async def test_redo_of_a_gesture_brings_back_where_the_drag_ended(service):
    canvas_id = await canvas_with_layer(service)
    await drag_opacity(service, canvas_id, [0.9, 0.6, 0.3], "drag")
    await service.execute(canvas_id, Undo(), "ada", "undo")
    from server.core.commands import Redo

    await service.execute(canvas_id, Redo(), "ada", "redo")
    assert (await service.state(canvas_id)).layers["a"].opacity == 0.3


async def test_a_gesture_survives_a_restart_and_a_snapshot(store: SQLEventStore, decider):
    first = CanvasService(store, decider, snapshot_every=4)
    await first.start()
    canvas_id = await canvas_with_layer(first)
    await drag_opacity(first, canvas_id, [0.9, 0.7, 0.5, 0.3, 0.1], "long-drag")  # crosses a snapshot
    await first.stop()
    second = CanvasService(store, decider, snapshot_every=4)
    await second.start()
    try:
        await second.execute(canvas_id, Undo(), "ada", "undo")
        assert (await second.state(canvas_id)).layers["a"].opacity == 1.0
    finally:
        await second.stop()


async def test_an_endless_gesture_is_cut_into_bounded_entries(service):
    """A client that never closes its gesture cannot make one undo read the whole log."""
    canvas_id = await canvas_with_layer(service)
    count = GESTURE_SPAN + 5
    for index in range(count):
        await service.execute(canvas_id, SetOpacity(layer_id="a", opacity=(index % 10) / 10), "ada", f"e-{index}",
                              gesture="forever")  # fmt: skip
    entries = (await service.state(canvas_id)).history["ada"].undo
    assert all(entry.last_seq - entry.first_seq < GESTURE_SPAN for entry in entries)
    assert entries[-1].gesture == entries[-2].gesture == "forever"


@pytest.mark.parametrize("gesture", ["", "has space", "x" * 65, 5, "<script>"])
def test_a_malformed_gesture_is_refused_naming_the_field(gesture):
    with pytest.raises(MalformedCommand) as info:
        parse_envelope({"command_id": "c", "gesture": gesture, "command": {"type": "undo"}})
    assert info.value.field == "gesture"
