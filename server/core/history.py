"""Undo and redo: the events that invert a run of a user's events.

Nothing is ever removed from the log: undo appends the compensating events of the user's last edit, redo
appends the compensating events of their last undo. An inversion is refused when what it would change is no
longer as the run left it — someone changed it since, or built a layer on it — so an undo never destroys
another user's work.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.core.decide import CommandRejected
from server.core.events import (
    CanvasRenamed,
    Event,
    EventData,
    LayerAdded,
    LayerDeleted,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRestored,
    LayerVisibilityChanged,
)
from server.core.projection import apply
from server.core.state import CanvasState


def invert(before: CanvasState, run: Sequence[Event], current: CanvasState) -> list[EventData]:
    """Events that take `current` back to how `run`'s layers were in `before` (the state just before `run`)."""
    states = [before]
    for event in run:
        states.append(apply(states[-1], event))
    inverse: list[EventData] = []
    for index in reversed(range(len(run))):
        prior, after = states[index], states[index + 1]
        _check_unchanged_since(run[index].data, after, current)
        inverse.extend(_invert_one(run[index].data, prior, current))
    return inverse


_PROPERTIES = {
    LayerVisibilityChanged: ("visible", "visibility"),
    LayerOpacityChanged: ("opacity", "opacity"),
    LayerRenamed: ("name", "name"),
}


def _check_unchanged_since(data: EventData, after: CanvasState, current: CanvasState) -> None:
    """Refuse to overwrite a value someone set after the run: undo reverts your change, not theirs."""
    if type(data) in _PROPERTIES:
        attribute, word = _PROPERTIES[type(data)]
        layer_id = data.layer_id  # type: ignore[attr-defined]
        mine, now = after.layers.get(layer_id), current.layers.get(layer_id)
        if mine is not None and now is not None and getattr(mine, attribute) != getattr(now, attribute):
            raise CommandRejected(
                "history_conflict", f"cannot undo: the {word} of layer {layer_id!r} was changed since"
            )
    elif isinstance(data, LayerParamsChanged):
        mine, now = after.layers.get(data.layer_id), current.layers.get(data.layer_id)
        if mine is not None and now is not None and (mine.params, mine.seed) != (now.params, now.seed):
            raise CommandRejected(
                "history_conflict", f"cannot undo: the params of layer {data.layer_id!r} were changed since"
            )
    elif isinstance(data, CanvasRenamed) and after.name != current.name:
        raise CommandRejected("history_conflict", "cannot undo: the canvas was renamed since")


def _invert_one(data: EventData, prior: CanvasState, current: CanvasState) -> list[EventData]:
    match data:
        case LayerAdded(layer_id=layer_id):
            if layer_id not in current.layers:
                return []
            built_on = current.descendants(layer_id)
            if built_on:
                raise CommandRejected(
                    "history_conflict", f"cannot undo: layer {built_on[0]!r} is built on layer {layer_id!r}"
                )
            return [LayerDeleted(layer_id)]
        case LayerDeleted(layer_id=layer_id):
            if layer_id not in prior.layers:
                return []
            removed = [layer_id, *prior.descendants(layer_id)]
            return [_restore(prior, [lid for lid in prior.order if lid in removed], current)]
        case LayerRestored(layers=layers):
            ids = {raw["id"] for raw in layers}
            roots = [raw["id"] for raw in layers if not (set(raw["parents"]) & ids) and raw["id"] in current.layers]
            for root in roots:
                built_on = [layer_id for layer_id in current.descendants(root) if layer_id not in ids]
                if built_on:
                    raise CommandRejected(
                        "history_conflict", f"cannot undo: layer {built_on[0]!r} is built on layer {root!r}"
                    )
            return [LayerDeleted(root) for root in roots]
        case LayerParamsChanged(layer_id=layer_id):
            old = prior.layers.get(layer_id)
            if old is None or layer_id not in current.layers:
                return []
            missing = [parent for parent in old.parents if parent not in current.layers]
            if missing:
                raise CommandRejected("history_conflict", f"cannot undo: layer {missing[0]!r} is gone")
            return [LayerParamsChanged(layer_id, dict(old.params), old.seed, old.parents)]
        case LayerVisibilityChanged(layer_id=layer_id) if layer_id in prior.layers and layer_id in current.layers:
            return [LayerVisibilityChanged(layer_id, prior.layers[layer_id].visible)]
        case LayerOpacityChanged(layer_id=layer_id) if layer_id in prior.layers and layer_id in current.layers:
            return [LayerOpacityChanged(layer_id, prior.layers[layer_id].opacity)]
        case LayerRenamed(layer_id=layer_id) if layer_id in prior.layers and layer_id in current.layers:
            return [LayerRenamed(layer_id, prior.layers[layer_id].name)]
        case LayerMoved(layer_id=layer_id) if layer_id in prior.layers and layer_id in current.layers:
            return [LayerMoved(layer_id, prior.order.index(layer_id))]
        case CanvasRenamed():
            return [CanvasRenamed(prior.name)]
    return []


def _restore(prior: CanvasState, layer_ids: list[str], current: CanvasState) -> LayerRestored:
    for layer_id in layer_ids:
        for parent in prior.layers[layer_id].parents:
            if parent not in current.layers and parent not in layer_ids:
                raise CommandRejected("history_conflict", f"cannot undo: layer {parent!r} it was made from is gone")
    return LayerRestored(
        layers=tuple(prior.layers[layer_id].to_json() for layer_id in layer_ids),
        positions=tuple(prior.order.index(layer_id) for layer_id in layer_ids),
    )
