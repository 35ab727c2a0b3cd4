"""Reading a workflow file: JSON, a PNG carrying one, or a file saved by the original Opendream (converted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.config import WorkflowLimits
from server.workflow.format import FORMAT, InvalidWorkflow
from server.workflow.opendream import convert_opendream_2023, looks_like_opendream_2023
from server.workflow.png import extract_from_png


def load_document(raw: bytes | Mapping[str, Any], limits: WorkflowLimits) -> dict[str, Any]:
    """Bytes of a JSON workflow or of a PNG carrying one, parsed; the original Opendream's files converted."""
    if isinstance(raw, Mapping):
        document: Any = dict(raw)
    else:
        if len(raw) > limits.max_bytes:
            raise InvalidWorkflow(f"the file is {len(raw)} bytes; the limit is {limits.max_bytes}")
        if raw.startswith(b"\x89PNG\r\n\x1a\n"):
            return extract_from_png(raw, limits)
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidWorkflow(f"not JSON (is the file truncated?): {exc}") from None
    if not isinstance(document, dict):
        raise InvalidWorkflow("a workflow is a JSON object")
    if "format" not in document:
        if looks_like_opendream_2023(document):
            return convert_opendream_2023(document, limits)
        raise InvalidWorkflow(f'no "format": expected "{FORMAT}" (or a workflow saved by the original Opendream)')
    return document
