"""The fold: every event type, cascade deletes over the DAG, staleness, totality, purity."""

from __future__ import annotations

import itertools

import pytest

from server.core.events import (
    CanvasCreated,
    CanvasRenamed,
    Event,
    EventData,
    LayerAdded,
    LayerDeleted,
    LayerFailed,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRendered,
    LayerRenderRequested,
    LayerVisibilityChanged,
)
from server.core.projection import apply, empty_state, project
from server.core.snapshot import decode_state, encode_state
from server.core.state import CanvasState

SHA_A = "a" * 64
SHA_B = "b" * 64


def stamp(*payloads: EventData, start: int = 1) -> list[Event]:
    return [
        Event("c1", seq, f"e{seq}", data, "alice", None, 1000.0 + seq)
        for seq, data in zip(itertools.count(start), payloads, strict=False)
    ]


def fold(*payloads: EventData) -> CanvasState:
    return project(empty_state("c1"), stamp(*payloads))


def added(layer_id: str, *parents: str, operation: str = "edit") -> LayerAdded:
    return LayerAdded(layer_id, operation, {"prompt": layer_id}, 7, parents, f"Layer {layer_id}")


def rendered(layer_id: str, revision: int = 1, sha: str = SHA_A) -> LayerRendered:
    return LayerRendered(layer_id, revision, sha, 64, 64, {"device": "cpu"}, 12.5)


CREATED = CanvasCreated("My canvas")


def test_canvas_created_and_renamed():
    state = fold(CREATED)
    assert state.created and state.name == "My canvas" and state.version == 1
    assert fold(CREATED, CanvasRenamed("Renamed")).name == "Renamed"


def test_layer_added_goes_on_top_with_its_parents():
    state = fold(CREATED, added("a", operation="generate"), added("b", "a"))
    assert state.order == ("a", "b")
    b = state.layers["b"]
    assert b.parents == ("a",) and b.operation == "edit" and b.seed == 7 and b.name == "Layer b"
    assert b.status == "pending" and b.revision == 1 and b.visible and b.opacity == 1.0
    assert b.created_seq == 3


def test_visibility_opacity_rename_move():
    state = fold(
        CREATED,
        added("a"),
        added("b"),
        added("c"),
        LayerVisibilityChanged("a", False),
        LayerOpacityChanged("b", 0.25),
        LayerRenamed("c", "Sky"),
        LayerMoved("c", 0),
    )
    assert not state.layers["a"].visible
    assert state.layers["b"].opacity == 0.25
    assert state.layers["c"].name == "Sky"
    assert state.order == ("c", "a", "b")
    assert fold(CREATED, added("a"), added("b"), LayerMoved("a", 1)).order == ("b", "a")


def test_rendered_and_failed_record_the_outcome_of_the_current_revision():
    state = fold(CREATED, added("a"), rendered("a"))
    layer = state.layers["a"]
    assert layer.status == "rendered" and layer.output is not None
    assert (layer.output.sha256, layer.output.width, layer.output.duration_ms) == (SHA_A, 64, 12.5)
    failed = fold(CREATED, added("a"), LayerFailed("a", 1, "out of memory"))
    assert failed.layers["a"].status == "failed" and failed.layers["a"].error == "out of memory"


def test_a_render_of_an_outdated_revision_changes_nothing():
    state = fold(CREATED, added("a"), LayerParamsChanged("a", {"prompt": "new"}, 7, ()), rendered("a", revision=1))
    assert state.layers["a"].status == "pending" and state.layers["a"].output is None
    assert state.version == 4


def test_changing_params_makes_the_layer_and_its_descendants_stale():
    state = fold(
        CREATED,
        added("a"),
        added("b", "a"),
        added("c", "b"),
        added("other"),
        rendered("a"),
        rendered("b"),
        rendered("c"),
        rendered("other"),
        LayerParamsChanged("b", {"prompt": "new"}, 9, ("a",)),
    )
    assert {lid: state.layers[lid].status for lid in state.order} == {
        "a": "rendered",
        "b": "stale",
        "c": "stale",
        "other": "rendered",
    }
    assert state.layers["b"].params == {"prompt": "new"} and state.layers["b"].seed == 9
    assert (state.layers["b"].revision, state.layers["c"].revision, state.layers["a"].revision) == (2, 2, 1)
    # A stale layer keeps its previous output on show until it is rendered again.
    assert state.layers["c"].output is not None
    again = apply(state, stamp(rendered("c", revision=2, sha=SHA_B), start=state.version + 1)[0])
    assert again.layers["c"].status == "rendered" and again.layers["c"].output.sha256 == SHA_B


def test_a_render_request_gives_a_failed_layer_and_its_descendants_a_new_revision():
    state = fold(CREATED, added("a"), added("b", "a"), LayerFailed("a", 1, "cancelled"), LayerRenderRequested("a"))
    assert (state.layers["a"].status, state.layers["a"].revision, state.layers["a"].error) == ("pending", 2, None)
    assert state.layers["b"].revision == 2


