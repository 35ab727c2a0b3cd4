"""Which images an event names: the uploads and masks its params read, the renders it records, the layers it
restores. Images are served only to those who may read a canvas whose log names them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from engine.operation import InvalidParams, Operation, OperationRegistry, blob_refs
from server.core.events import Event, LayerAdded, LayerParamsChanged, LayerRendered, LayerRestored
from server.core.state import Layer


class LayerOperations(MutableMapping[str, str]):
    """Layer id -> operation over a state's layers, without copying them (a command touches one or two)."""

    def __init__(self, layers: Mapping[str, Layer]) -> None:
        self._layers = layers
        self._added: dict[str, str] = {}

    def __getitem__(self, layer_id: str) -> str:
        if layer_id in self._added:
            return self._added[layer_id]
        return self._layers[layer_id].operation

    def __setitem__(self, layer_id: str, operation: str) -> None:
        self._added[layer_id] = operation

    def __delitem__(self, layer_id: str) -> None:
        self._added.pop(layer_id, None)

    def __iter__(self) -> Iterator[str]:
        return iter({*self._layers, *self._added})

    def __len__(self) -> int:
        return len({*self._layers, *self._added})


def blob_names(
    events: Iterable[Event], operations: OperationRegistry, operation_of: MutableMapping[str, str]
) -> Iterator[str]:
    """The images `events` name. `operation_of` (layer id -> operation) is read and kept up to date, so that a
    params change is read with its layer's operation."""
    for event in events:
        data = event.data
        if isinstance(data, LayerAdded):
            operation_of[data.layer_id] = data.operation
            yield from _params_blobs(operations, data.operation, data.params)
        elif isinstance(data, LayerParamsChanged):
            yield from _params_blobs(operations, operation_of.get(data.layer_id), data.params)
        elif isinstance(data, LayerRendered):
            yield data.output
            yield from data.extra_outputs
        elif isinstance(data, LayerRestored):
            for layer in data.layers:
                operation_of[str(layer.get("id"))] = str(layer.get("operation"))
                yield from _params_blobs(operations, layer.get("operation"), layer.get("params") or {})
                output = layer.get("output") or {}
                if output.get("sha256"):
                    yield output["sha256"]
                yield from output.get("extra", ())


# Operation class -> whether its params declare any image (blob) parameter. Most do not (txt2img, filters),
# and for those there is nothing to find: no need to parse the params a second time after the decider did.
_HAS_BLOBS: dict[type[Operation], bool] = {}


def _params_blobs(operations: OperationRegistry, name: Any, params: Any) -> Iterator[str]:
    operation = operations.get(name) if isinstance(name, str) else None
    if operation is None or not isinstance(params, dict):
        return
    has_blobs = _HAS_BLOBS.get(operation)
    if has_blobs is None:
        has_blobs = _HAS_BLOBS[operation] = bool(operation.blob_paths())
    if not has_blobs:
        return
    try:
        yield from blob_refs(operation, params).values()
    except InvalidParams:
        return
