"""The one typed operation API every operation uses, built-in or third-party.

An operation is a plain class: a name, human-facing metadata, a pydantic model of its parameters (which gives
the JSON Schema the browser renders forms from), and `run(ctx, inputs, params)`. Parameters that name other
layers are declared with `LayerInput` / `MaskInput`; those layers become the new layer's parents in the DAG and
their images are handed to `run` as `inputs`, keyed by the parameter's path. A reference may sit at the top
level ("source") or inside nested models and lists of them ("layers.0.layer"). Parameters that name an uploaded
image are declared with `BlobInput` (a sha256); `run` reads them through `ctx.read_blob` / `ctx.read_image`.

This module must stay cheap to import: no torch, no diffusers (the server validates commands with it).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from engine.limits import RenderLimits, Size, WorkEstimate, largest

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.context import RunContext

InputKind = Literal["image", "mask"]

# JSON Schema extension keys the client reads to pick a widget.
INPUT_KEY = "x-opendream-input"
WIDGET_KEY = "x-opendream-widget"
BLOB_KEY = "x-opendream-blob"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def LayerInput(description: str = "", kind: InputKind = "image", default: Any = ...) -> Any:
    """A parameter holding the id of another layer whose image the operation reads (optional with default=None)."""
    return Field(default, description=description, min_length=1, max_length=128, json_schema_extra={INPUT_KEY: kind})


def MaskInput(description: str = "", default: Any = ...) -> Any:
    return LayerInput(description, kind="mask", default=default)


def BlobInput(description: str = "", default: Any = ...) -> Any:
    """A parameter holding the sha256 of an uploaded image blob (optional with default=None).

    Blobs are not layers: they add no DAG parent. The value is content-addressed, so the params (and with them
    the render's cache key) change whenever the uploaded bytes do.
    """
    return Field(
        default,
        description=description,
        pattern=SHA256_PATTERN,
        json_schema_extra={BLOB_KEY: True, WIDGET_KEY: "upload"},
    )


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
    # The kind of diffusion pipeline run() asks for (engine.models.families): a model whose family or files lack
    # it cannot run the operation, which the server then lists as unavailable with the reason.
    pipeline_kind: ClassVar[str | None] = None
    # Bump when the same params and inputs start giving other pixels: operations without the diffusion model
    # are cached under a fingerprint made of this, Pillow's and numpy's versions and `fingerprint_extra()`.
    version: ClassVar[int] = 1
    # The input whose place on the document the result takes when it is added (an img2img over its source, a
    # crop inside it, a mask on its layer); None: the result starts where `placed_at` says, else at the origin.
    placed_on: ClassVar[str | None] = None

    @classmethod
    def offset_in_input(cls, params: Mapping[str, Any]) -> tuple[float, float]:
        """Where the result's top-left corner lies in the `placed_on` input's picture, in its pixels (`params`
        validated, in canonical form)."""
        return (0.0, 0.0)

    @classmethod
    def result_size(cls, params: Mapping[str, Any]) -> tuple[int, int] | None:
        """The result's size when the params say it (a crop's region), else None."""
        return None

    @classmethod
    def placed_at(cls, params: Mapping[str, Any]) -> tuple[float, float] | None:
        """Where on the document the result's top-left corner goes when the params say it (an outpaint's
        frame), for an operation with no `placed_on` input; None: at the origin. `params` as in
        `offset_in_input`."""
        return None

    def run(self, ctx: RunContext, inputs: Mapping[str, Image], params: Any) -> Image | list[Image]:
        raise NotImplementedError(f"operation {self.name!r} does not implement run()")

    # --- hooks an operation may override ----------------------------------------------------------------

    @classmethod
    def fingerprint_extra(cls) -> dict[str, Any]:
        """For operations without the diffusion model: whatever else decides the pixels (e.g. a checkpoint)."""
        return {}

    @classmethod
    def estimate(
        cls, params: Any, input_sizes: Mapping[str, Size | None], limits: RenderLimits | None = None
    ) -> WorkEstimate | None:
        """The cost of one render with these (typed) params and inputs (path -> size, None when not yet
        known), or None while it cannot be told. The default suits editing operations: the largest image among
        the inputs and a `width` x `height` the params make. Diffusion operations override it."""
        sizes = dict(input_sizes)
        width, height = getattr(params, "width", None), getattr(params, "height", None)
        if isinstance(width, int) and isinstance(height, int):
            sizes["output"] = (width, height)
        if any(size is None for size in input_sizes.values()):
            return None
        size = largest(sizes)
        return WorkEstimate(0) if size is None else WorkEstimate(size[0] * size[1], size=size)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this operation cannot run in this process (e.g. no checkpoint configured), or None."""
        return None

    # --- derived from the class attributes above ---------------------------------------------------------

    @classmethod
    def input_fields(cls) -> dict[str, InputKind]:
        """Parameter name -> kind, for every top-level parameter that references a layer.

        Nested references (inside sub-models and lists) are not here: see `input_paths()` for the declared
        shape and `input_refs(operation, params)` for the references one set of params makes.
        """
        found: dict[str, InputKind] = {}
        for field_name, info in cls.Params.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and INPUT_KEY in extra:
                found[field_name] = extra[INPUT_KEY]  # type: ignore[assignment]
        return found

    @classmethod
    def input_paths(cls) -> dict[str, InputKind]:
        """Path template -> kind for every layer reference, nested ones included ("layers.*.layer")."""
        return _declared(cls.Params, INPUT_KEY, "", set())

    @classmethod
    def blob_paths(cls) -> list[str]:
        """Path templates of every blob parameter ("blob", "items.*.image")."""
        return list(_declared(cls.Params, BLOB_KEY, "", set()))

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
            "pipeline_kind": cls.pipeline_kind,
            "inputs": cls.input_fields(),
            "input_paths": cls.input_paths(),
            "blobs": cls.blob_paths(),
            "params_schema": cls.Params.model_json_schema(),
        }


