"""Undo and redo: the events that invert a run of a user's events.

Nothing is ever removed from the log: undo appends the compensating events of the user's last edit, redo
appends the compensating events of their last undo. An inversion is refused when what it would change is no
longer as the run left it — someone changed it since, or built a layer on it — so an undo never destroys
another user's work.

How each undoable event is inverted is written once, in `INVERTERS` (event class -> inverter); the event's
own `undoable` fact says it has one (server/core/registry.py checks that the two agree). `decide_history` is
the decider of the `undo` and `redo` commands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from server.core.events import (
    CanvasRenamed,
    CanvasResized,
    Event,
    EventData,
    HistoryRedone,
    HistoryUndone,
    LayerAdded,
    LayerDeleted,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRestored,
    LayerTransformed,
    LayerVisibilityChanged,
    VersionNamed,
)
from server.core.projection import apply
from server.core.rejection import CommandRejected
from server.core.state import CanvasState

# (the event, the state just before it, the state just after it, the current state) -> its compensating events.
# Raises CommandRejected("history_conflict") when inverting it would overwrite or orphan someone's later work.
Inverter = Callable[[EventData, CanvasState, CanvasState, CanvasState], list[EventData]]


class PastReader(Protocol):
    """What deciding an undo, a redo or a restore reads of the log besides the current state (the service
    answers from the store and the batch it is writing)."""

    def events_between(self, after: int, until: int) -> Sequence[Event]: ...

    def state_at(self, version: int) -> CanvasState: ...


def decide_history(state: CanvasState, undoing: bool, user: str, past: PastReader) -> list[EventData]:
    """The events of `user`'s undo (or redo): a marker, then the inversion of the top entry of their stack."""
    history = state.history.get(user)
    stack = (history.undo if undoing else history.redo) if history is not None else ()
    if not stack:
        word = "undo" if undoing else "redo"
        raise CommandRejected(f"nothing_to_{word}", f"{user} has nothing to {word} on this canvas")
    entry = stack[-1]
    run = past.events_between(entry.first_seq - 1, entry.last_seq)
    gesture = entry.gesture
    if gesture is None:
        inverse = invert(past.state_at(entry.first_seq - 1), run, state)
    else:  # other people's events between the gesture's commands are theirs: they stay
        inverse = invert(past.state_at(entry.first_seq - 1), run, state,
                         lambda event: event.actor == user and event.gesture == gesture)  # fmt: skip
    marker = HistoryUndone if undoing else HistoryRedone
    return [marker(entry.first_seq, entry.last_seq, len(inverse)), *inverse]


def invert(
    before: CanvasState,
    run: Sequence[Event],
    current: CanvasState,
    inverted: Callable[[Event], bool] | None = None,
) -> list[EventData]:
    """Events that take `current` back to how `run`'s layers were in `before` (the state just before `run`);
    only the events of `run` that are `inverted`, when given (the rest are folded, not taken back).

    Each event is inverted against the state as the inversions of the later ones leave it: a gesture that
    set an opacity twenty times is taken back step by step, not refused because its own later steps changed
    the value."""
    states = [before]
    for event in run:
        states.append(apply(states[-1], event))
    inverse: list[EventData] = []
    for index in reversed(range(len(run))):
        if inverted is not None and not inverted(run[index]):
            continue
        inverter = INVERTERS.get(type(run[index].data))
        if inverter is None:
            continue
        undone = inverter(run[index].data, states[index], states[index + 1], current)
        inverse.extend(undone)
        for data in undone:
            current = apply(current, Event(current.canvas_id, current.version + 1, "", data, "engine", None, 0.0))
    return inverse


def _conflict(message: str) -> CommandRejected:
    return CommandRejected("history_conflict", f"cannot undo: {message}")


def _on_both(layer_id: str, prior: CanvasState, current: CanvasState) -> bool:
    return layer_id in prior.layers and layer_id in current.layers


def _property_unchanged(layer_id: str, attribute: str, word: str, after: CanvasState, current: CanvasState) -> None:
    """Refuse to overwrite a value someone set after the run: undo reverts your change, not theirs."""
    mine, now = after.layers.get(layer_id), current.layers.get(layer_id)
    if mine is not None and now is not None and getattr(mine, attribute) != getattr(now, attribute):
        raise _conflict(f"the {word} of layer {layer_id!r} was changed since")


def _invert_added(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerAdded)
    if data.layer_id not in current.layers:
        return []
    built_on = current.descendants(data.layer_id)
    if built_on:
        raise _conflict(f"layer {built_on[0]!r} is built on layer {data.layer_id!r}")
    return [LayerDeleted(data.layer_id)]


