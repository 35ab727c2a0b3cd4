"""The decider: checks a command against the current state and returns the events it causes.

The only place where commands become events: edits, renders, undo and redo (server/core/history.py), restore
(server/core/restore.py), forks (`decide_fork`) and imports (`admit_log`: a recorded log decided event by
event). Pure except for the two injected sources of novelty (new layer ids and random seeds) and, for undo,
redo and restore, a `PastReader` through which it reads earlier events and states; so it is easy to test and
to run again after a concurrency conflict. A refused command raises `CommandRejected` and causes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from engine.limits import RenderLimits, Size
from engine.operation import InvalidParams, Operation, OperationRegistry, ValidatedParams, validate_params
from server.core.commands import (
    AddLayer,
    ChangeParams,
    Command,
    DeleteLayer,
    MoveLayer,
    NameVersion,
    RecordFailure,
    RecordRender,
    Redo,
    RenameCanvas,
    RenameLayer,
    ResizeCanvas,
    Restore,
    RetryRender,
    SetOpacity,
    SetVisibility,
    TransformLayer,
    Undo,
)
from server.core.events import (
    CanvasCreated,
    CanvasRenamed,
    CanvasResized,
    Event,
    EventData,
    LayerAdded,
    LayerDeleted,
    LayerFailed,
    LayerMoved,
    LayerOpacityChanged,
    LayerParamsChanged,
    LayerRenamed,
    LayerRendered,
    LayerRenderRequested,
    LayerRestored,
    LayerTransformed,
    LayerVisibilityChanged,
    VersionNamed,
)
from server.core.history import PastReader, decide_history
from server.core.projection import apply, empty_state
from server.core.rejection import CommandRejected
from server.core.restore import decide_restore
from server.core.state import CanvasState, Layer, Placement

__all__ = ["Admission", "CommandRejected", "Decider", "PastReader", "RefusedEvent", "admit_log", "decide_fork"]


def _random_seed() -> int:
    return secrets.randbelow(2**32)


def _random_layer_id() -> str:
    return "L" + secrets.token_hex(6)


@dataclass(frozen=True)
class Decider:
    operations: OperationRegistry
    new_seed: Callable[[], int] = field(default=_random_seed)
    new_layer_id: Callable[[], str] = field(default=_random_layer_id)
    # Whether an uploaded image exists; None skips the check (the decider is also used without a blob store).
    blob_exists: Callable[[str], bool] | None = None
    # The server's bounds on one render; None decides without them (tests of the event core, scripts).
    limits: RenderLimits | None = None
    # Whether a canvas may use an image: (canvas id, sha256) -> it was uploaded for the canvas or its log names
    # it. Images are read under a canvas's access, so a layer must not name another canvas's image by its hash.
    blob_named: Callable[[str, str], bool] | None = None

    def decide(
        self, state: CanvasState, command: Command, actor: str = "", past: PastReader | None = None
    ) -> list[EventData]:
        """The events `command` causes on `state`. `actor` is whose undo and redo it is; `past` is how undo,
        redo and restore read the log before `state` (the service reads it from the store and its batch)."""
        if not state.created:
            raise CommandRejected("canvas_not_found", f"canvas {state.canvas_id!r} does not exist")
        match command:
            case Undo() | Redo():
                return decide_history(state, isinstance(command, Undo), actor, _needed(past, command))
            case Restore(version=version):
                return decide_restore(state, version, _needed(past, command))
            case NameVersion(version=version, label=label):
                return self._name_version(state, version, label)
            case ResizeCanvas(width=width, height=height, background=background):
                background = background.lower() if background else None
                if (width, height, background) == (state.width, state.height, state.background):
                    return []
                return [CanvasResized(width, height, background)]
            case TransformLayer(layer_id=layer_id):
                layer = _existing(state, layer_id)
                placed = command.as_placement()
                return [] if placed == layer.placement else [LayerTransformed.of(layer_id, placed)]
            case RenameCanvas(name=name):
                return [] if name == state.name else [CanvasRenamed(name=name)]
            case AddLayer():
                added = self._add_layer(state, command)
                return [added, *_placed(state, self.operations, added, command)]
            case ChangeParams():
                return [*self._change_params(state, command)]
            case DeleteLayer(layer_id=layer_id):
                _existing(state, layer_id)
                return [LayerDeleted(layer_id=layer_id)]
            case SetVisibility(layer_id=layer_id, visible=visible):
                layer = _existing(state, layer_id)
                return [] if layer.visible == visible else [LayerVisibilityChanged(layer_id, visible)]
            case SetOpacity(layer_id=layer_id, opacity=opacity):
                layer = _existing(state, layer_id)
                return [] if layer.opacity == opacity else [LayerOpacityChanged(layer_id, opacity)]
            case RenameLayer(layer_id=layer_id, name=name):
                layer = _existing(state, layer_id)
                return [] if layer.name == name else [LayerRenamed(layer_id, name)]
            case MoveLayer(layer_id=layer_id, index=index):
                _existing(state, layer_id)
                if index >= len(state.order):
                    raise CommandRejected(
                        "invalid_index",
                        f"index {index} is out of range: the canvas has {len(state.order)} layers (0 = bottom)",
                        "index",
                    )
                return [] if state.order.index(layer_id) == index else [LayerMoved(layer_id, index)]
            case RetryRender(layer_id=layer_id):
                layer = _existing(state, layer_id)
                if layer.status != "failed":
                    raise CommandRejected(
                        "not_failed", f"layer {layer_id!r} is {layer.status}; only a failed render can be retried"
                    )
                return [LayerRenderRequested(layer_id)]
            case RecordRender():
                self._check_revision(state, command.layer_id, command.revision)
                return [
                    LayerRendered(
                        layer_id=command.layer_id,
                        revision=command.revision,
                        output=command.output,
                        width=command.width,
                        height=command.height,
                        fingerprint=command.fingerprint,
                        duration_ms=command.duration_ms,
                        cache_key=command.cache_key,
                        cached=command.cached,
                        extra_outputs=tuple(command.extra_outputs),
                    )
                ]
            case RecordFailure():
                self._check_revision(state, command.layer_id, command.revision)
                return [LayerFailed(command.layer_id, command.revision, command.reason)]
        raise CommandRejected("unknown_command", f"{type(command).__name__} is not decided here")

    def _name_version(self, state: CanvasState, version: int, label: str) -> list[EventData]:
        if version > state.version:
            raise CommandRejected("bad_version", f"version {version} is out of range 1..{state.version}", "version")
        label = " ".join(label.split())  # one line, as the timeline shows it
        return [] if state.checkpoints.get(version, "") == label else [VersionNamed(version, label)]

    def _add_layer(self, state: CanvasState, command: AddLayer) -> LayerAdded:
        layer_id = command.layer_id or self.new_layer_id()
        if layer_id in state.layers or layer_id in state.deleted:
            raise CommandRejected("layer_exists", f"layer id {layer_id!r} is already taken", "layer_id")
        operation = self.operations.get(command.operation)
        if operation is None:
            known = ", ".join(self.operations.names())
            raise CommandRejected(
                "unknown_operation", f"unknown operation {command.operation!r}; known: {known}", "operation"
            )
        unavailable = self.operations.unavailable().get(operation.name)
        if unavailable is not None:
            raise CommandRejected(
                "operation_unavailable", f"operation {operation.name!r} is unavailable: {unavailable}", "operation"
            )
        validated = _validate(operation.name, self.operations, command.params)
        parents = _parents(state, validated, layer_id)
        self._check_blobs(state, validated)
        self._check_cost(state, operation, validated)
        seed = command.seed if command.seed is not None or not operation.uses_seed else self.new_seed()
        return LayerAdded(
            layer_id=layer_id,
            operation=operation.name,
            params=validated.params,
            seed=seed if operation.uses_seed else None,
            parents=parents,
            name=command.name or f"{operation.title} {len(state.order) + 1}",
        )

    def _change_params(self, state: CanvasState, command: ChangeParams) -> list[LayerParamsChanged]:
        layer = _existing(state, command.layer_id)
        operation = self.operations.get(layer.operation)
        if operation is None:
            raise CommandRejected(
                "unknown_operation", f"layer {layer.id!r} uses operation {layer.operation!r}, which is not available"
            )
        validated = _validate(operation.name, self.operations, command.params)
        parents = _parents(state, validated, layer.id)
        self._check_blobs(state, validated)
        self._check_cost(state, operation, validated)
        descendants = set(state.descendants(layer.id))
        for parent in parents:
            if parent in descendants:
                raise CommandRejected(
                    "cycle", f"layer {layer.id!r} cannot read {parent!r}: {parent!r} is derived from it"
                )
        seed = layer.seed if command.seed is None else command.seed
        if not operation.uses_seed:
            seed = None
        if validated.params == dict(layer.params) and seed == layer.seed:
            return []
        return [LayerParamsChanged(layer_id=layer.id, params=validated.params, seed=seed, parents=parents)]

    def _check_blobs(self, state: CanvasState, validated: ValidatedParams) -> None:
        for path, sha256 in validated.blobs.items():
            if self.blob_named is not None and not self.blob_named(state.canvas_id, sha256):
                raise CommandRejected(
                    "unknown_blob",
                    f"params.{path}: no image {sha256} was uploaded for this canvas "
                    f"(POST /api/blobs?canvas={state.canvas_id} first)",
                    f"params.{path}",
                )
            if self.blob_exists is not None and not self.blob_exists(sha256):
                raise CommandRejected(
                    "unknown_blob",
                    f"params.{path}: no uploaded image {sha256} (POST /api/blobs first)",
                    f"params.{path}",
                )

    def _check_cost(self, state: CanvasState, operation: type[Operation], validated: ValidatedParams) -> None:
        """Refuse work over the server's limits now, when the sizes of the inputs are already known (the
        render checks again, just before it starts, for inputs that were not rendered yet)."""
        if self.limits is None:
            return
        sizes: dict[str, Size | None] = {}
        for path, parent_id in validated.inputs.items():
            output = state.layers[parent_id].output
            sizes[path] = (output.width, output.height) if output is not None else None
        model = validated.model if validated.model is not None else operation.Params.model_validate(validated.params)
        estimate = operation.estimate(model, sizes, self.limits)
        problem = None if estimate is None else self.limits.check(operation.name, estimate)
        if problem is not None:
            raise CommandRejected("over_limit", problem, "params")

    @staticmethod
    def _check_revision(state: CanvasState, layer_id: str, revision: int) -> None:
        layer = _existing(state, layer_id)
        if layer.revision != revision:
            raise CommandRejected(
                "stale_revision", f"layer {layer_id!r} is at revision {layer.revision}, not {revision}"
            )
        if layer.status not in ("pending", "stale"):
            # E.g. cancelled while its render was starting: it waits for a retry, not for this result.
            raise CommandRejected("not_waiting", f"layer {layer_id!r} is {layer.status}, not waiting for a render")


def _needed(past: PastReader | None, command: Command) -> PastReader:
    if past is None:
        raise CommandRejected("unknown_command", f"{type(command).__name__} needs the log's past to be decided")
    return past


def decide_fork(canvas_id: str, created: CanvasCreated, version: int, head: int) -> CanvasCreated:
    """The first event of a fork of canvas `canvas_id` at `version` (its log at `head`, first event `created`);
    the rest of the fork's log is the source's events 2..version, as they were."""
    if not 1 <= version <= head:
        raise CommandRejected("bad_version", f"version {version} is out of range 1..{head}", "version")
    origin = {"kind": "fork", "canvas_id": canvas_id, "version": version}
    return CanvasCreated(f"{created.name} (fork)", origin)


def _existing(state: CanvasState, layer_id: str) -> Layer:
    layer = state.layers.get(layer_id)
    if layer is None:
        why = "was deleted" if layer_id in state.deleted else "does not exist"
        raise CommandRejected("unknown_layer", f"layer {layer_id!r} {why}", "layer_id")
    return layer


def _validate(operation: str, operations: OperationRegistry, params: dict) -> ValidatedParams:
    spec = operations.get(operation)
    assert spec is not None
    try:
        return validate_params(spec, params)
    except InvalidParams as exc:
        field = f"params.{exc.field}" if exc.field else "params"
        raise CommandRejected("invalid_params", str(exc), field) from None


def _placed(state: CanvasState, operations: OperationRegistry, added: LayerAdded, command: AddLayer) -> list[EventData]:
    """Where a new layer goes, in the command that adds it (one undo): where the command says (a txt2img in its
    generation frame), else like the input it is made from, else where its params say (an outpaint's frame)."""
    operation = operations.get(added.operation)
    if command.placement is not None:
        placed = command.placement.as_placement()
    elif operation is not None and operation.placed_on is not None:
        return _placed_like_its_input(state, operation, added)
    elif operation is not None and (at := operation.placed_at(added.params)) is not None:
        placed = Placement(float(at[0]), float(at[1]))
    else:
        return []
    return [] if placed.is_identity else [LayerTransformed.of(added.layer_id, placed)]


def _placed_like_its_input(state: CanvasState, operation: type[Operation], added: LayerAdded) -> list[EventData]:
    """A new layer takes the place of the input it is made from (an img2img lies over its source, a crop where
    it was cut out, a mask on its layer), so it appears where its picture belongs, not at the origin."""
    name = operation.placed_on
    source = state.layers.get(added.params.get(name, "")) if name else None
    if source is None:
        return []
    where = source.placement
    dx, dy = operation.offset_in_input(added.params)
    size = operation.result_size(added.params)
    if (dx, dy) == (0, 0):  # the same picture's place (an img2img over its source, a mask on its layer)
        placed = where
    elif where.rotation == 0 and not where.flip_x and not where.flip_y:
        placed = replace(where, x=where.x + where.scale * dx, y=where.y + where.scale * dy)
    elif size is not None and source.output is not None:
        # turned or flipped about its centre: the region's centre goes where it lies in the source
        centre = where.to_document(source.output.width, source.output.height, dx + size[0] / 2, dy + size[1] / 2)
        placed = replace(where, x=centre[0] - where.scale * size[0] / 2, y=centre[1] - where.scale * size[1] / 2)
    else:
        placed = where
    return [] if placed.is_identity else [LayerTransformed.of(added.layer_id, placed)]


def _parents(state: CanvasState, validated: ValidatedParams, layer_id: str) -> tuple[str, ...]:
    parents: list[str] = []
    for param, parent in validated.inputs.items():
        if parent == layer_id:
            raise CommandRejected("cycle", f"layer {layer_id!r} cannot read itself", f"params.{param}")
        if parent not in state.layers:
            why = "was deleted" if parent in state.deleted else "does not exist"
            raise CommandRejected("unknown_layer", f"params.{param}: layer {parent!r} {why}", f"params.{param}")
        if parent not in parents:
            parents.append(parent)
    return tuple(parents)


# --- recorded events entering a log (imports) ---------------------------------------------------------------


def _as_command(model: type[Any], **fields: Any) -> Any:
    """The command a recorded event stands for, validated like a client's (ids, names, params depth)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise CommandRejected("invalid_event", f"{field or 'payload'}: {first['msg']}", field) from None


class Admission:
    """Whether a recorded event (from an imported file) may enter a log: the rules of the command it stands
    for, decided by the same `Decider` against the state the log has reached. One validator for live commands
    and imported events, so an import can hold nothing a client could not have made.

    Lenient only where the log legitimately differs from a fresh decision: an operation unavailable on this
    server (it fails when rendered, with the reason), renders of any revision (the fold ignores stale ones).
    """

    def __init__(self, decider: Decider, blob_known: Callable[[str], bool] | None = None) -> None:
        # Limits and uploads are the server's concern at render and upload time; a file's images are checked
        # against the file and the server (`blob_known`), with a message that says so.
        self.decider = replace(decider, blob_exists=None, limits=None, blob_named=None)
        self.blob_known = blob_known

    def _check_file_blobs(self, operation_name: str, params: dict[str, Any]) -> None:
        operation = self.decider.operations.get(operation_name)
        if self.blob_known is None or operation is None:
            return
        for path, sha in validate_params(operation, params).blobs.items():
            if not self.blob_known(sha):
                raise CommandRejected(
                    "unknown_blob", f"params.{path} refers to image {sha}, which is neither in the file nor on "
                    "this server", f"params.{path}",
                )  # fmt: skip

    def check(self, state: CanvasState, data: EventData) -> None:
        match data:
            case CanvasCreated(name=name):
                _as_command(RenameCanvas, name=name)
            case CanvasRenamed(name=name):
                _as_command(RenameCanvas, name=name)
            case LayerAdded():
                command = _as_command(
                    AddLayer, layer_id=data.layer_id, operation=data.operation, params=data.params,
                    seed=data.seed, name=data.name,
                )  # fmt: skip
                decided = self._decide_ignoring_availability(state, command)
                self._check_file_blobs(data.operation, data.params)
                if decided.parents != tuple(data.parents):
                    raise CommandRejected(
                        "invalid_event", f"parents {list(data.parents)} do not match the layers the params read",
                        "parents",
                    )  # fmt: skip
            case LayerParamsChanged():
                command = _as_command(ChangeParams, layer_id=data.layer_id, params=data.params, seed=data.seed)
                changes = self.decider._change_params(state, command)
                self._check_file_blobs(state.layers[data.layer_id].operation, data.params)
                if changes and tuple(changes[0].parents) != tuple(data.parents):
                    raise CommandRejected(
                        "invalid_event", f"parents {list(data.parents)} do not match the layers the params read",
                        "parents",
                    )  # fmt: skip
            case LayerDeleted(layer_id=layer_id) | LayerRenderRequested(layer_id=layer_id):
                _existing(state, _as_command(DeleteLayer, layer_id=layer_id).layer_id)
            case LayerVisibilityChanged(layer_id=layer_id, visible=visible):
                _existing(state, _as_command(SetVisibility, layer_id=layer_id, visible=visible).layer_id)
            case LayerOpacityChanged(layer_id=layer_id, opacity=opacity):
                _existing(state, _as_command(SetOpacity, layer_id=layer_id, opacity=opacity).layer_id)
            case LayerRenamed(layer_id=layer_id, name=name):
                _existing(state, _as_command(RenameLayer, layer_id=layer_id, name=name).layer_id)
            case LayerMoved(layer_id=layer_id, index=index):
                _existing(state, _as_command(MoveLayer, layer_id=layer_id, index=index).layer_id)
                if index >= len(state.order):
                    raise CommandRejected("invalid_index", f"index {index} is out of range", "index")
            case LayerRendered():
                _as_command(
                    RecordRender, layer_id=data.layer_id, revision=data.revision, output=data.output,
                    width=data.width, height=data.height, fingerprint=data.fingerprint, duration_ms=data.duration_ms,
                    cache_key=data.cache_key, cached=data.cached, extra_outputs=data.extra_outputs,
                )  # fmt: skip
            case LayerFailed():
                _as_command(RecordFailure, layer_id=data.layer_id, revision=data.revision, reason=data.reason)
            case LayerRestored():
                for index, layer in enumerate(data.layers):
                    try:
                        self._check_restored(layer)
                    except CommandRejected as exc:
                        where = f"layers.{index}.{exc.field or ''}".rstrip(".")
                        raise CommandRejected(exc.code, exc.message, where) from None
            case _:
                pass  # history markers: numbers only, checked by their types

    def _decide_ignoring_availability(self, state: CanvasState, command: AddLayer) -> LayerAdded:
        registry = self.decider.operations
        if command.operation in registry.unavailable():
            open_registry = OperationRegistry()
            for name in registry.names():
                operation = registry.get(name)
                assert operation is not None
                open_registry.register(operation)
            return replace(self.decider, operations=open_registry)._add_layer(state, command)
        return self.decider._add_layer(state, command)

    def _check_restored(self, layer: dict[str, Any]) -> None:
        _as_command(RenameLayer, layer_id=layer.get("id"), name=layer.get("name"))
        operation = self.decider.operations.get(str(layer.get("operation")))
        if operation is None:
            raise CommandRejected("unknown_operation", f"unknown operation {layer.get('operation')!r}", "operation")
        try:
            validate_params(operation, layer.get("params") or {})
        except InvalidParams as exc:
            raise CommandRejected("invalid_params", str(exc), "params") from None


class RefusedEvent(Exception):
    """An imported log holds an event its command would not have made: `index` in the log, and why."""

    def __init__(self, index: int, data: EventData, rejection: CommandRejected) -> None:
        super().__init__(f"events[{index}]: {data.type} refused ({rejection.code}): {rejection.message}")
        self.index = index
        self.data = data
        self.rejection = rejection


def admit_log(events: Sequence[Event], admission: Admission) -> CanvasState:
    """Decide a whole recorded log (an imported file) as if its commands were sent one by one: each event must be
    one the decider would have made at that point, checked by `Admission` against the state the log has reached.
    Returns the state at the end; raises RefusedEvent at the first event that does not pass."""
    state = empty_state(events[0].canvas_id if events else "import")
    for index, event in enumerate(events):
        data = event.data
        try:
            if isinstance(data, CanvasCreated) != (index == 0):
                where = "the first event must be" if index == 0 else "canvas.created may only be the first event"
                raise CommandRejected("misplaced_event", where if index else f"{where} canvas.created")
            admission.check(state, data)
        except CommandRejected as exc:
            raise RefusedEvent(index, data, exc) from None
        state = apply(state, event)
    return state
