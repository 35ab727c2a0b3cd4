"""Strict types for event payloads that come from outside (an imported workflow file).

The fold trusts its events' types — a number where a layer id belongs, a string where a `created_seq`
belongs, would make sorting and scheduling raise far from the cause. Events the decider made have the right
types by construction; imported ones are checked here, field by field, before anything is stored.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from server.core.events import EVENT_TYPES, EventData, LayerRestored


class _Output(BaseModel):
    sha256: str
    width: int
    height: int
    fingerprint: dict[str, Any]
    duration_ms: float
    cache_key: str = ""
    cached: bool = False
    extra: list[str] = []


class _RestoredLayer(BaseModel):
    """Layer.to_json(), as layer.restored carries it."""

    id: str
    name: str
    operation: str
    params: dict[str, Any]
    seed: int | None
    parents: list[str]
    visible: bool
    opacity: float
    revision: int
    status: Literal["pending", "rendered", "stale", "failed"]
    output: _Output | None
    error: str | None
    created_seq: int
    updated_seq: int


_ADAPTERS: dict[type[EventData], TypeAdapter[Any]] = {cls: TypeAdapter(cls) for cls in EVENT_TYPES.values()}
_RESTORED = TypeAdapter(list[_RestoredLayer])


class PayloadTypeError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_payload_types(data: EventData) -> None:
    """Raise PayloadTypeError naming the first field whose value is not of its declared type."""
    raw = orjson.dumps(data)  # dataclasses serialise as their fields; tuples as arrays, like the file had them
    try:
        _ADAPTERS[type(data)].validate_json(raw, strict=True)
        if isinstance(data, LayerRestored):
            _RESTORED.validate_json(orjson.dumps(list(data.layers)), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first["loc"]]
        if isinstance(data, LayerRestored) and not (location and location[0] in ("layers", "positions")):
            location = ["layers", *location]
        field = ".".join(location)
        raise PayloadTypeError(f"{field}: {first['msg'].lower()} (got {_shown(first.get('input'))})", field) from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
