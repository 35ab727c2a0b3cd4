"""The workflow file format (docs/workflow-format.md): its constants, the validated `Workflow`, and parsing a
document into one. Every event of a file is decided by the same rules as a client's command
(server/core/decide.py: admit_log); a bad file is refused whole with a message naming what is wrong."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.operation import OperationRegistry, blob_refs
from server.config import WorkflowLimits
from server.core.decide import Admission, Decider, RefusedEvent, admit_log
from server.core.events import (
    EVENT_TYPES,
    CanvasCreated,
    Event,
    LayerAdded,
    LayerParamsChanged,
    LayerRendered,
    UnknownEventType,
    decode_payload,
)
from server.core.payload_types import PayloadTypeError, check_payload_types
from server.image_checks import InvalidImage, inspect_image

GESTURE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # as the command envelope's gesture
FORMAT = "opendream.workflow"
FORMAT_VERSION = 2  # 2: document frame, placements, gestures, checkpoints (a version 1 file reads unchanged)
PNG_KEY = "opendream-workflow"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidWorkflow(ValueError):
    """A workflow file that cannot be imported; `where` points into the file (e.g. "events[12].payload")."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True)
class Workflow:
    """A validated workflow: its events as recorded and its embedded blobs (sha256 -> bytes). `warnings`: what
    a conversion could not bring in as it was (an original Opendream layer imported only as its picture)."""

    name: str
    events: list[Event]
    blobs: dict[str, bytes]
    source: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def parse_workflow(
    document: Mapping[str, Any],
    operations: OperationRegistry,
    limits: WorkflowLimits,
    blob_on_server: Callable[[str], bool] = lambda sha: False,
) -> Workflow:
    if document.get("format") != FORMAT:
        raise InvalidWorkflow(f"format is {document.get('format')!r}, not {FORMAT!r}", "format")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidWorkflow(f"version must be a positive integer, not {version!r}", "version")
    if version > FORMAT_VERSION:
        raise InvalidWorkflow(
            f"format version {version} is newer than this server reads (up to {FORMAT_VERSION}); upgrade Opendream",
            "version",
        )
    blobs = _parse_blobs(document.get("blobs", {}), limits)
    raw_events = document.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise InvalidWorkflow("events must be a non-empty list", "events")
    if len(raw_events) > limits.max_events:
        raise InvalidWorkflow(f"{len(raw_events)} events; the limit is {limits.max_events}", "events")
    events = [_parse_event(index, raw) for index, raw in enumerate(raw_events)]
    if not isinstance(events[0].data, CanvasCreated):
        raise InvalidWorkflow("the first event must be canvas.created", "events[0].type")
    try:  # the decider's rules, event by event: an import holds nothing a client's commands could not make
        admit_log(events, Admission(Decider(operations), lambda sha: sha in blobs or blob_on_server(sha)))
    except RefusedEvent as refused:
        exc = refused.rejection
        where = f"events[{refused.index}]" + (f".payload.{exc.field}" if exc.field else "")
        raise InvalidWorkflow(f"{refused.data.type} refused ({exc.code}): {exc.message}", where) from None
    canvas = document.get("canvas") if isinstance(document.get("canvas"), dict) else {}
    created = events[0].data
    assert isinstance(created, CanvasCreated)
    name = canvas.get("name") if isinstance(canvas.get("name"), str) else created.name
    source = {"canvas_id": canvas.get("id"), "version": events[-1].seq, "generator": document.get("generator")}
    raw_warnings = document.get("warnings")
    warnings = [str(w)[:1000] for w in raw_warnings[:1000]] if isinstance(raw_warnings, list) else []
    return Workflow(name=name[:200] or "Imported canvas", events=events, blobs=blobs, source=source,
                    warnings=warnings)  # fmt: skip


