"""An imported log is decided like the commands it stands for: a file is refused exactly where the same command
would be (ids, names, params, layers the commands refuse), and accepted where the command would be."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine.builtins import default_registry
from server.config import WorkflowLimits
from server.core.commands import MalformedCommand, parse_envelope
from server.core.decide import CommandRejected, Decider
from server.core.events import CanvasCreated, Event, EventData
from server.core.projection import empty_state, project
from server.workflow import FORMAT, InvalidWorkflow, parse_workflow

OPERATIONS = default_registry()
DECIDER = Decider(OPERATIONS, new_seed=lambda: 7)
DEEP: dict[str, Any] = {}
_inner = DEEP
for _ in range(40):
    _inner["x"] = {}
    _inner = _inner["x"]


def _base() -> tuple[list[Event], Any]:
    """A canvas with a blank layer `a`, a crop `b` of it and a crop `c` of `b`."""
    events = [Event("import", 1, "", CanvasCreated("Base"), "ada", None, 0.0)]
    state = project(empty_state("import"), events)
    for command in (
        {"type": "add_layer", "layer_id": "a", "operation": "blank", "params": {"width": 64, "height": 64}},
        {"type": "add_layer", "layer_id": "b", "operation": "crop", "params": {"source": "a", "width": 8, "height": 8}},
        {"type": "add_layer", "layer_id": "c", "operation": "crop", "params": {"source": "b", "width": 4, "height": 4}},
    ):
        for data in DECIDER.decide(state, parse_envelope({"command_id": "x", "command": command}).command):
            event = Event("import", state.version + 1, "", data, "ada", None, 0.0)
            events.append(event)
            state = project(state, [event])
    return events, state


BASE_EVENTS, BASE = _base()


def added(layer_id: Any = "d", operation: str = "blank", params: Any = None, seed: Any = None, name: Any = "D",
          parents: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {"layer_id": layer_id, "operation": operation, "params": {} if params is None else params, "seed": seed,
            "parents": parents or [], "name": name}  # fmt: skip


LONG = "x" * 129
# name: (the command, the event a file would hold in its place: type and payload)
CASES: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "a valid layer": (
        {"type": "add_layer", "layer_id": "d", "operation": "blank", "params": {}, "name": "D"},
        "layer.added", added(),
    ),
    "an id with a space": (
        {"type": "add_layer", "layer_id": "has space", "operation": "blank", "name": "D"},
        "layer.added", added(layer_id="has space"),
    ),
    "an id too long": (
        {"type": "add_layer", "layer_id": LONG, "operation": "blank", "name": "D"}, "layer.added", added(layer_id=LONG),
    ),
    "an empty id": ({"type": "add_layer", "layer_id": "", "operation": "blank", "name": "D"}, "layer.added",
                    added(layer_id="")),
    "a taken id": ({"type": "add_layer", "layer_id": "a", "operation": "blank", "name": "D"}, "layer.added",
                   added(layer_id="a")),
    "an empty name": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "name": ""}, "layer.added",
                      added(name="")),
    "a name too long": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "name": "n" * 201},
                        "layer.added", added(name="n" * 201)),
    "an unknown operation": ({"type": "add_layer", "layer_id": "d", "operation": "warp", "name": "D"},
                             "layer.added", added(operation="warp")),
    "bad params": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "params": {"width": -5}, "name": "D"},
                   "layer.added", added(params={"width": -5})),
    "an unknown param": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "params": {"zoom": 2},
                          "name": "D"}, "layer.added", added(params={"zoom": 2})),
    "params nested too deep": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "params": {"deep": DEEP},
                                "name": "D"}, "layer.added", added(params={"deep": DEEP})),
    "a negative seed": ({"type": "add_layer", "layer_id": "d", "operation": "blank", "seed": -1, "name": "D"},
                        "layer.added", added(seed=-1)),
    "reading a missing layer": (
        {"type": "add_layer", "layer_id": "d", "operation": "crop", "params": {"source": "zz"}, "name": "D"},
        "layer.added", added(operation="crop", params={"source": "zz"}, parents=["zz"]),
    ),
    "changing a missing layer": ({"type": "change_params", "layer_id": "zz", "params": {}}, "layer.params_changed",
                                 {"layer_id": "zz", "params": {}, "seed": None, "parents": []}),
    "a cycle": ({"type": "change_params", "layer_id": "b", "params": {"source": "c", "width": 8, "height": 8}},
                "layer.params_changed",
                {"layer_id": "b", "params": {"source": "c", "width": 8, "height": 8}, "seed": None, "parents": ["c"]}),
    "reading itself": ({"type": "change_params", "layer_id": "b", "params": {"source": "b"}}, "layer.params_changed",
                       {"layer_id": "b", "params": {"source": "b"}, "seed": None, "parents": ["b"]}),
    "a valid edit": ({"type": "change_params", "layer_id": "b", "params": {"source": "a", "width": 6, "height": 6}},
                     "layer.params_changed",
                     {"layer_id": "b", "params": {"source": "a", "width": 6, "height": 6}, "seed": None,
                      "parents": ["a"]}),
    "deleting a missing layer": ({"type": "delete_layer", "layer_id": "zz"}, "layer.deleted", {"layer_id": "zz"}),
    "deleting with a bad id": ({"type": "delete_layer", "layer_id": "a b"}, "layer.deleted", {"layer_id": "a b"}),
    "a valid delete": ({"type": "delete_layer", "layer_id": "c"}, "layer.deleted", {"layer_id": "c"}),
    "opacity over 1": ({"type": "set_opacity", "layer_id": "a", "opacity": 1.5}, "layer.opacity_changed",
                       {"layer_id": "a", "opacity": 1.5}),
    "a valid opacity": ({"type": "set_opacity", "layer_id": "a", "opacity": 0.5}, "layer.opacity_changed",
                        {"layer_id": "a", "opacity": 0.5}),
    "hiding a missing layer": ({"type": "set_visibility", "layer_id": "zz", "visible": False},
                               "layer.visibility_changed", {"layer_id": "zz", "visible": False}),
    "an empty layer name": ({"type": "rename_layer", "layer_id": "a", "name": ""}, "layer.renamed",
                            {"layer_id": "a", "name": ""}),
    "a valid layer name": ({"type": "rename_layer", "layer_id": "a", "name": "Sky"}, "layer.renamed",
                           {"layer_id": "a", "name": "Sky"}),
    "an index out of range": ({"type": "move_layer", "layer_id": "a", "index": 3}, "layer.moved",
                              {"layer_id": "a", "index": 3}),
    "a negative index": ({"type": "move_layer", "layer_id": "a", "index": -1}, "layer.moved",
                         {"layer_id": "a", "index": -1}),
    "a valid move": ({"type": "move_layer", "layer_id": "a", "index": 2}, "layer.moved", {"layer_id": "a", "index": 2}),
    "an empty canvas name": ({"type": "rename_canvas", "name": ""}, "canvas.renamed", {"name": ""}),
    "a canvas name too long": ({"type": "rename_canvas", "name": "n" * 201}, "canvas.renamed", {"name": "n" * 201}),
    "a valid canvas name": ({"type": "rename_canvas", "name": "Harbour"}, "canvas.renamed", {"name": "Harbour"}),
}  # fmt: skip


def by_command(command: dict[str, Any]) -> str | None:
    """Why a client's command is refused (its code), or None when it is accepted."""
    try:
        envelope = parse_envelope({"command_id": "k", "command": command})
    except MalformedCommand:
        return "malformed"
    try:
        DECIDER.decide(BASE, envelope.command)
    except CommandRejected as exc:
        return exc.code
    return None


