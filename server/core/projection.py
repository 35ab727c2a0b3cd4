"""The fold: `apply(state, event) -> state`, pure and total.

Handlers are written once against a mutable draft (immer's trick): `apply` drafts a single event, `project`
folds many events into one draft and freezes once, so replaying a long log costs O(events), not
O(events x layers). Neither ever changes the state it was given. An event that does not fit the state
(a layer already deleted, a render of an outdated revision) changes nothing but the version: the fold is total.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from itertools import chain
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from server.core.events import (
    CanvasCreated,
    CanvasRenamed,
    CanvasResized,
    CanvasRestored,
    Event,
    EventData,
    HistoryRedone,
    HistoryUndone,
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
from server.core.pmap import PMap, PMapBuilder
from server.core.pseq import PSeq
from server.core.state import (
    CanvasState,
    HistoryEntry,
    Layer,
    Placement,
    RenderOutput,
    UserHistory,
    layer_from_json,
)

HISTORY_DEPTH = 100  # undo steps kept per user, as in most editors
SYSTEM_ACTORS = frozenset({"engine"})
UNDOABLE = frozenset(
    {
        "canvas.renamed",
        "layer.added",
        "layer.params_changed",
        "layer.deleted",
        "layer.restored",
        "layer.visibility_changed",
        "layer.opacity_changed",
        "layer.renamed",
        "layer.moved",
        "version.named",
        "canvas.resized",
        "layer.transformed",
    }
)


# A fold of n events into a canvas of m layers copies the layer table up front when n x this >= m: a dict copy
# costs ~0.05 us a layer, the persistent map's extra per event ~2 us.
_EVENTS_PER_COPIED_LAYER = 32


class _TrackedLayers(dict[str, Layer]):
    """The layer table as a plain dict for a long fold, remembering which ids it changed so that freezing
    writes only those into a new version of the persistent map (the rest stays shared with the base)."""

    __slots__ = ("_base", "_touched")

    def __init__(self, base: PMap[Layer]) -> None:
        super().__init__(chain.from_iterable(leaf.items() for leaf in base._root if leaf))
        self._base = base
        self._touched: set[str] = set()

    def __setitem__(self, key: str, value: Layer) -> None:
        self._touched.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._touched.add(key)
        dict.__delitem__(self, key)

    def freeze(self) -> PMap[Layer]:
        if not self._touched:
            return self._base
        builder = PMapBuilder(self._base)
        for key in self._touched:
            value = self.get(key)
            if value is not None:
                builder[key] = value
            elif key in builder:
                del builder[key]
        return builder.freeze()


class _Draft:
    """A mutable working copy of a state that shares everything it has not changed with that state.

    The layer table is a persistent map (`PMapBuilder` copies only the trie nodes an event touches); the stack
    order and the histories are copied on their first change, not up front. So folding one event costs what
    the event touches, not the size of the canvas, and the state it started from is never changed.
    """

    __slots__ = (
        "_appended",
        "_checkpoints",
        "_children",
        "_history",
        "_order",
        "background",
        "base",
        "canvas_id",
        "compensating_until",
        "created",
        "deleted",
        "height",
        "layers",
        "name",
        "origin",
        "version",
        "width",
    )

    def __init__(self, state: CanvasState, events_ahead: int = 1) -> None:
        self.base = state
        self.canvas_id = state.canvas_id
        self.version = state.version
        self.name = state.name
        self.created = state.created
        base_layers = state.layers
        # A state built by hand (tests, the CLI) may hold any mapping: made persistent once, on its first fold.
        persistent = base_layers if isinstance(base_layers, PMap) else PMap(base_layers)
        self.layers: PMapBuilder[Layer] | _TrackedLayers
        if events_ahead * _EVENTS_PER_COPIED_LAYER >= len(persistent):
            # Many events for the size of the canvas (a projection from a snapshot, a replay): one copy of the
            # table into a plain dict (C speed) and dict-speed reads and writes beat the map's per-event cost.
            self.layers = _TrackedLayers(persistent)
        else:
            self.layers = PMapBuilder(persistent)
        self._order: list[str] | None = None  # copied from state.order on its first change
        self._appended: list[str] = []  # layers added on top while the order is still the state's own
        self.deleted: frozenset[str] = state.deleted  # replaced, not mutated: most events delete nothing
        # user -> (undo, redo) as lists, copied from state.history on a user's first change: folding many
        # events then appends to a list instead of copying a 100-entry tuple per event.
        self._history: dict[str, tuple[list[HistoryEntry], list[HistoryEntry]]] = {}
        self.compensating_until = state.compensating_until
        self.origin = state.origin
        self._checkpoints: dict[int, str] | None = None  # copied on the first change only
        self.width, self.height, self.background = state.width, state.height, state.background
        self._children: dict[str, list[str]] | None = None  # parent id -> ids reading it, built on first use

    def children(self) -> dict[str, list[str]]:
        """Parent id -> the live layers that read it. Built once per draft and kept up to date by adds and
        deletes; an event that changes the DAG otherwise (a restore, new parents) drops it, to be built again."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            for layer in self.layers.values():
                for parent in layer.parents:
                    children.setdefault(parent, []).append(layer.id)
            self._children = children
        return self._children

    def forget_children(self) -> None:
        self._children = None

    def unlink(self, layer: Layer, doomed: set[str]) -> None:
        """Take a layer being deleted (with `doomed`, the others going with it) out of the children index, if it
        is built: a long fold with many deletes then builds the index once, not once per delete."""
        children = self._children
        if children is None:
            return
        for parent in layer.parents:
            readers = children.get(parent)
            if readers is not None and parent not in doomed:
                children[parent] = [child for child in readers if child != layer.id]
        children.pop(layer.id, None)

    @property
    def order(self) -> Sequence[str]:
        """The stack order, for reading (the state's own tuple until something changes it)."""
        if self._order is not None:
            return self._order
        if self._appended:
            return self.order_for_write()
        return self.base.order

    def order_for_write(self) -> list[str]:
        if self._order is None:
            self._order = [*self.base.order, *self._appended]
            self._appended = []
        return self._order

    def append_to_order(self, layer_id: str) -> None:
        """A new top layer: the commonest change of order, kept apart so that freezing shares the base's."""
        if self._order is None:
            self._appended.append(layer_id)
        else:
            self._order.append(layer_id)

    def set_order(self, order: list[str]) -> None:
        self._order = order

    def stacks(self, user: str) -> tuple[list[HistoryEntry], list[HistoryEntry]]:
        """The user's undo and redo stacks, to change in place (they belong to this draft)."""
        stacks = self._history.get(user)
        if stacks is None:
            history = self.base.history.get(user)
            stacks = ([], []) if history is None else (list(history.undo), list(history.redo))
            self._history[user] = stacks
        return stacks

    def _frozen_history(self) -> Mapping[str, UserHistory]:
        if not self._history:
            return self.base.history
        merged = dict(self.base.history)
        for user, (undo, redo) in self._history.items():
            merged[user] = UserHistory(tuple(undo), tuple(redo))
        return MappingProxyType(merged)

    def _frozen_order(self) -> PSeq:
        if self._order is not None:
            return PSeq(self._order)
        # appends only (the commonest change): shares the base's items instead of copying them
        return PSeq.of(self.base.order).appended(self._appended)

    def name_version(self, version: int, label: str) -> None:
        if self._checkpoints is None:
            self._checkpoints = dict(self.base.checkpoints)
        if label:
            self._checkpoints[version] = label
        else:
            self._checkpoints.pop(version, None)

    def freeze(self) -> CanvasState:
        return CanvasState(
            canvas_id=self.canvas_id,
            version=self.version,
            name=self.name,
            created=self.created,
            layers=self.layers.freeze(),
            order=self._frozen_order(),
            deleted=self.deleted,
            history=self._frozen_history(),
            compensating_until=self.compensating_until,
            origin=self.origin,
            checkpoints=self.base.checkpoints if self._checkpoints is None else MappingProxyType(self._checkpoints),
            width=self.width,
            height=self.height,
            background=self.background,
        )