def _invert_deleted(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerDeleted)
    if data.layer_id not in prior.layers:
        return []
    removed = {data.layer_id, *prior.descendants(data.layer_id)}
    layer_ids = [layer_id for layer_id in prior.order if layer_id in removed]
    for layer_id in layer_ids:
        for parent in prior.layers[layer_id].parents:
            if parent not in current.layers and parent not in removed:
                raise _conflict(f"layer {parent!r} it was made from is gone")
    return [
        LayerRestored(
            layers=tuple(prior.layers[layer_id].to_json() for layer_id in layer_ids),
            positions=tuple(prior.order.index(layer_id) for layer_id in layer_ids),
        )
    ]


def _invert_restored(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerRestored)
    ids = {raw["id"] for raw in data.layers}
    roots = [raw["id"] for raw in data.layers if not (set(raw["parents"]) & ids) and raw["id"] in current.layers]
    for root in roots:
        built_on = [layer_id for layer_id in current.descendants(root) if layer_id not in ids]
        if built_on:
            raise _conflict(f"layer {built_on[0]!r} is built on layer {root!r}")
    return [LayerDeleted(root) for root in roots]


def _invert_params(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerParamsChanged)
    mine, now = after.layers.get(data.layer_id), current.layers.get(data.layer_id)
    if mine is not None and now is not None and (mine.params, mine.seed) != (now.params, now.seed):
        raise _conflict(f"the params of layer {data.layer_id!r} were changed since")
    old = prior.layers.get(data.layer_id)
    if old is None or now is None:
        return []
    missing = [parent for parent in old.parents if parent not in current.layers]
    if missing:
        raise _conflict(f"layer {missing[0]!r} is gone")
    return [LayerParamsChanged(data.layer_id, dict(old.params), old.seed, old.parents)]


def _invert_visibility(
    data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState
) -> list[EventData]:
    assert isinstance(data, LayerVisibilityChanged)
    _property_unchanged(data.layer_id, "visible", "visibility", after, current)
    if not _on_both(data.layer_id, prior, current):
        return []
    return [LayerVisibilityChanged(data.layer_id, prior.layers[data.layer_id].visible)]


def _invert_opacity(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerOpacityChanged)
    _property_unchanged(data.layer_id, "opacity", "opacity", after, current)
    if not _on_both(data.layer_id, prior, current):
        return []
    return [LayerOpacityChanged(data.layer_id, prior.layers[data.layer_id].opacity)]


def _invert_renamed(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerRenamed)
    _property_unchanged(data.layer_id, "name", "name", after, current)
    if not _on_both(data.layer_id, prior, current):
        return []
    return [LayerRenamed(data.layer_id, prior.layers[data.layer_id].name)]


def _invert_moved(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, LayerMoved)
    if not _on_both(data.layer_id, prior, current):
        return []
    return [LayerMoved(data.layer_id, prior.order.index(data.layer_id))]


def _invert_resized(data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState) -> list[EventData]:
    assert isinstance(data, CanvasResized)
    if (after.width, after.height, after.background) != (current.width, current.height, current.background):
        raise _conflict("the canvas was resized since")
    return [CanvasResized(prior.width, prior.height, prior.background)]


def _invert_transformed(
    data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState
) -> list[EventData]:
    assert isinstance(data, LayerTransformed)
    _property_unchanged(data.layer_id, "placement", "place", after, current)
    if not _on_both(data.layer_id, prior, current):
        return []
    before = prior.layers[data.layer_id].placement
    return [LayerTransformed.of(data.layer_id, before)]


def _invert_version_named(
    data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState
) -> list[EventData]:
    assert isinstance(data, VersionNamed)
    if after.checkpoints.get(data.version, "") != current.checkpoints.get(data.version, ""):
        raise _conflict(f"version {data.version} was named again since")
    return [VersionNamed(data.version, prior.checkpoints.get(data.version, ""))]


def _invert_canvas_renamed(
    data: EventData, prior: CanvasState, after: CanvasState, current: CanvasState
) -> list[EventData]:
    assert isinstance(data, CanvasRenamed)
    if after.name != current.name:
        raise _conflict("the canvas was renamed since")
    return [CanvasRenamed(prior.name)]


INVERTERS: dict[type[EventData], Inverter] = {
    CanvasRenamed: _invert_canvas_renamed,
    LayerAdded: _invert_added,
    LayerDeleted: _invert_deleted,
    LayerRestored: _invert_restored,
    LayerParamsChanged: _invert_params,
    LayerVisibilityChanged: _invert_visibility,
    LayerOpacityChanged: _invert_opacity,
    LayerRenamed: _invert_renamed,
    LayerMoved: _invert_moved,
    VersionNamed: _invert_version_named,
    CanvasResized: _invert_resized,
    LayerTransformed: _invert_transformed,
}