def by_import(event_type: str, payload: dict[str, Any]) -> str | None:
    """Why a file holding the log and this event is refused (the code it names), or None when it imports."""
    events = [
        {"seq": e.seq, "type": e.type, "schema_version": 1, "actor": e.actor, "command_id": None, "timestamp": 0,
         "payload": dataclasses.asdict(e.data)}
        for e in BASE_EVENTS
    ]  # fmt: skip
    events.append({"seq": len(events) + 1, "type": event_type, "schema_version": 1, "actor": "ada",
                   "command_id": None, "timestamp": 0, "payload": payload})  # fmt: skip
    document = {"format": FORMAT, "version": 1, "events": events, "blobs": {}}
    try:
        parse_workflow(document, OPERATIONS, WorkflowLimits())
    except InvalidWorkflow as exc:
        assert exc.where is not None and exc.where.startswith(f"events[{len(events) - 1}]"), exc  # at that event
        text = str(exc)
        return text.split("refused (", 1)[1].split(")", 1)[0] if "refused (" in text else "malformed"
    return None


def _events_of(data: list[EventData]) -> list[str]:
    return [d.type for d in data]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_an_import_is_refused_exactly_where_the_command_would_be(case):
    command, event_type, payload = CASES[case]
    command_says, import_says = by_command(command), by_import(event_type, payload)
    assert (command_says is None) == (import_says is None), (command_says, import_says)
    if command_says not in (None, "malformed") and import_says != "invalid_event":
        assert import_says == command_says  # the decider's own reason, word for word
    if command_says is None:  # and what the command decides is the event the file holds
        envelope = parse_envelope({"command_id": "k", "command": command})
        assert _events_of(DECIDER.decide(BASE, envelope.command)) == [event_type]


def test_the_table_covers_refusals_of_each_kind():
    said = {by_command(command) for command, _, _ in CASES.values()}
    assert {None, "malformed", "layer_exists", "unknown_operation", "invalid_params", "unknown_layer", "cycle",
            "invalid_index"} <= said  # fmt: skip