@dataclass(frozen=True, slots=True)
class ValidatedParams:
    """Parameters checked by an operation's model, in canonical JSON form, with the layers they read."""

    params: dict[str, Any]
    inputs: dict[str, str]  # parameter path ("source", "layers.0.layer") -> layer id
    blobs: dict[str, str] = field(default_factory=dict)  # parameter path -> sha256
    model: Params | None = None  # the validated model itself, so that nothing validates the params twice


class InvalidParams(ValueError):
    """Parameters an operation rejects; `field` names the offending parameter (dotted path) when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def validate_params(operation: type[Operation], params: Mapping[str, Any]) -> ValidatedParams:
    model = _parse(operation, params)
    return ValidatedParams(
        params=model.model_dump(mode="json"),
        inputs=dict(_references(model, INPUT_KEY, "")),
        blobs=dict(_references(model, BLOB_KEY, "")),
        model=model,
    )


def input_refs(operation: type[Operation], params: Mapping[str, Any] | Params) -> dict[str, str]:
    """Path -> layer id for every non-null layer reference in `params`, in declaration order.

    Top-level references keep their plain name ("source"); nested ones are dotted paths through sub-models and
    list indices ("layers.0.layer"). Raises InvalidParams when `params` do not validate.
    """
    return dict(_references(_parse(operation, params), INPUT_KEY, ""))


def blob_refs(operation: type[Operation], params: Mapping[str, Any] | Params) -> dict[str, str]:
    """Path -> sha256 for every non-null blob parameter in `params` (paths as in `input_refs`)."""
    return dict(_references(_parse(operation, params), BLOB_KEY, ""))


def _parse(operation: type[Operation], params: Mapping[str, Any] | Params) -> Params:
    if isinstance(params, operation.Params):
        return params
    try:
        return operation.Params.model_validate(dict(params))  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field_path = ".".join(str(part) for part in first["loc"]) or None
        where = f"{field_path}: " if field_path else ""
        raise InvalidParams(f"invalid params for {operation.name!r}: {where}{first['msg']}", field_path) from None


def _marker(info: Any, key: str) -> Any:
    extra = info.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def _references(model: BaseModel, key: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(path, value) for every field marked with `key`, walking sub-models, lists and tuples."""
    for name, marked in _reference_plan(type(model), key):
        value = getattr(model, name)
        if marked:
            if value is not None:
                yield f"{prefix}{name}", value
        else:
            yield from _nested_references(value, key, f"{prefix}{name}")


@functools.cache
def _reference_plan(model: type[BaseModel], key: str) -> tuple[tuple[str, bool], ...]:
    """(field, marked) for the fields of `model` that are marked with `key` or can hold a sub-model that has
    such fields. Worked out once per class: every command validates params, and walking every field of every
    set of params (prompts, sizes, strengths) was most of the cost of validating them."""
    plan: list[tuple[str, bool]] = []
    for name, info in model.model_fields.items():
        if _marker(info, key) is not None:
            plan.append((name, True))
        elif any(_declared(nested, key, "", {model}) for _, nested in _nested_models(info.annotation)):
            plan.append((name, False))
    return tuple(plan)


