"""The decider: what each command turns into, and the clear reasons it refuses."""

from __future__ import annotations

import pytest

from server.core.commands import (
    AddLayer,
    ChangeParams,
    DeleteLayer,
    MalformedCommand,
    MoveLayer,
    RecordFailure,
    RecordRender,
    RenameLayer,
    RetryRender,
    SetOpacity,
    SetVisibility,
    parse_envelope,
)
from server.core.decide import CommandRejected, Decider
from server.core.events import CanvasCreated, Event, LayerAdded, LayerParamsChanged
from server.core.projection import empty_state, project
from server.core.state import CanvasState


def run(decider: Decider, state: CanvasState, *commands) -> CanvasState:
    for command in commands:
        events = decider.decide(state, command)
        state = project(
            state,
            [Event(state.canvas_id, state.version + i, f"e{state.version + i}", d, "t", None, 0.0) for i, d in
             enumerate(events, start=1)],
        )  # fmt: skip
    return state


@pytest.fixture
def canvas(decider: Decider) -> CanvasState:
    state = project(empty_state("c1"), [Event("c1", 1, "e1", CanvasCreated("c"), "t", None, 0.0)])
    return run(
        decider,
        state,
        AddLayer(layer_id="a", operation="generate", params={"prompt": "sky"}),
        AddLayer(layer_id="b", operation="edit", params={"source": "a"}),
        AddLayer(layer_id="c", operation="edit", params={"source": "b"}),
    )


def rejection(decider: Decider, state: CanvasState, command) -> CommandRejected:
    with pytest.raises(CommandRejected) as info:
        decider.decide(state, command)
    return info.value


def test_add_layer_validates_params_derives_parents_and_draws_a_seed(decider, canvas):
    [event] = decider.decide(canvas, AddLayer(operation="blend", params={"a": "a", "b": "c"}))
    assert isinstance(event, LayerAdded)
    assert event.parents == ("a", "c") and event.layer_id == "auto1" and event.name == "Blend 4"
    assert event.params == {"a": "a", "b": "c", "mask": None}
    assert event.seed is None  # blend draws no noise
    [generated] = decider.decide(canvas, AddLayer(operation="generate"))
    assert generated.seed == 42 and generated.params == {"prompt": "", "steps": 4}
    [seeded] = decider.decide(canvas, AddLayer(operation="generate", seed=5, name="Mine"))
    assert seeded.seed == 5 and seeded.name == "Mine"


def test_unknown_operation_is_rejected_naming_the_known_ones(decider, canvas):
    error = rejection(decider, canvas, AddLayer(operation="teleport"))
    assert error.code == "unknown_operation" and "'teleport'" in error.message and "generate" in error.message


def test_bad_params_are_rejected_naming_the_field(decider, canvas):
    error = rejection(decider, canvas, AddLayer(operation="generate", params={"steps": 0}))
    assert error.code == "invalid_params" and error.field == "params.steps" and "steps" in error.message
    error = rejection(decider, canvas, AddLayer(operation="generate", params={"colour": "red"}))
    assert error.field == "params.colour"


def test_references_to_missing_or_deleted_layers_are_rejected(decider, canvas):
    error = rejection(decider, canvas, AddLayer(operation="edit", params={"source": "nope"}))
    assert error.code == "unknown_layer" and "'nope' does not exist" in error.message
    after = run(decider, canvas, DeleteLayer(layer_id="c"))
    error = rejection(decider, after, AddLayer(operation="edit", params={"source": "c"}))
    assert "'c' was deleted" in error.message
    for command in (
        DeleteLayer(layer_id="zz"),
        SetVisibility(layer_id="zz", visible=False),
        SetOpacity(layer_id="zz", opacity=0.1),
        RenameLayer(layer_id="zz", name="x"),
        MoveLayer(layer_id="zz", index=0),
        ChangeParams(layer_id="zz", params={}),
    ):
        assert rejection(decider, canvas, command).code == "unknown_layer"


def test_layer_ids_are_never_reused(decider, canvas):
    assert rejection(decider, canvas, AddLayer(layer_id="a", operation="generate")).code == "layer_exists"
    after = run(decider, canvas, DeleteLayer(layer_id="c"))
    assert rejection(decider, after, AddLayer(layer_id="c", operation="generate")).code == "layer_exists"