def _parse_blobs(raw: Any, limits: WorkflowLimits) -> dict[str, bytes]:
    if not isinstance(raw, dict):
        raise InvalidWorkflow("blobs must be an object of sha256 -> base64 data", "blobs")
    if len(raw) > limits.max_blobs:
        raise InvalidWorkflow(f"{len(raw)} blobs; the limit is {limits.max_blobs}", "blobs")
    blobs: dict[str, bytes] = {}
    for sha, encoded in raw.items():
        where = f"blobs[{sha[:16]}…]" if isinstance(sha, str) else "blobs"
        if not isinstance(sha, str) or not SHA256.match(sha):
            raise InvalidWorkflow("a blob's name must be its sha256 (64 lowercase hex digits)", where)
        if not isinstance(encoded, str):
            raise InvalidWorkflow("a blob's data must be a base64 string", where)
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidWorkflow("not valid base64", where) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise InvalidWorkflow(f"the data's sha256 is {actual}, not its name: the file is damaged", where)
        try:
            inspect_image(data, limits.images)
        except InvalidImage as exc:
            raise InvalidWorkflow(f"not an acceptable image: {exc}", where) from None
        blobs[sha] = data
    return blobs


def _parse_event(index: int, raw: Any) -> Event:
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise InvalidWorkflow("an event is an object", where)
    if raw.get("seq") != index + 1:
        raise InvalidWorkflow(f"seq is {raw.get('seq')!r}, expected {index + 1}: the log must be gapless", where)
    event_type = raw.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidWorkflow(f"unknown event type {event_type!r}", f"{where}.type")
    schema_version = raw.get("schema_version", 1)
    if not isinstance(schema_version, int) or schema_version > EVENT_TYPES[event_type].schema_version:
        raise InvalidWorkflow(f"schema version {schema_version!r} of {event_type} is not one this server reads", where)
    payload = raw.get("payload")
    if not isinstance(payload, dict):
        raise InvalidWorkflow("payload must be an object", f"{where}.payload")
    try:
        data = decode_payload(event_type, schema_version, dict(payload))
        check_payload_types(data)
    except (TypeError, UnknownEventType) as exc:
        raise InvalidWorkflow(f"payload does not fit {event_type}: {exc}", f"{where}.payload") from None
    except PayloadTypeError as exc:
        raise InvalidWorkflow(f"payload of {event_type}: {exc}", f"{where}.payload.{exc.field}") from None
    actor = raw.get("actor", "import")
    command_id = raw.get("command_id")
    timestamp = raw.get("timestamp", 0.0)
    if not isinstance(actor, str) or len(actor) > 128:
        raise InvalidWorkflow("actor must be a string of at most 128 characters", f"{where}.actor")
    if command_id is not None and (not isinstance(command_id, str) or len(command_id) > 128):
        raise InvalidWorkflow("command_id must be a string of at most 128 characters", f"{where}.command_id")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        raise InvalidWorkflow("timestamp must be a number", f"{where}.timestamp")
    gesture = raw.get("gesture")
    if gesture is not None and not (isinstance(gesture, str) and GESTURE.match(gesture)):
        raise InvalidWorkflow("gesture must be 1 to 64 letters, digits or _.:-", f"{where}.gesture")
    return Event("import", index + 1, "", data, actor, command_id, float(timestamp), schema_version, gesture)


def referenced_blobs(workflow: Workflow, operations: OperationRegistry) -> set[str]:
    """Every image the log names: blob params of its layers and the outputs of its renders."""
    names: set[str] = set()
    operation_of: dict[str, str] = {}
    for event in workflow.events:
        data = event.data
        if isinstance(data, LayerAdded):
            operation_of[data.layer_id] = data.operation
        if isinstance(data, LayerAdded | LayerParamsChanged):
            operation = operations.get(operation_of.get(data.layer_id, ""))
            if operation is not None:
                names.update(blob_refs(operation, data.params).values())
        elif isinstance(data, LayerRendered):
            names.update((data.output, *data.extra_outputs))
    return names
