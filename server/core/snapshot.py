"""Snapshots: a projected state encoded with orjson, so a long log need not be folded from the start."""

from __future__ import annotations

from dataclasses import astuple
from types import MappingProxyType
from typing import Any

import orjson

from server.core.pmap import PMap
from server.core.pseq import PSeq
from server.core.state import IDENTITY, CanvasState, HistoryEntry, Layer, Placement, RenderOutput, UserHistory

SNAPSHOT_SCHEMA_VERSION = 4


def encode_state(state: CanvasState, rows: LayerRows | None = None) -> bytes:
    """The state as snapshot bytes. `rows` (kept by the caller from one snapshot of a canvas to its next) reuses
    the encoded row of every layer that has not changed since: the same bytes, without encoding them again."""
    layers: list[Any] = (
        [_layer_json(state.layers[layer_id]) for layer_id in state.order] if rows is None else rows.encode(state)
    )
    return orjson.dumps(
        {
            "canvas_id": state.canvas_id,
            "version": state.version,
            "name": state.name,
            "created": state.created,
            "layers": layers,
            "deleted": sorted(state.deleted),
            "history": {
                user: [[_entry(e) for e in h.undo], [_entry(e) for e in h.redo]] for user, h in state.history.items()
            },
            "compensating_until": state.compensating_until,
            "origin": state.origin,
            "checkpoints": [[version, label] for version, label in sorted(state.checkpoints.items())],
            "document": [state.width, state.height, state.background],
        }
    )


class LayerRows:
    """Encoded snapshot rows of the layers of the canvases last snapshotted, each kept with the layer it encodes.
    Layers are immutable and a fold replaces only those an event touches, so a layer that is the same object as
    at the last snapshot has the same row: a 5,000-layer canvas re-encodes the few dozen layers that changed in
    500 events, not all 5,000. Bounded: the canvases most recently snapshotted, at most `canvases` of them and
    `layers` rows in all (what they hold is kept alive here), the latest canvas always."""

    def __init__(self, canvases: int = 64, layers: int = 20_000) -> None:
        self._canvases, self._layers = canvases, layers
        self._rows: dict[str, dict[str, tuple[Layer, orjson.Fragment]]] = {}
        self._count = 0

    def encode(self, state: CanvasState) -> list[orjson.Fragment]:
        before = self._rows.pop(state.canvas_id, {})
        self._count -= len(before)
        now: dict[str, tuple[Layer, orjson.Fragment]] = {}
        layers = state.layers
        for layer_id in state.order:
            layer = layers[layer_id]
            kept = before.get(layer_id)
            now[layer_id] = kept if kept is not None and kept[0] is layer else (layer, _layer_row(layer))
        self._rows[state.canvas_id] = now  # the most recent last: the oldest goes first
        self._count += len(now)
        while len(self._rows) > 1 and (len(self._rows) > self._canvases or self._count > self._layers):
            self._count -= len(self._rows.pop(next(iter(self._rows))))
        return [row for _, row in now.values()]


def _layer_row(layer: Layer) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(_layer_json(layer)))


def _entry(entry: HistoryEntry) -> list[Any]:
    # a gesture only when there is one: snapshots written before gestures read back the same
    head = [entry.command_id, entry.first_seq, entry.last_seq]
    return head if entry.gesture is None else [*head, entry.gesture]


def _layer_json(layer: Layer) -> list[Any]:
    # A positional row keeps snapshots small and quick to read back.
    output = layer.output
    return [
        layer.id,
        layer.name,
        layer.operation,
        layer.params,
        layer.seed,
        layer.parents,
        layer.visible,
        layer.opacity,
        layer.revision,
        layer.status,
        None
        if output is None
        else [
            output.sha256,
            output.width,
            output.height,
            output.fingerprint,
            output.duration_ms,
            output.cache_key,
            output.cached,
            output.extra,
        ],
        layer.error,
        layer.created_seq,
        layer.updated_seq,
        *([] if layer.placement.is_identity else [list(astuple(layer.placement))]),
    ]


def _output(row: list[Any]) -> RenderOutput:
    sha256, width, height, fingerprint, duration_ms, cache_key, cached, extra = row
    return RenderOutput(sha256, width, height, fingerprint, duration_ms, cache_key, cached, tuple(extra))


def decode_state(raw: bytes) -> CanvasState:
    data = orjson.loads(raw)
    layers: dict[str, Layer] = {}
    order: list[str] = []
    for row in data["layers"]:
        # identity is left out of the row: most layers never move, and snapshots are read on every past version
        placement = IDENTITY if len(row) == 14 else Placement(*row.pop())
        (layer_id, name, operation, params, seed, parents, visible, opacity, revision, status, output, error,
         created_seq, updated_seq) = row  # fmt: skip
        layers[layer_id] = Layer(
            id=layer_id,
            name=name,
            operation=operation,
            params=params,
            seed=seed,
            parents=tuple(parents),
            visible=visible,
            opacity=opacity,
            revision=revision,
            status=status,
            output=None if output is None else _output(output),
            error=error,
            created_seq=created_seq,
            updated_seq=updated_seq,
            placement=placement,
        )
        order.append(layer_id)
    return CanvasState(
        canvas_id=data["canvas_id"],
        version=data["version"],
        name=data["name"],
        created=data["created"],
        layers=PMap(layers),
        order=PSeq(order),
        deleted=frozenset(data["deleted"]),
        history=MappingProxyType(
            {
                user: UserHistory(tuple(HistoryEntry(*e) for e in undo), tuple(HistoryEntry(*e) for e in redo))
                for user, (undo, redo) in data["history"].items()
            }
        ),
        compensating_until=data["compensating_until"],
        origin=data["origin"],
        # snapshots written before checkpoints have none
        checkpoints=MappingProxyType({version: label for version, label in data.get("checkpoints", ())}),
        **dict(zip(("width", "height", "background"), data.get("document", (0, 0, None)), strict=True)),
    )
