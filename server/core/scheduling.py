"""Which layers can be rendered now: a pure function of the state."""

from __future__ import annotations

from server.core.state import CanvasState, Layer

NEEDS_RENDER = ("pending", "stale")


def ready_layers(state: CanvasState) -> list[Layer]:
    """Layers that need rendering and whose inputs are all rendered, oldest first (dependency order)."""
    ready = [
        layer
        for layer in state.layers.values()
        if layer.status in NEEDS_RENDER and all(state.layers[parent].status == "rendered" for parent in layer.parents)
    ]
    ready.sort(key=lambda layer: layer.created_seq)
    return ready


def waiting_layers(state: CanvasState) -> list[Layer]:
    """Layers that need rendering, in the order they will be rendered as their inputs become ready."""
    pending = [layer for layer in state.layers.values() if layer.status in NEEDS_RENDER]
    pending.sort(key=lambda layer: (len(state.ancestors(layer.id)), layer.created_seq))
    return pending