def _nested_references(value: Any, key: str, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        yield from _references(value, key, f"{path}.")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _nested_references(item, key, f"{path}.{index}")


def _declared(model: type[BaseModel], key: str, prefix: str, seen: set[type[BaseModel]]) -> dict[str, Any]:
    """Path template -> marker value for every field marked with `key`, "*" standing for a list index."""
    found: dict[str, Any] = {}
    seen = seen | {model}  # a self-referencing model would otherwise recurse forever
    for name, info in model.model_fields.items():
        marker = _marker(info, key)
        if marker is not None:
            found[f"{prefix}{name}"] = marker
            continue
        for suffix, nested in _nested_models(info.annotation):
            if nested not in seen:
                found.update(_declared(nested, key, f"{prefix}{name}{suffix}.", seen))
    return found


def _nested_models(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The pydantic models an annotation can hold, each with the path suffix that reaches it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
        return
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        yield from _nested_models(args[0])
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _nested_models(arg)
    elif isinstance(origin, type) and issubclass(origin, Sequence) and not issubclass(origin, str | bytes):
        for arg in args:
            if arg is not Ellipsis:
                for suffix, nested in _nested_models(arg):
                    yield f".*{suffix}", nested


class OperationRegistry:
    """Operations by name. The server validates commands against it; the engine runs from it."""

    def __init__(self) -> None:
        self._operations: dict[str, type[Operation]] = {}
        self._unavailable: dict[str, str] = {}
        self._registered: dict[str, type[Operation]] = {}  # as registered, before `set_defaults`

    def register(self, operation: type[Operation]) -> type[Operation]:
        if operation.name in self._operations:
            raise ValueError(f"operation {operation.name!r} is already registered")
        self._operations[operation.name] = operation
        return operation

    def set_defaults(
        self,
        name: str,
        defaults: Mapping[str, Any],
        descriptions: Mapping[str, str] | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> type[Operation]:
        """Serve operation `name` with other parameter defaults (the model family's native size, say): the schema
        the client renders, a command that omits them and the renderer then agree, as they all read the one
        class this returns. Always relative to the operation as registered: setting them again replaces them."""
        registered = self._registered.setdefault(name, self._operations[name])
        changed = with_defaults(registered, defaults, descriptions or {}, annotations or {})
        self._operations[name] = changed
        return changed

    def registered(self, name: str) -> type[Operation] | None:
        """The operation as registered, whatever `set_defaults` changed."""
        return self._registered.get(name, self._operations.get(name))

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


def with_defaults(
    operation: type[Operation],
    defaults: Mapping[str, Any],
    descriptions: Mapping[str, str],
    annotations: Mapping[str, Any] | None = None,
) -> type[Operation]:
    """`operation` with its parameters' defaults (and descriptions) changed, every constraint kept, and the
    types in `annotations` narrowed (the library's model names as a Literal, say); the operation itself when
    nothing changes. A subclass, so its name, version and `run` are the same."""
    annotations = annotations or {}
    fields = operation.Params.model_fields
    unknown = (set(defaults) | set(descriptions) | set(annotations)) - set(fields)
    if unknown:
        raise KeyError(f"{operation.name} has no parameter {', '.join(sorted(unknown))}")
    changed: dict[str, Any] = {}
    for name in set(defaults) | set(descriptions) | set(annotations):
        overrides: dict[str, Any] = {}
        if name in defaults and defaults[name] != fields[name].default:
            overrides["default"] = defaults[name]
        if name in descriptions:
            overrides["description"] = descriptions[name]
        if overrides or name in annotations:
            annotation = annotations.get(name, fields[name].annotation)
            changed[name] = (annotation, FieldInfo.merge_field_infos(fields[name], **overrides))
    if not changed:
        return operation
    params = create_model(  # type: ignore[call-overload]
        operation.Params.__name__, __base__=operation.Params, __module__=operation.Params.__module__, **changed
    )
    namespace = {"Params": params, "__module__": operation.__module__, "__qualname__": operation.__qualname__}
    return type(operation.__name__, (operation,), namespace)


OperationFactory = Callable[[], type[Operation]]
