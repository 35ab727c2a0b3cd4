"""The projected canvas: a DAG of layers plus stack order. Immutable; built only by the fold."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import field
from types import MappingProxyType
from typing import Any, Literal

from server.core.pmap import PMap
from server.core.pseq import EMPTY as EMPTY_ORDER
from server.core.values import value

RenderStatus = Literal["pending", "rendered", "stale", "failed"]
"""pending: never rendered at this revision; stale: shows an older output, needs rendering again."""


@value
class RenderOutput:
    sha256: str
    width: int
    height: int
    fingerprint: Mapping[str, Any]
    duration_ms: float
    cache_key: str = ""
    cached: bool = False
    extra: tuple[str, ...] = ()  # further images, when the operation made several (layer_output layers show them)

    @property
    def images(self) -> tuple[str, ...]:
        return (self.sha256, *self.extra)


@value
class Placement:
    """Where a layer's image sits on the document: its top-left corner at (x, y) in document pixels, scaled
    about that corner, then rotated (degrees, clockwise) and flipped about the image's centre."""

    x: float = 0.0
    y: float = 0.0
    scale: float = 1.0
    rotation: float = 0.0
    flip_x: bool = False
    flip_y: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "scale": self.scale, "rotation": self.rotation, "flip_x": self.flip_x,
                "flip_y": self.flip_y}  # fmt: skip

    @property
    def is_identity(self) -> bool:
        return self == IDENTITY

    def to_document(self, width: int, height: int, u: float, v: float) -> tuple[float, float]:
        """The document point of the placed width x height picture's point (u, v) (engine/document.py's inverse)."""
        qx = self.scale * (-1 if self.flip_x else 1) * (u - width / 2)
        qy = self.scale * (-1 if self.flip_y else 1) * (v - height / 2)
        angle = math.radians(self.rotation)
        cx, cy = self.x + self.scale * width / 2, self.y + self.scale * height / 2
        return cx + math.cos(angle) * qx - math.sin(angle) * qy, cy + math.sin(angle) * qx + math.cos(angle) * qy


IDENTITY = Placement()


def placement_from_json(data: Mapping[str, Any] | None) -> Placement:
    if not data:
        return IDENTITY
    return Placement(float(data.get("x", 0.0)), float(data.get("y", 0.0)), float(data.get("scale", 1.0)),
                     float(data.get("rotation", 0.0)), bool(data.get("flip_x")), bool(data.get("flip_y")))  # fmt: skip


@value
class Layer:
    id: str
    name: str
    operation: str
    params: Mapping[str, Any]
    seed: int | None
    parents: tuple[str, ...]
    visible: bool = True
    opacity: float = 1.0
    # Bumped whenever this layer's inputs change (its own params or any ancestor's): a render of an older
    # revision is out of date.
    revision: int = 1
    status: RenderStatus = "pending"
    output: RenderOutput | None = None
    error: str | None = None
    created_seq: int = 0
    updated_seq: int = 0
    placement: Placement = IDENTITY

    def to_json(self) -> dict[str, Any]:
        output = self.output
        return {
            "id": self.id,
            "name": self.name,
            "operation": self.operation,
            "params": self.params,
            "seed": self.seed,
            "parents": list(self.parents),
            "visible": self.visible,
            "opacity": self.opacity,
            "revision": self.revision,
            "status": self.status,
            "output": None
            if output is None
            else {
                "sha256": output.sha256,
                "width": output.width,
                "height": output.height,
                "fingerprint": output.fingerprint,
                "duration_ms": output.duration_ms,
                "cache_key": output.cache_key,
                "cached": output.cached,
                "extra": list(output.extra),
            },
            "error": self.error,
            "created_seq": self.created_seq,
            "updated_seq": self.updated_seq,
            "placement": self.placement.to_json(),
        }


@value
class HistoryEntry:
    """A run of one user's events that one undo (or redo) inverts."""

    command_id: str | None
    first_seq: int
    last_seq: int
    gesture: str | None = None  # an entry of a gesture spans its commands (others' events may lie between)


@value
class UserHistory:
    undo: tuple[HistoryEntry, ...] = ()
    redo: tuple[HistoryEntry, ...] = ()