def test_topological_order_puts_every_layer_after_what_it_reads():
    state = fold(CREATED, added("a"), added("b"), added("c", "a"), LayerParamsChanged("a", {}, 1, ("b",)))
    order = [layer.id for layer in state.topological_order()]
    assert order.index("b") < order.index("a") < order.index("c")


def diamond() -> CanvasState:
    #       d        d reads b and c, which both read a;
    #      / \       e reads d; f stands alone.
    #     b   c
    #      \ /
    #       a
    return fold(
        CREATED, added("a"), added("b", "a"), added("c", "a"), added("d", "b", "c"), added("e", "d"), added("f")
    )


def test_deleting_the_root_of_a_diamond_deletes_everything_derived_from_it():
    state = diamond()
    after = apply(state, stamp(LayerDeleted("a"), start=state.version + 1)[0])
    assert after.order == ("f",)
    assert set(after.layers) == {"f"}
    assert after.deleted == {"a", "b", "c", "d", "e"}


def test_deleting_one_side_of_a_diamond_takes_the_join_but_not_the_other_side():
    state = diamond()
    after = apply(state, stamp(LayerDeleted("b"), start=state.version + 1)[0])
    assert after.order == ("a", "c", "f")
    assert after.deleted == {"b", "d", "e"}


def test_deleting_a_leaf_deletes_only_it():
    state = diamond()
    after = apply(state, stamp(LayerDeleted("e"), start=state.version + 1)[0])
    assert after.order == ("a", "b", "c", "d", "f")


def test_descendants_and_ancestors():
    state = diamond()
    assert state.descendants("a") == ["b", "c", "d", "e"]
    assert state.descendants("c") == ["d", "e"]
    assert state.ancestors("e") == {"a", "b", "c", "d"}
    assert state.children("a") == ["b", "c"]


@pytest.mark.parametrize(
    "event",
    [
        LayerDeleted("ghost"),
        LayerVisibilityChanged("ghost", False),
        LayerOpacityChanged("ghost", 0.5),
        LayerRenamed("ghost", "x"),
        LayerMoved("ghost", 0),
        LayerParamsChanged("ghost", {}, None, ()),
        rendered("ghost"),
        LayerFailed("ghost", 1, "boom"),
        LayerRenderRequested("ghost"),
        added("a"),  # already there
    ],
    ids=lambda event: event.type,
)
def test_the_fold_is_total_events_that_do_not_fit_change_only_the_version(event):
    state = fold(CREATED, added("a"))
    after = apply(state, stamp(event, start=state.version + 1)[0])
    assert after.version == state.version + 1
    assert after.layers == state.layers and after.order == state.order


def test_apply_never_changes_the_state_it_is_given():
    state = diamond()
    before = encode_state(state)
    apply(state, stamp(LayerDeleted("a"), start=state.version + 1)[0])
    apply(state, stamp(LayerParamsChanged("b", {"prompt": "x"}, 1, ("a",)), start=state.version + 1)[0])
    assert encode_state(state) == before
    with pytest.raises(TypeError):
        state.layers["z"] = state.layers["a"]  # type: ignore[index]


def test_project_equals_applying_one_event_at_a_time():
    events = stamp(
        CREATED,
        added("a"),
        added("b", "a"),
        rendered("a"),
        LayerParamsChanged("a", {"prompt": "n"}, 3, ()),
        LayerMoved("b", 0),
        LayerOpacityChanged("a", 0.5),
        LayerDeleted("b"),
        added("c"),
        LayerVisibilityChanged("c", False),
    )
    one_by_one = empty_state("c1")
    for event in events:
        one_by_one = apply(one_by_one, event)
    assert one_by_one == project(empty_state("c1"), events)


def test_snapshot_round_trip_is_exact():
    state = apply(diamond(), stamp(rendered("a"), start=7)[0])
    state = apply(state, stamp(LayerDeleted("e"), start=8)[0])
    assert decode_state(encode_state(state)) == state


def test_old_payload_versions_are_upcast_on_read(monkeypatch):
    from server.core import events

    # Pretend layer.renamed was once stored as {"layer": ..., "title": ...} at schema version 0.
    monkeypatch.setitem(
        events.UPCASTERS, ("layer.renamed", 0), lambda old: {"layer_id": old["layer"], "name": old["title"]}
    )
    data = events.decode_payload("layer.renamed", 0, b'{"layer": "a", "title": "Sky"}')
    assert data == LayerRenamed("a", "Sky")
    with pytest.raises(events.UnknownEventType, match="no upcaster"):
        events.decode_payload("layer.opacity_changed", 0, b"{}")
    with pytest.raises(events.UnknownEventType, match="unknown event type"):
        events.decode_payload("layer.teleported", 1, b"{}")