def _canvas_created(draft: _Draft, data: CanvasCreated, seq: int) -> None:
    draft.created = True
    draft.name = data.name
    draft.origin = data.origin


def _canvas_restored(draft: _Draft, data: CanvasRestored, seq: int) -> None:
    """Only a label for the events after it, which do the restoring."""


def _version_named(draft: _Draft, data: VersionNamed, seq: int) -> None:
    draft.name_version(data.version, data.label)


def _canvas_renamed(draft: _Draft, data: CanvasRenamed, seq: int) -> None:
    draft.name = data.name


def _layer_added(draft: _Draft, data: LayerAdded, seq: int) -> None:
    if data.layer_id in draft.layers or data.layer_id in draft.deleted:
        return
    draft.layers[data.layer_id] = Layer(
        id=data.layer_id,
        name=data.name,
        operation=data.operation,
        params=data.params,
        seed=data.seed,
        parents=tuple(data.parents),
        created_seq=seq,
        updated_seq=seq,
    )
    draft.append_to_order(data.layer_id)
    if draft._children is not None:
        for parent in data.parents:
            draft._children.setdefault(parent, []).append(data.layer_id)


_LAYER_FIELDS = tuple(field.name for field in fields(Layer))
_LAYER_VALUES = attrgetter(*_LAYER_FIELDS)  # every field at C speed, in the constructor's order
_LAYER_INDEX = {name: index for index, name in enumerate(_LAYER_FIELDS)}


