"""Export: a canvas's log up to a version as a workflow document, with the images that cannot be regenerated
(uploads, painted masks) and, unless asked not to, the rendered ones, plus the models the renders used."""

from __future__ import annotations

import base64
import time
from typing import Any

import server
from engine.operation import OperationRegistry, blob_refs
from server.blobstore import BlobStore
from server.core.events import Event, LayerAdded, LayerParamsChanged, LayerRendered
from server.workflow.format import FORMAT, FORMAT_VERSION


def export_workflow(
    name: str,
    canvas_id: str,
    events: list[Event],
    blobs: BlobStore,
    operations: OperationRegistry,
    include_renders: bool = True,
) -> dict[str, Any]:
    wanted: list[str] = []
    models: dict[tuple[str, str], dict[str, str]] = {}
    for event in events:
        data = event.data
        if isinstance(data, LayerAdded | LayerParamsChanged):
            operation = operations.get(data.operation if isinstance(data, LayerAdded) else _operation_of(events, data))
            if operation is not None:
                wanted.extend(blob_refs(operation, data.params).values())
        elif isinstance(data, LayerRendered):
            if include_renders:
                wanted.extend([data.output, *data.extra_outputs])
            if "model" in data.fingerprint:
                model = {"name": str(data.fingerprint["model"]), "hash": str(data.fingerprint.get("model_hash", ""))}
                models[(model["name"], model["hash"])] = model
    embedded = {}
    for sha in dict.fromkeys(wanted):
        if blobs.exists(sha):
            embedded[sha] = base64.b64encode(blobs.get(sha)).decode()
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "generator": f"opendream {server.__version__}",
        "exported_at": time.time(),
        "canvas": {"id": canvas_id, "name": name, "version": events[-1].seq if events else 0},
        "models": list(models.values()),
        "events": [_event_json(event) for event in events],
        "blobs": embedded,
    }


def _operation_of(events: list[Event], changed: LayerParamsChanged) -> str:
    for event in events:
        if isinstance(event.data, LayerAdded) and event.data.layer_id == changed.layer_id:
            return event.data.operation
    return ""


def _event_json(event: Event) -> dict[str, Any]:
    data = event.to_json()
    del data["canvas_id"], data["event_id"]
    return data