def layer_from_json(data: Mapping[str, Any]) -> Layer:
    output = data.get("output")
    return Layer(
        id=data["id"],
        name=data["name"],
        operation=data["operation"],
        params=data["params"],
        seed=data["seed"],
        parents=tuple(data["parents"]),
        visible=data["visible"],
        opacity=data["opacity"],
        revision=data["revision"],
        status=data["status"],
        output=None if output is None else RenderOutput(**{**output, "extra": tuple(output.get("extra", ()))}),
        error=data["error"],
        created_seq=data["created_seq"],
        updated_seq=data["updated_seq"],
        placement=placement_from_json(data.get("placement")),  # layers recorded before placements: at (0, 0)
    )


@value
class CanvasState:
    canvas_id: str
    version: int = 0  # seq of the last event folded in
    name: str = ""
    created: bool = False
    # Persistent (structurally shared between versions, see server/core/pmap.py); any Mapping is accepted.
    layers: Mapping[str, Layer] = field(default_factory=PMap)
    order: Sequence[str] = EMPTY_ORDER  # stack, bottom first (a PSeq from the fold; any sequence is accepted)
    deleted: frozenset[str] = frozenset()  # ids that once existed; never reused (only restored)
    history: Mapping[str, UserHistory] = field(default_factory=lambda: MappingProxyType({}))  # by user
    compensating_until: int = 0  # events up to this seq belong to an undo/redo, not to a user's edit
    origin: Mapping[str, Any] | None = None  # fork or import this canvas started from
    checkpoints: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))  # version -> its name
    # The document frame: 0 x 0 until set by `canvas.resized` or, failing that, by the first render's size.
    width: int = 0
    height: int = 0
    background: str | None = None  # "#rrggbb", or None for transparent

    def to_json(self) -> dict[str, Any]:
        return {
            "canvas_id": self.canvas_id,
            "version": self.version,
            "name": self.name,
            "order": list(self.order),
            "layers": [self.layers[layer_id].to_json() for layer_id in self.order],
            "history": {user: {"undo": len(h.undo), "redo": len(h.redo)} for user, h in self.history.items()},
            "origin": self.origin,
            "checkpoints": [{"version": v, "label": label} for v, label in sorted(self.checkpoints.items())],
            "document": {"width": self.width, "height": self.height, "background": self.background},
        }

    def layer(self, layer_id: str) -> Layer | None:
        return self.layers.get(layer_id)

    def children(self, layer_id: str) -> list[str]:
        """The layers that read `layer_id`, in stack order."""
        layers = self.layers
        return [child for child in self.order if layer_id in layers[child].parents]

    def descendants(self, layer_id: str) -> list[str]:
        """Every layer derived, directly or not, from `layer_id`, in stack order."""
        return descendants(self.layers, self.order, layer_id)

    def topological_order(self) -> list[Layer]:
        """Every layer after the layers it reads (oldest first among the ready), for rendering from scratch."""
        done: set[str] = set()
        ordered: list[Layer] = []
        remaining = sorted(self.layers.values(), key=lambda layer: layer.created_seq)
        while remaining:
            ready = [layer for layer in remaining if all(parent in done for parent in layer.parents)]
            if not ready:  # the decider never lets a cycle in; a hand-made log could
                raise ValueError(f"layers {[layer.id for layer in remaining]} form a cycle")
            ordered.extend(ready)
            done.update(layer.id for layer in ready)
            remaining = [layer for layer in remaining if layer.id not in done]
        return ordered

    def ancestors(self, layer_id: str) -> set[str]:
        seen: set[str] = set()
        frontier = list(self.layers[layer_id].parents) if layer_id in self.layers else []
        while frontier:
            current = frontier.pop()
            if current in seen:
                continue
            seen.add(current)
            parent = self.layers.get(current)
            if parent is not None:
                frontier.extend(parent.parents)
        return seen


def descendants(layers: Mapping[str, Layer], order: Sequence[str], root: str) -> list[str]:
    children: dict[str, list[str]] = {}
    for layer in layers.values():
        for parent in layer.parents:
            children.setdefault(parent, []).append(layer.id)
    found: set[str] = set()
    frontier = list(children.get(root, ()))
    while frontier:
        current = frontier.pop()
        if current in found:
            continue
        found.add(current)
        frontier.extend(children.get(current, ()))
    return [layer_id for layer_id in order if layer_id in found]
