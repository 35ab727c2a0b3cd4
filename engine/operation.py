"""The one typed operation API every operation uses, built-in or third-party.

An operation is a plain class: a name, human-facing metadata, a pydantic model of its parameters (which gives
the JSON Schema the browser renders forms from), and `run(ctx, inputs, params)`. Parameters that name other
layers are declared with `LayerInput` / `MaskInput`; those layers become the new layer's parents in the DAG and
their images are handed to `run` as `inputs`.

This module must stay cheap to import: no torch, no diffusers (the server validates commands with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

InputKind = Literal["image", "mask"]

# JSON Schema extension keys the client reads to pick a widget.
INPUT_KEY = "x-opendream-input"
WIDGET_KEY = "x-opendream-widget"


def LayerInput(description: str = "", kind: InputKind = "image", default: Any = ...) -> Any:
    """A parameter holding the id of another layer whose image the operation reads (optional with default=None)."""
    return Field(default, description=description, min_length=1, max_length=128, json_schema_extra={INPUT_KEY: kind})


def MaskInput(description: str = "", default: Any = ...) -> Any:
    return LayerInput(description, kind="mask", default=default)


def Prompt(description: str = "", default: str = "", max_length: int = 2000) -> Any:
    return Field(default, description=description, max_length=max_length, json_schema_extra={WIDGET_KEY: "textarea"})


LayerId = Annotated[str, Field(min_length=1, max_length=128)]


class Params(BaseModel):
    """Base for every operation's parameters: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Operation:
    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    category: ClassVar[str] = "general"
    Params: ClassVar[type[Params]]
    # Generating operations draw noise: they take a seed and need the diffusion model.
    uses_seed: ClassVar[bool] = False
    needs_model: ClassVar[bool] = False
    # True when run() may return several images (each becomes its own layer).
    multiple_outputs: ClassVar[bool] = False

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: Any) -> Image | list[Image]:
        raise NotImplementedError(f"operation {self.name!r} does not implement run()")

    # --- derived from the class attributes above ---------------------------------------------------------

    @classmethod
    def input_fields(cls) -> dict[str, InputKind]:
        """Parameter name -> kind, for every parameter that references a layer."""
        found: dict[str, InputKind] = {}
        for field_name, info in cls.Params.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and INPUT_KEY in extra:
                found[field_name] = extra[INPUT_KEY]  # type: ignore[assignment]
        return found

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title,
            "description": cls.description,
            "category": cls.category,
            "uses_seed": cls.uses_seed,
            "needs_model": cls.needs_model,
            "multiple_outputs": cls.multiple_outputs,
            "inputs": cls.input_fields(),
            "params_schema": cls.Params.model_json_schema(),
        }


@dataclass(frozen=True, slots=True)
class ValidatedParams:
    """Parameters checked by an operation's model, in canonical JSON form, with the layers they read."""

    params: dict[str, Any]
    inputs: dict[str, str]  # parameter name -> layer id


class InvalidParams(ValueError):
    """Parameters an operation rejects; `field` names the offending parameter (dotted path) when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def validate_params(operation: type[Operation], params: Mapping[str, Any]) -> ValidatedParams:
    try:
        model = operation.Params.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        where = f"{field}: " if field else ""
        raise InvalidParams(f"invalid params for {operation.name!r}: {where}{first['msg']}", field) from None
    canonical = model.model_dump(mode="json")
    inputs = {name: canonical[name] for name in operation.input_fields() if canonical.get(name) is not None}
    return ValidatedParams(params=canonical, inputs=inputs)


class OperationRegistry:
    """Operations by name. The server validates commands against it; the engine runs from it."""

    def __init__(self) -> None:
        self._operations: dict[str, type[Operation]] = {}
        self._unavailable: dict[str, str] = {}

    def register(self, operation: type[Operation]) -> type[Operation]:
        if operation.name in self._operations:
            raise ValueError(f"operation {operation.name!r} is already registered")
        self._operations[operation.name] = operation
        return operation

    def mark_unavailable(self, name: str, reason: str) -> None:
        self._unavailable[name] = reason

    def get(self, name: str) -> type[Operation] | None:
        return self._operations.get(name)

    def names(self) -> list[str]:
        return sorted(self._operations)

    def unavailable(self) -> dict[str, str]:
        return dict(self._unavailable)

    def __contains__(self, name: object) -> bool:
        return name in self._operations


OperationFactory = Callable[[], type[Operation]]