def _changed(layer: Layer, **changes: object) -> Layer:
    """`dataclasses.replace` without its generic work, which was a third of folding an ordinary edit."""
    values: list[Any] = list(_LAYER_VALUES(layer))
    for name, value in changes.items():
        values[_LAYER_INDEX[name]] = value
    return Layer(*values)


def _invalidate(layer: Layer, seq: int) -> Layer:
    return _changed(
        layer,
        revision=layer.revision + 1,
        status="stale" if layer.output is not None else "pending",
        error=None,
        updated_seq=seq,
    )


def _descendants(draft: _Draft, root: str) -> set[str]:
    """Every live layer derived, directly or not, from `root` (as a set: the fold needs no order), from the
    draft's children index: a long fold builds it once instead of once per params change or delete."""
    children = draft.children()
    found: set[str] = set()
    frontier = list(children.get(root, ()))
    while frontier:
        current = frontier.pop()
        if current in found:
            continue
        found.add(current)
        frontier.extend(children.get(current, ()))
    return found


def _invalidate_with_descendants(draft: _Draft, layer: Layer, seq: int) -> None:
    draft.layers[layer.id] = _invalidate(layer, seq)
    for child_id in _descendants(draft, layer.id):
        draft.layers[child_id] = _invalidate(draft.layers[child_id], seq)


def _layer_params_changed(draft: _Draft, data: LayerParamsChanged, seq: int) -> None:
    layer = draft.layers.get(data.layer_id)
    if layer is not None:
        changed = _changed(layer, params=data.params, seed=data.seed, parents=tuple(data.parents))
        if changed.parents != layer.parents:
            draft.forget_children()
        _invalidate_with_descendants(draft, changed, seq)


def _layer_render_requested(draft: _Draft, data: LayerRenderRequested, seq: int) -> None:
    layer = draft.layers.get(data.layer_id)
    if layer is not None:
        _invalidate_with_descendants(draft, layer, seq)


def _layer_deleted(draft: _Draft, data: LayerDeleted, seq: int) -> None:
    if data.layer_id not in draft.layers:
        return
    doomed = {data.layer_id, *_descendants(draft, data.layer_id)}
    for layer_id in doomed:
        draft.unlink(draft.layers[layer_id], doomed)
        del draft.layers[layer_id]
    draft.set_order([layer_id for layer_id in draft.order if layer_id not in doomed])
    draft.deleted = draft.deleted | doomed


def _layer_restored(draft: _Draft, data: LayerRestored, seq: int) -> None:
    for raw, position in zip(data.layers, data.positions, strict=False):
        layer = layer_from_json(raw)
        if layer.id in draft.layers or any(p not in draft.layers for p in layer.parents):
            continue
        draft.layers[layer.id] = _changed(layer, updated_seq=seq)
        draft.order_for_write().insert(min(max(position, 0), len(draft.order)), layer.id)
        draft.deleted = draft.deleted - {layer.id}
    draft.forget_children()


def _update(draft: _Draft, layer_id: str, seq: int, **changes: object) -> None:
    layer = draft.layers.get(layer_id)
    if layer is not None:
        draft.layers[layer_id] = _changed(layer, updated_seq=seq, **changes)


def _layer_visibility_changed(draft: _Draft, data: LayerVisibilityChanged, seq: int) -> None:
    _update(draft, data.layer_id, seq, visible=data.visible)


def _layer_opacity_changed(draft: _Draft, data: LayerOpacityChanged, seq: int) -> None:
    _update(draft, data.layer_id, seq, opacity=min(1.0, max(0.0, data.opacity)))


def _layer_renamed(draft: _Draft, data: LayerRenamed, seq: int) -> None:
    _update(draft, data.layer_id, seq, name=data.name)


def _layer_moved(draft: _Draft, data: LayerMoved, seq: int) -> None:
    if data.layer_id not in draft.layers:
        return
    order = draft.order_for_write()
    order.remove(data.layer_id)
    index = min(max(data.index, 0), len(order))
    order.insert(index, data.layer_id)
    _update(draft, data.layer_id, seq)


def _layer_rendered(draft: _Draft, data: LayerRendered, seq: int) -> None:
    layer = draft.layers.get(data.layer_id)
    if layer is None or layer.revision != data.revision:
        return
    output = RenderOutput(
        sha256=data.output,
        width=data.width,
        height=data.height,
        fingerprint=data.fingerprint,
        duration_ms=data.duration_ms,
        cache_key=data.cache_key,
        cached=data.cached,
        extra=tuple(data.extra_outputs),
    )
    _update(draft, layer.id, seq, status="rendered", output=output, error=None)
    if draft.width == 0:  # a document without a size takes the first picture's, as the editor shows it
        draft.width, draft.height = data.width, data.height


