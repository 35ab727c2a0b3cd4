"""Operation defaults that follow the model: a generating operation's size starts at the family's native side
(512 SD 1.x/2.x, 768 SD 2.x-v, 1024 SDXL: `ModelFamily.native_size`), and its default steps are lowered where
that size at those steps is over the server's work limit — a default must never be refused by the server's own
limits (SDXL at 1024x1024 x 25 steps is 26 M pixel-steps; a CPU server takes 15.7 M).

Computed once at start and installed in the registry (`OperationRegistry.set_defaults`), so the schema the
client renders, the params a command that omits them is decided with, and the renderer read one class.
Pure: no torch; each operation's own `estimate` says what a default costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.limits import RenderLimits, Size
from engine.operation import Operation, OperationRegistry

if TYPE_CHECKING:
    from engine.models.library import ModelLibrary

SIDE_STEP = 64  # a side shrunk to fit max_pixels stays a multiple of the latent grid


@dataclass(frozen=True)
class FamilyDefaults:
    """What one operation's defaults become: parameter -> value, and the descriptions that say why."""

    defaults: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)  # narrowed types (engine.operation.with_defaults)


def family_defaults(operation: type[Operation], native_side: int, limits: RenderLimits | None) -> FamilyDefaults:
    """The defaults of a generating operation (`uses_seed`) for a model of `native_side` under `limits`."""
    if not operation.uses_seed:
        return FamilyDefaults()
    fields = operation.Params.model_fields
    defaults: dict[str, Any] = {}
    side = native_side
    if limits is not None:
        while side > SIDE_STEP and side * side > limits.max_pixels:
            side -= SIDE_STEP
    if all(name in fields and isinstance(fields[name].default, int) for name in ("width", "height")):
        defaults.update(width=side, height=side)
    steps_field = fields.get("steps")
    if limits is None or steps_field is None or not isinstance(steps_field.default, int):
        return FamilyDefaults(defaults)
    default_steps: int = steps_field.default
    # Inputs at the native size: what a source of the model's working size costs.
    sizes: dict[str, Size | None] = {path: (side, side) for path in operation.input_paths()}
    for steps in range(default_steps, 0, -1):
        try:
            typed = operation.Params.model_construct(**{**defaults, "steps": steps})
            estimate = operation.estimate(typed, sizes, limits)
        except Exception:  # an estimate that needs params the defaults do not give: leave its steps alone
            return FamilyDefaults(defaults)
        if estimate is None or limits.check(operation.name, estimate) is None:
            break
    else:
        return FamilyDefaults(defaults)  # not even one step fits: the size is the problem, and stays visible
    if steps == default_steps:
        return FamilyDefaults(defaults)
    defaults["steps"] = steps
    why = (
        f"{steps_field.description or 'Denoising steps.'} The default is {steps} on this server, not "
        f"{default_steps}: {side}x{side} at {default_steps} steps is over its limit of "
        f"{limits.max_work / 1e6:.1f} M pixel-steps per render (--max-work)."
    )
    return FamilyDefaults(defaults, {"steps": why})


def _one_of(names: list[str], labels: dict[str, str] | None = None) -> Any:
    """A string that must be one of `names`, shown as an enum even when there is only one (pydantic would
    write a single Literal as a constant, which a form cannot offer as a choice), with labels for the form."""
    from typing import Annotated, Literal

    from pydantic import WithJsonSchema

    schema: dict[str, Any] = {"type": "string", "enum": names}
    if labels:
        schema[LABELS_KEY] = labels
    return Annotated[Literal[tuple(names)], WithJsonSchema(schema)]


LABELS_KEY = "x-opendream-labels"  # client/js/schema.js: what a choice shows


def choice_label(entry: Any) -> str:
    """What a model picker shows for a library entry: its name, family, native size and what it runs without."""
    from engine.models.families import FAMILIES

    family = FAMILIES.get(entry.family or "")
    if family is None:
        return entry.name
    facts = f"{family.title}, {family.native_size} px" if entry.kind == "checkpoint" else family.title
    if entry.note:  # its first words, the picker's size ("runs without T5-XXL"); the whole note is in /api/models
        facts += f"; {entry.note.split(' (')[0].split(':')[0]}"
    return f"{entry.name} ({facts})"


def library_choices(operation: type[Operation], library: ModelLibrary) -> FamilyDefaults:
    """The `model` and `loras` params of a generating operation narrowed to what the library holds: the usable
    checkpoints that can run the operation's kind, the usable LoRAs (the client shows them as pickers; a
    command naming anything else is refused when decided). Descriptions say what there is and how to add more."""
    from pydantic import Field, create_model

    from engine.ops.common import LoraRef

    fields = operation.Params.model_fields
    if "model" not in fields:
        return FamilyDefaults()
    kind = getattr(operation, "pipeline_kind", None)
    entries = [e for e in library.checkpoints_for() if kind is None or e.capabilities.get(kind, None) is None]
    models = [entry.name for entry in entries]
    labels = {entry.name: choice_label(entry) for entry in entries}
    annotations: dict[str, Any] = {"model": _one_of(models, labels) | None} if models else {}
    descriptions = {"model": f"{fields['model'].description} {len(models)} in the library: GET /api/models."}
    if "loras" in fields:
        loras = [entry.name for entry in library.entries("lora") if entry.usable]
        if loras:
            choice = create_model(
                "LoraRef",
                __base__=LoraRef,
                __module__=LoraRef.__module__,
                name=(_one_of(loras), Field(description="A LoRA of the library.")),
            )
            annotations["loras"] = list[choice]  # type: ignore[valid-type]
        else:
            descriptions["loras"] = "No LoRAs in the library: put .safetensors LoRAs in the models folder's loras/."
    if "controlnet" in fields and fields["controlnet"].annotation is str:  # the generic controlnet operation
        nets = [entry for entry in library.entries("controlnet") if entry.usable]
        if nets:
            annotations["controlnet"] = _one_of([e.name for e in nets], {e.name: choice_label(e) for e in nets})
        else:
            descriptions["controlnet"] = (
                "No ControlNets in the library: put diffusers ControlNet folders (or single files) in the models "
                "folder's controlnet/."
            )
    return FamilyDefaults(descriptions=descriptions, annotations=annotations)


def apply_family_defaults(
    registry: OperationRegistry, native_side: int, limits: RenderLimits | None, library: ModelLibrary | None = None
) -> dict[str, dict[str, Any]]:
    """Install every operation's family defaults (and, with a library, its model and LoRA choices) in
    `registry`; returns name -> the defaults that changed."""
    changed: dict[str, dict[str, Any]] = {}
    for name in registry.names():
        operation = registry.registered(name)
        assert operation is not None
        found = family_defaults(operation, native_side, limits)
        if library is not None:
            choices = library_choices(operation, library)
            found = FamilyDefaults(found.defaults, {**found.descriptions, **choices.descriptions}, choices.annotations)
        registry.set_defaults(name, found.defaults, found.descriptions, found.annotations)
        fields = operation.Params.model_fields
        differing = {key: value for key, value in found.defaults.items() if fields[key].default != value}
        if differing:
            changed[name] = differing
    return changed