def test_a_params_change_that_would_make_a_cycle_is_rejected(decider, canvas):
    error = rejection(decider, canvas, ChangeParams(layer_id="b", params={"source": "c"}))
    assert error.code == "cycle" and "'c' is derived from it" in error.message
    error = rejection(decider, canvas, ChangeParams(layer_id="b", params={"source": "b"}))
    assert error.code == "cycle" and "cannot read itself" in error.message


def test_change_params_keeps_the_seed_unless_given_and_records_new_parents(decider, canvas):
    state = run(decider, canvas, AddLayer(layer_id="d", operation="generate"))
    [event] = decider.decide(state, ChangeParams(layer_id="c", params={"source": "d", "prompt": "p"}))
    assert isinstance(event, LayerParamsChanged) and event.parents == ("d",) and event.seed == 42
    [event] = decider.decide(state, ChangeParams(layer_id="c", params={"source": "b"}, seed=3))
    assert event.seed == 3


def test_commands_that_change_nothing_cause_no_events(decider, canvas):
    assert decider.decide(canvas, SetVisibility(layer_id="a", visible=True)) == []
    assert decider.decide(canvas, SetOpacity(layer_id="a", opacity=1.0)) == []
    assert decider.decide(canvas, MoveLayer(layer_id="a", index=0)) == []
    assert decider.decide(canvas, ChangeParams(layer_id="a", params={"prompt": "sky"})) == []


def test_move_out_of_range_is_rejected(decider, canvas):
    error = rejection(decider, canvas, MoveLayer(layer_id="a", index=3))
    assert error.code == "invalid_index" and "3 layers" in error.message


def test_a_render_must_be_of_the_current_revision(decider, canvas):
    command = RecordRender(layer_id="a", revision=2, output="f" * 64, width=8, height=8, fingerprint={}, duration_ms=1)
    assert rejection(decider, canvas, command).code == "stale_revision"


def test_only_a_failed_render_can_be_retried(decider, canvas):
    error = rejection(decider, canvas, RetryRender(layer_id="a"))
    assert error.code == "not_failed" and "pending" in error.message
    failed = run(decider, canvas, RecordFailure(layer_id="a", revision=1, reason="cancelled"))
    assert [event.type for event in decider.decide(failed, RetryRender(layer_id="a"))] == ["layer.render_requested"]


def test_commands_on_a_canvas_that_does_not_exist_are_rejected(decider):
    error = rejection(decider, empty_state("nope"), AddLayer(operation="generate"))
    assert error.code == "canvas_not_found"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"command": {"type": "add_layer", "operation": "generate"}}, "command_id"),
        ({"command_id": "x", "command": {"type": "fly"}}, "command"),
        ({"command_id": "x", "command": {"type": "set_opacity", "layer_id": "a", "opacity": 2}}, "command.set_opacity.opacity"),
        ({"command_id": "x", "command": {"type": "delete_layer", "layer_id": "../etc"}}, "command.delete_layer.layer_id"),
        ({"command_id": "x", "expected_version": -1, "command": {"type": "delete_layer", "layer_id": "a"}}, "expected_version"),
        ({"command_id": "x", "extra": 1, "command": {"type": "delete_layer", "layer_id": "a"}}, "extra"),
        ("not an object", None),
    ],
)  # fmt: skip
def test_malformed_messages_are_refused_naming_the_field(message, field):
    with pytest.raises(MalformedCommand) as info:
        parse_envelope(message)
    assert info.value.field == field
    assert str(info.value)


def test_a_render_result_for_a_layer_no_longer_waiting_is_refused(decider, canvas):
    # Cancelled while its render was starting: the late result must not resurrect it.
    failed = run(decider, canvas, RecordFailure(layer_id="a", revision=1, reason="cancelled by ada"))
    command = RecordRender(layer_id="a", revision=1, output="f" * 64, width=8, height=8, fingerprint={}, duration_ms=1)
    assert rejection(decider, failed, command).code == "not_waiting"
