"""The fold shares structure between versions (#20) and stays pure: a state from before an event is unchanged,
field by field and byte by byte, after folding it; only what an event touches is copied. Also the append path's
store changes: multi-row inserts over several statements, one kept writer connection shared by threads."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest

from server.core.events import (
    CanvasCreated,
    CanvasRenamed,
    Event,
    EventData,
    HistoryUndone,
    LayerAdded,
    LayerDeleted,
    LayerFailed,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRendered,
    LayerRenderRequested,
    LayerRestored,
    LayerVisibilityChanged,
)
from server.core.pmap import PMap, PMapBuilder
from server.core.projection import apply, empty_state, project
from server.core.snapshot import LayerRows, decode_state, encode_state
from server.core.state import CanvasState
from server.store.base import AppendRequest
from server.store.sql import SQLEventStore, sqlite_url

SHA = "a" * 64


def stamped(seq: int, data: EventData, actor: str = "alice") -> Event:
    return Event("c1", seq, f"e{seq}", data, actor, f"cmd{seq}", 1000.0 + seq)


def canvas(layers: int) -> CanvasState:
    """A canvas of `layers` layers: a chain a0 <- a1 <- a2 (img2img-like) then independent ones."""
    events = [stamped(1, CanvasCreated("c"))]
    for index in range(layers):
        parents = (f"l{index - 1}",) if 0 < index < 3 else ()
        events.append(stamped(index + 2, LayerAdded(f"l{index}", "edit", {"n": index}, 7, parents, f"L{index}")))
    return project(empty_state("c1"), events)


def every_event(state: CanvasState) -> list[EventData]:
    restored = state.layers["l5"].to_json()
    return [
        CanvasRenamed("renamed"),
        LayerAdded("new", "edit", {"n": -1}, 1, ("l4",), "new"),
        LayerParamsChanged("l0", {"n": 99}, 3, ()),
        LayerRenderRequested("l1"),
        LayerRendered("l7", 1, SHA, 64, 64, {"device": "cpu"}, 1.0),
        LayerFailed("l8", 1, "boom"),
        LayerDeleted("l0"),  # cascades to l1 and l2
        LayerDeleted("l5"),
        LayerVisibilityChanged("l9", False),
        LayerOpacityChanged("l10", 0.25),
        LayerRenamed("l11", "eleven"),
        LayerMoved("l12", 0),
        HistoryUndone(2, 2, 0),
        LayerRestored(layers=(restored,), positions=(3,)),  # a layer that is live: changes nothing
    ]


@pytest.mark.parametrize("index", range(14))
def test_a_state_from_before_an_event_is_unchanged_after_folding_it(index: int):
    before = canvas(40)
    data = every_event(before)[index]
    encoded = encode_state(before)
    layers = dict(before.layers.items())
    order, history, deleted = before.order, dict(before.history), before.deleted

    after = apply(before, stamped(before.version + 1, data))
    also = project(before, [stamped(before.version + 1, data), stamped(before.version + 2, CanvasRenamed("x"))])

    assert after.version == before.version + 1 and also.version == before.version + 2
    assert encode_state(before) == encoded  # byte for byte, every field
    assert dict(before.layers.items()) == layers
    assert all(before.layers[key] is layer for key, layer in layers.items())
    assert before.order is order and dict(before.history) == history and before.deleted is deleted
    assert decode_state(encode_state(after)) == after


def test_folding_one_event_copies_only_what_it_touches():
    before = canvas(2000)
    after = apply(before, stamped(before.version + 1, LayerOpacityChanged("l1500", 0.5), actor="engine"))
    assert after.layers["l1500"].opacity == 0.5 and before.layers["l1500"].opacity == 1.0
    assert after.order is before.order  # the stack did not change: the same tuple
    assert after.history is before.history  # the engine's events are not undoable: nothing recorded
    old_leaves = {id(leaf) for leaf in before.layers._root if leaf}  # type: ignore[attr-defined]
    new_leaves = [leaf for leaf in after.layers._root if leaf and id(leaf) not in old_leaves]  # type: ignore[attr-defined]
    assert len(new_leaves) == 1 and "l1500" in new_leaves[0]  # one small leaf copied, the rest shared
    assert len(new_leaves[0]) < 2000 / 16
    unchanged = [key for key in before.layers if key != "l1500"]
    assert all(after.layers[key] is before.layers[key] for key in unchanged)


def test_an_event_that_changes_nothing_shares_everything():
    before = canvas(100)
    after = apply(before, stamped(before.version + 1, LayerOpacityChanged("gone", 0.5), actor="engine"))
    assert after.layers is before.layers and after.order is before.order and after.version == before.version + 1


def test_project_equals_applying_one_at_a_time_on_a_random_log():
    rng = random.Random(3)
    state = canvas(30)
    events: list[Event] = []
    live = list(state.order)
    for seq in range(state.version + 1, state.version + 400):
        roll = rng.random()
        if roll < 0.2 or not live:
            layer_id = f"n{seq}"
            data: EventData = LayerAdded(layer_id, "edit", {}, 1, (rng.choice(live),) if live else (), layer_id)
            live.append(layer_id)
        elif roll < 0.3:
            data = LayerDeleted(rng.choice(live))
        elif roll < 0.5:
            data = LayerMoved(rng.choice(live), rng.randrange(len(live)))
        elif roll < 0.7:
            data = LayerParamsChanged(rng.choice(live), {"v": seq}, 2, ())
        else:
            data = LayerOpacityChanged(rng.choice(live), rng.random())
        events.append(stamped(seq, data, actor=rng.choice(["alice", "bob"])))
    one_by_one = [state]
    for item in events:
        one_by_one.append(apply(one_by_one[-1], item))
    encoded = [encode_state(version) for version in one_by_one]
    assert project(state, events) == one_by_one[-1]
    assert encode_state(project(state, events)) == encoded[-1]
    # Every intermediate version is still exactly what it was when it was made.
    assert [encode_state(version) for version in one_by_one] == encoded


def test_snapshots_reusing_the_rows_of_unchanged_layers_are_the_same_bytes():
    """The writer keeps each layer's encoded row from one snapshot to the next (LayerRows): every version of a
    canvas, and other canvases' states between them, encode byte for byte as from scratch."""
    rows = LayerRows(canvases=2)
    state = canvas(40)
    other = project(empty_state("c2"), [Event("c2", 1, "x1", CanvasCreated("other"), "bob", "k1", 1.0)])
    assert encode_state(state, rows) == encode_state(state)
    kept = dict(rows._rows["c1"])
    seq = state.version
    for data in every_event(state):
        seq += 1
        state = apply(state, stamped(seq, data))
        assert encode_state(state, rows) == encode_state(state), data.type
        assert encode_state(other, rows) == encode_state(other)
    reused = [layer_id for layer_id, row in rows._rows["c1"].items() if kept.get(layer_id) is row]
    assert len(reused) > 20 and "l10" not in reused  # untouched layers' rows are the same objects; l10 changed
    third = replace(state, canvas_id="c3")  # a third canvas pushes the oldest out: bounded, still the same bytes
    assert encode_state(third, rows) == encode_state(third) and encode_state(state, rows) == encode_state(state)
    assert len(rows._rows) == 2
    few = LayerRows(canvases=10, layers=60)  # bounded in rows too, the latest canvas always kept
    for canvas_id in ("a", "b", "c"):
        renamed = replace(state, canvas_id=canvas_id)
        assert encode_state(renamed, few) == encode_state(renamed)
    assert list(few._rows) == ["c"] and few._count == len(state.order)


