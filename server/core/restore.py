"""Restore: the events that take the current state to a past one, so the past comes back without anything
leaving the log (and the restore itself can be undone like any edit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.core.events import (
    CanvasRenamed,
    CanvasResized,
    CanvasRestored,
    EventData,
    LayerDeleted,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRestored,
    LayerTransformed,
    LayerVisibilityChanged,
)
from server.core.rejection import CommandRejected
from server.core.state import CanvasState

if TYPE_CHECKING:
    from server.core.history import PastReader


def decide_restore(current: CanvasState, version: int, past: PastReader) -> list[EventData]:
    """The events of a `restore` command: a marker naming the version (so the history can say "restored
    version 12" as one step), then those that take `current` to the state at `version`."""
    if version > current.version:
        raise CommandRejected("bad_version", f"version {version} is out of range 1..{current.version}", "version")
    events = events_to_reach(current, past.state_at(version))
    return [CanvasRestored(version, len(events)), *events] if events else []


def events_to_reach(current: CanvasState, target: CanvasState) -> list[EventData]:
    """Events that, applied to `current`, give `target`'s layers, stack, properties and name.

    Order matters: bring back what is missing (parents before children), point the layers both have at their
    old params (so nothing the target keeps depends on what goes), delete what the target lacks, then set
    properties and the stack order.
    """
    events: list[EventData] = []
    missing = [layer for layer in target.topological_order() if layer.id not in current.layers]
    if missing:
        events.append(
            LayerRestored(
                layers=tuple(layer.to_json() for layer in missing),
                positions=tuple(target.order.index(layer.id) for layer in missing),
            )
        )
    for layer in target.topological_order():
        now = current.layers.get(layer.id)
        if now is not None and (dict(now.params), now.seed, now.parents) != (
            dict(layer.params),
            layer.seed,
            layer.parents,
        ):
            events.append(LayerParamsChanged(layer.id, dict(layer.params), layer.seed, layer.parents))
    gone = {layer_id for layer_id in current.layers if layer_id not in target.layers}
    # Deleting a layer deletes its descendants: delete only the topmost of what goes.
    roots = [
        layer_id
        for layer_id in current.order
        if layer_id in gone and not (set(current.layers[layer_id].parents) & gone)
    ]
    events.extend(LayerDeleted(layer_id) for layer_id in roots)
    for layer_id in target.order:  # stack order, not the layer table's: the same events however it was built
        layer = target.layers[layer_id]
        now = current.layers.get(layer.id)
        if now is None:
            continue
        if now.visible != layer.visible:
            events.append(LayerVisibilityChanged(layer.id, layer.visible))
        if now.opacity != layer.opacity:
            events.append(LayerOpacityChanged(layer.id, layer.opacity))
        if now.name != layer.name:
            events.append(LayerRenamed(layer.id, layer.name))
        if now.placement != layer.placement:
            events.append(LayerTransformed.of(layer.id, layer.placement))
    # The stack as the fold will leave it after the restore and the deletes, then moved into the target's order.
    order = list(current.order)
    for layer in missing:
        order.insert(min(target.order.index(layer.id), len(order)), layer.id)
    order = [layer_id for layer_id in order if layer_id not in gone]
    for index, layer_id in enumerate(target.order):
        if order[index] != layer_id:
            order.remove(layer_id)
            order.insert(index, layer_id)
            events.append(LayerMoved(layer_id, index))
    if current.name != target.name:
        events.append(CanvasRenamed(target.name))
    if (current.width, current.height, current.background) != (target.width, target.height, target.background):
        events.append(CanvasResized(target.width, target.height, target.background))
    return events