def _canvas_resized(draft: _Draft, data: CanvasResized, seq: int) -> None:
    draft.width, draft.height, draft.background = data.width, data.height, data.background


def _layer_transformed(draft: _Draft, data: LayerTransformed, seq: int) -> None:
    placement = Placement(data.x, data.y, data.scale, data.rotation, data.flip_x, data.flip_y)
    _update(draft, data.layer_id, seq, placement=placement)


def _layer_failed(draft: _Draft, data: LayerFailed, seq: int) -> None:
    layer = draft.layers.get(data.layer_id)
    if layer is None or layer.revision != data.revision:
        return
    _update(draft, layer.id, seq, status="failed", error=data.reason)


# Each handler takes its own event class (Any: a Callable's parameters cannot say "the key's type").
_HANDLERS: dict[type[EventData], Callable[[_Draft, Any, int], None]] = {
    CanvasCreated: _canvas_created,
    CanvasRenamed: _canvas_renamed,
    CanvasRestored: _canvas_restored,
    VersionNamed: _version_named,
    CanvasResized: _canvas_resized,
    LayerTransformed: _layer_transformed,
    LayerAdded: _layer_added,
    LayerParamsChanged: _layer_params_changed,
    LayerDeleted: _layer_deleted,
    LayerVisibilityChanged: _layer_visibility_changed,
    LayerOpacityChanged: _layer_opacity_changed,
    LayerRenamed: _layer_renamed,
    LayerMoved: _layer_moved,
    LayerRendered: _layer_rendered,
    LayerRenderRequested: _layer_render_requested,
    LayerRestored: _layer_restored,
    LayerFailed: _layer_failed,
}


def _fold_into(draft: _Draft, event: Event) -> None:
    handler = _HANDLERS.get(type(event.data))
    if handler is not None:
        handler(draft, event.data, event.seq)
    _track_history(draft, event)
    draft.version = event.seq


_HISTORY_MARKERS = (HistoryUndone, HistoryRedone)


def _push(stack: list[HistoryEntry], entry: HistoryEntry) -> None:
    stack.append(entry)
    if len(stack) > HISTORY_DEPTH:  # only the last HISTORY_DEPTH steps are kept
        del stack[: len(stack) - HISTORY_DEPTH]


def _track_history(draft: _Draft, event: Event) -> None:
    """Keep each user's undo and redo stacks: entries are runs of seqs that one undo/redo inverts."""
    data = event.data
    user = event.actor
    if isinstance(data, _HISTORY_MARKERS):
        undo, redo = draft.stacks(user)
        source, target = (undo, redo) if isinstance(data, HistoryUndone) else (redo, undo)
        source[:] = [e for e in source if (e.first_seq, e.last_seq) != (data.first_seq, data.last_seq)]
        # Even an empty inversion (its layers are gone) is a step, so n undos are always undone by n redos.
        _push(target, HistoryEntry(event.command_id, event.seq + 1, event.seq + data.count))
        draft.compensating_until = event.seq + data.count
        return
    if event.seq <= draft.compensating_until or data.type not in UNDOABLE or user in SYSTEM_ACTORS:
        return
    undo, redo = draft.stacks(user)
    top = undo[-1] if undo else None
    # the next event of the same command, or a later event of the same gesture (other people's events may lie
    # between: they are not part of it); inline, not a call: this runs for every event of every fold
    if top is not None and (
        (top.gesture is not None and top.gesture == event.gesture and event.seq - top.first_seq < GESTURE_SPAN)
        or (top.command_id is not None and top.command_id == event.command_id and top.last_seq == event.seq - 1)
    ):
        undo[-1] = HistoryEntry(top.command_id, top.first_seq, event.seq, top.gesture)
    else:
        _push(undo, HistoryEntry(event.command_id, event.seq, event.seq, event.gesture))
    redo.clear()  # a new edit ends what could be redone


GESTURE_SPAN = 2000  # seqs one gesture's entry may span: an undo reads that much of the log, not more


def apply(state: CanvasState, event: Event) -> CanvasState:
    """The state after `event`. Returns a new state; `state` is untouched."""
    draft = _Draft(state)
    _fold_into(draft, event)
    return draft.freeze()


def project(state: CanvasState, events: Iterable[Event]) -> CanvasState:
    """Fold `events` (in seq order) into `state`; equal to applying them one by one."""
    if not isinstance(events, Sequence):
        events = list(events)
    draft = _Draft(state, len(events))
    for event in events:
        _fold_into(draft, event)
    return draft.freeze()


def empty_state(canvas_id: str) -> CanvasState:
    return CanvasState(canvas_id=canvas_id)