def test_a_state_built_by_hand_with_a_plain_mapping_still_folds():
    from types import MappingProxyType

    base = canvas(5)
    by_hand = CanvasState(
        canvas_id=base.canvas_id, version=base.version, name=base.name, created=True,
        layers=MappingProxyType(dict(base.layers.items())), order=base.order,
    )  # fmt: skip
    after = apply(by_hand, stamped(base.version + 1, LayerRenamed("l2", "two")))
    assert after.layers["l2"].name == "two" and by_hand.layers["l2"].name == "L2"


def test_pmap_behaves_like_a_dict_and_never_changes_an_old_version():
    rng = random.Random(11)
    reference: dict[str, int] = {}
    current: PMap[int] = PMap()
    versions: list[tuple[PMap[int], dict[str, int]]] = []
    for step in range(3000):
        builder = PMapBuilder(current)
        for _ in range(rng.randrange(1, 4)):
            key = f"k{rng.randrange(400)}"
            if key in reference and rng.random() < 0.3:
                del reference[key]
                del builder[key]
            else:
                reference[key] = step
                builder[key] = step
            assert len(builder) == len(reference)
        current = builder.freeze()
        if step % 50 == 0:
            versions.append((current, dict(reference)))
    assert current == reference and reference == current
    assert sorted(current) == sorted(reference) and len(current) == len(reference)
    assert all(current.get(key) == value and key in current for key, value in reference.items())
    assert "missing" not in current and current.get("missing", -1) == -1
    with pytest.raises(KeyError):
        current["missing"]
    for version, expected in versions:
        assert dict(version.items()) == expected
    assert PMap(reference) == current and PMap(current) == current


def test_a_batch_larger_than_one_statement_is_inserted_whole(tmp_path):
    store = SQLEventStore(sqlite_url(tmp_path / "big.db"))
    store.migrate()
    count = 5000  # 9 values a row: more than one multi-row statement's worth
    events = [Event("big", 1, "big-1", CanvasCreated("Big"), "alice", None, 1.0)]
    events += [
        Event("big", seq, f"big-{seq}", LayerAdded(f"l{seq}", "edit", {}, 1, (), "x"), "alice", None, 1.0)
        for seq in range(2, count + 1)
    ]
    store.append([AppendRequest("big", 0, events)])
    assert store.head("big") == count
    assert [event.seq for event in store.read("big")] == list(range(1, count + 1))
    store.close()


def test_write_transactions_from_several_threads_share_the_writer_safely(tmp_path):
    store = SQLEventStore(sqlite_url(tmp_path / "threads.db"))
    store.migrate()
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            store.append([AppendRequest(name, 0, [Event(name, 1, f"{name}-1", CanvasCreated(name), "a", None, 1.0)])])
            for seq in range(2, 60):
                data = LayerAdded(f"l{seq}", "edit", {}, 1, (), "x")
                store.append([AppendRequest(name, seq - 1, [Event(name, seq, f"{name}-{seq}", data, "a", None, 1.0)])])
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all(store.head(f"t{index}") == 59 for index in range(4))
    store.close()
