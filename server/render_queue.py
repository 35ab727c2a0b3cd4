"""The render queue: turns layers that need pixels into `layer.rendered` / `layer.failed` events.

Level-triggered rather than job-based: a canvas with work is marked dirty, and the worker asks its latest
state which layers are ready (their inputs rendered). Nothing is lost if an event is missed or the server
restarts — on start every canvas is looked at once. Canvases take turns, one render each (fair across
canvases), and within a canvas the users take turns (fair across users); renders run one at a time on the
render thread (a GPU is a serial resource), off the event loop.

The worker cannot be wedged (docs/reliability.md):
- every failure while keying, preparing, rendering or recording one layer ends as that layer's `layer.failed`
  with the reason; a failure that is not one layer's (a canvas whose state cannot be scheduled) sets that
  canvas aside (`Quarantines`) with exponential back-off, and the worker goes on with the others;
- work is bounded before it starts (`engine.limits`), and a render stops within one model block of being
  cancelled — by its user, by an edit or deletion of its layer or of a layer it reads, or by shutdown, which
  leaves it pending for the next start.

Before rendering, the layer's cache key (operation, params with inputs replaced by their image hashes,
seed, engine fingerprint) is looked up: a key rendered before is recorded again without computing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from engine.cache_key import cache_key
from engine.errors import EngineError, RenderCancelled
from engine.limits import OverLimit, RenderLimits, Size, WorkEstimate
from engine.operation import InvalidParams, Operation, OperationRegistry, input_refs
from server.blobstore import BlobStore
from server.core.commands import AddLayer, RecordFailure, RecordRender
from server.core.decide import CommandRejected
from server.core.event_registry import WAKING_EVENTS
from server.core.events import Event
from server.core.scheduling import NEEDS_RENDER, ready_layers, waiting_layers
from server.core.state import CanvasState, Layer
from server.heap import collection_paused, freeze_long_lived
from server.protocol import (
    Preview,
    Progress,
    QueueNews,
    RenderBlocked,
    RenderFailed,
    RenderFinished,
    RenderStarted,
    RenderUnblocked,
)
from server.protocol import RenderCancelled as RenderCancelledNews
from server.quarantine import Backoff, Quarantines, ThrottledLog
from server.render_jobs import LocalWork, SharedWork
from server.render_thread import RenderThread
from server.render_times import RenderTimes
from server.service import CanvasNotFound, CanvasService
from server.store.base import EventStore, RenderRecord

if TYPE_CHECKING:
    from engine.models.progress import LoadProgress
    from engine.preview import PreviewImage
    from engine.render import Renderer

log = logging.getLogger("opendream.renders")
T = TypeVar("T")

ENGINE_ACTOR = "engine"
# Events that make a render in flight pointless when they touch its layer or a layer it reads.
CANCELLING_EVENTS = frozenset({"layer.deleted", "layer.params_changed", "layer.render_requested"})
ATTRIBUTED_EVENTS = frozenset({"layer.added", "layer.params_changed", "layer.render_requested"})
NOTICED_EVENTS = CANCELLING_EVENTS | ATTRIBUTED_EVENTS
MAX_QUEUE_ITEMS = 500  # per canvas in a queue view: enough to show, bounded to compute
QUEUE_NEWS_INTERVAL_S = 1.0

RenderNotice = dict[str, Any]
"""Ephemeral news for live clients (server/protocol.py's render messages, as JSON: they also travel between
replicas)."""


def is_cancellation(reason: str | None) -> bool:
    """Whether a layer.failed reason is one `_record_failure(..., cancelled=True)` wrote ("cancelled by …" for
    a queued render, "render cancelled" for a running one): the client words these "Cancelled", not "Failed"
    (client/js/renders.js `isCancelled`, the same rule)."""
    text = (reason or "").strip().lower()
    return text.startswith("cancelled") or text == "render cancelled"


@dataclass
class _Running:
    canvas_id: str
    layer_id: str
    revision: int
    user: str
    reads: frozenset[str]  # the layers whose change makes this render pointless: itself and its ancestors
    expected_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    step: int = 0
    total: int = 0
    stage: str = "prepare"
    cancel: threading.Event = field(default_factory=threading.Event)
    cancelled_by: str | None = None

    def remaining_s(self) -> float | None:
        if self.expected_s is None:
            return None
        return max(0.0, self.expected_s - (time.monotonic() - self.started))


@dataclass(frozen=True, slots=True)
class _Waiting:
    layer_id: str
    user: str
    expected_s: float | None
    blocked_by: str | None  # a sentence when an input is not rendered yet


class InputUnavailable(LookupError):
    pass


class OperationAborted(RuntimeError):
    """An operation raised SystemExit, KeyboardInterrupt or another BaseException: a failed render, no more."""


def output_layer_id(layer_id: str, index: int) -> str:
    return f"{layer_id}.{index}"


def rendered_images(state: CanvasState) -> dict[str, tuple[str, ...]]:
    """Layer id -> the images its current render made (first is its own), for rendered layers."""
    return {
        layer.id: layer.output.images
        for layer in state.layers.values()
        if layer.status == "rendered" and layer.output is not None
    }


def resolve_inputs(operation: type[Operation], layer: Layer, images_of: Mapping[str, Sequence[T]]) -> dict[str, T]:
    """Input path -> the image it reads: the referenced layer's own image, or, for a `layer_output` layer,
    image `index` of its source. Raises InputUnavailable when an input has not rendered."""
    images: dict[str, T] = {}
    for path, parent in input_refs(operation, layer.params).items():
        made = images_of.get(parent)
        if made is None:
            raise InputUnavailable(f"input layer {parent!r} has no image yet")
        index = layer.params.get("index", 0) if layer.operation == "layer_output" else 0
        if not isinstance(index, int) or index >= len(made):
            raise InputUnavailable(f"layer {parent!r} made {len(made)} images; there is no image {index!r}")
        images[path] = made[index]
    return images


def estimate_layer(
    operation: type[Operation], layer: Layer, state: CanvasState, limits: RenderLimits | None
) -> WorkEstimate | None:
    """The cost of rendering `layer`, from its params and the recorded sizes of the layers it reads."""
    typed = operation.Params.model_validate(dict(layer.params))
    sizes: dict[str, Size | None] = {}
    for path, parent_id in input_refs(operation, typed).items():
        parent = state.layers.get(parent_id)
        output = parent.output if parent is not None else None
        sizes[path] = (output.width, output.height) if output is not None else None
    return operation.estimate(typed, sizes, limits)


def failure_reason(exc: BaseException) -> str:
    """What a user reads on the failed layer: engine errors and limits say what to do by themselves."""
    if isinstance(exc, EngineError | OverLimit | InputUnavailable | InvalidParams):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class RenderQueue:
    def __init__(
        self,
        service: CanvasService,
        store: EventStore,
        blobs: BlobStore,
        operations: OperationRegistry,
        renderer_factory: Callable[[], Renderer],
        work: LocalWork | SharedWork | None = None,
        *,
        limits: RenderLimits | None = None,
        previews: bool = True,
        backoff: Backoff | None = None,
        shutdown_grace_s: float = 5.0,
        private_cache: bool = False,
    ) -> None:
        self.service = service
        self.work = work or LocalWork()
        self.store = store
        self.blobs = blobs
        self.operations = operations
        self.limits = limits
        self.previews = previews
        self.shutdown_grace_s = shutdown_grace_s
        # A cache hit only for an image the canvas's log already names (its own renders, its fork source's):
        # nobody learns that another canvas rendered the same thing, at the price of computing it again.
        self.private_cache = private_cache
        self._renderer_factory = renderer_factory
        self._renderer: Renderer | None = None
        self._renderer_lock = threading.Lock()
        self._idle = asyncio.Event()
        self._running: _Running | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._listeners: list[Callable[[str, RenderNotice], None]] = []
        self._thread = RenderThread()
        self._stopping = threading.Event()  # also stops on-demand renders of past versions
        self._quarantines = Quarantines(backoff or Backoff())
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._model_progress: LoadProgress | None = None
        self._model_loading = threading.Event()  # the model is loading (a render needing it waits for it)
        self._requested_by: dict[tuple[str, str], str] = {}  # (canvas, layer) -> who asked for its render
        self._turns: dict[str, dict[str, int]] = {}  # canvas -> user -> when they were last served
        self._served = 0
        self._backlog: dict[str, list[_Waiting]] = {}  # canvases with work -> their waiting layers
        self._turn_order: list[str] = []  # canvases marked as having work, next first (as last looked at)
        self._queues_published_at = float("-inf")
        self.times = RenderTimes()
        self._log = ThrottledLog(log)
        self.stats: Counter[str] = Counter()

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self, scan_existing: bool = True) -> None:
        self._unsubscribe = self.service.subscribe(self._on_events)
        if scan_existing:  # renders that were queued or in flight when the server stopped
            await self.work.scan([info.id for info in await asyncio.to_thread(self.store.canvases)])
        self._task = asyncio.create_task(self._run(), name="opendream-renders")

    async def stop(self) -> None:
        """Stop taking work. A render in flight is cancelled without a trace in the log, so its layer is still
        pending at the next start; one that does not stop within `shutdown_grace_s` is left behind."""
        self._stopping.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        running = self._running
        if running is not None:
            running.cancel.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for timer in self._retry_timers.values():
            timer.cancel()
        self._retry_timers.clear()
        with contextlib.suppress(Exception):
            await self.work.close()
        # A load has no layer to leave pending: the daemon thread is left to it without waiting (a built-in's
        # build is renamed into place only when complete).
        grace = 0.0 if self._model_loading.is_set() else self.shutdown_grace_s
        if not await asyncio.to_thread(self._thread.stop, grace) and grace:
            log.warning(
                "a render did not stop within %.0f s of shutdown; leaving it behind (its layer stays pending)",
                self.shutdown_grace_s,
            )

    def subscribe(self, listener: Callable[[str, RenderNotice], None]) -> Callable[[], None]:
        """`listener(canvas_id, notice)` on the event loop for progress, previews, queue and render status."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_idle(self, timeout: float = 120.0) -> None:
        """Until no canvas has a render that can run now (for tests and scripts)."""
        async with asyncio.timeout(timeout):
            while self.work.pending() or self._running is not None:
                self._idle.clear()
                await self._idle.wait()

    def preload_model(self, progress: LoadProgress | None = None) -> None:
        """Load the model now, in the background, on a thread of its own: a render that needs the model waits
        for it (the model's lock) instead of failing, while renders that do not (uploads, blanks, crops) go on
        meanwhile; a failed load is reported to `progress` (the renders then fail at once with its reason,
        engine.models.loader). A daemon thread: a load in progress never holds up the process's exit."""
        self._model_progress = progress
        if progress is not None and progress.state == "idle":
            progress.begin("importing torch and diffusers")
        loader = threading.Thread(target=self._load_model, args=(progress,), name="opendream-model-load", daemon=True)
        loader.start()

    def _load_model(self, progress: LoadProgress | None) -> None:
        self._model_loading.set()
        try:
            # importing torch and diffusers makes ~400,000 long-lived objects: no full collections meanwhile,
            # and out of the collector's sight afterwards (server/heap.py)
            with collection_paused():
                self._load_model_now(progress)
            freeze_long_lived()
        finally:
            self._model_loading.clear()

    def _load_model_now(self, progress: LoadProgress | None) -> None:
        try:
            renderer = self.renderer()
        except Exception as exc:  # torch or the engine cannot even be imported
            if progress is not None:
                progress.failed(failure_reason(exc))
            else:
                log.warning("the renderer could not be built: %s", failure_reason(exc))
            return
        load = getattr(renderer, "load_model", None)  # a stand-in renderer (tests) may have none
        if load is None:
            return
        try:
            load()
        except Exception as exc:  # said by `progress` and by every render that meets it
            if progress is None:
                log.warning("the model could not be loaded: %s", failure_reason(exc))

    def _said_by_load(self, reason: str) -> bool:
        """Whether `reason` is the model's load failure, which its progress has logged already."""
        progress = self._model_progress
        return progress is not None and progress.state == "failed" and progress.snapshot()["error"] == reason

    def renderer(self) -> Renderer:
        with self._renderer_lock:
            if self._renderer is None:
                self._renderer = self._renderer_factory()
            return self._renderer

    def loaded_models(self) -> list[str]:
        """The models the renderer holds loaded (none before it is built)."""
        renderer = self._renderer
        return [] if renderer is None else [str(handle.spec) for handle in renderer.models.loaded()]

    def unload_changed_models(self) -> None:
        """After the models directory was scanned again: unload the models whose part files changed, on the render
        thread between two renders (a render never loses its model half-way), without waiting for that."""
        renderer = self._renderer
        if renderer is None:
            return

        async def unload() -> None:
            for handle in await self._thread.run(renderer.models.unload_changed):
                log.info("%s will load again with the part files now in the models directory", handle.spec)

        task = asyncio.get_running_loop().create_task(unload())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- events in -------------------------------------------------------------------------------------

    def _on_events(self, canvas_id: str, events: Sequence[Event] | Any) -> None:
        try:
            self._take_notice(canvas_id, events)
        except Exception:  # a malformed event must not break the service's delivery to the others
            self._log.log(logging.WARNING, f"events:{canvas_id}", "render queue: events of %s not understood",
                          canvas_id, exc_info=True)  # fmt: skip
        # Shared work is marked by the append itself, in its transaction.
        if isinstance(self.work, LocalWork) and any(event.type in WAKING_EVENTS for event in events):
            self.work.mark(canvas_id)

    def _take_notice(self, canvas_id: str, events: Sequence[Event]) -> None:
        running = self._running
        for event in events:
            if event.type not in NOTICED_EVENTS:
                continue
            layer_id = getattr(event.data, "layer_id", None)
            if event.type in ATTRIBUTED_EVENTS and isinstance(layer_id, str) and event.actor != ENGINE_ACTOR:
                self._requested_by[(canvas_id, layer_id)] = event.actor
            if (
                running is not None
                and running.canvas_id == canvas_id
                and event.type in CANCELLING_EVENTS
                and layer_id in running.reads
                and not running.cancel.is_set()
            ):
                verb = "deleted" if event.type == "layer.deleted" else "changed"
                running.cancelled_by = f"{event.actor} ({verb} {layer_id!r})"
                running.cancel.set()
        delay = self._quarantines.hasten(canvas_id)
        if delay is not None:
            self._retry_later(canvas_id, delay)

    # --- the worker ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            if isinstance(self.work, LocalWork) and not self.work.pending() and self._running is None:
                self._idle.set()
            try:
                canvas_id = await self.work.take()
            except Exception as exc:  # the database is away: wait, never spin
                failures += 1
                self._log.log(logging.ERROR, f"take:{type(exc).__name__}", "render queue cannot take work: %s", exc)
                await asyncio.sleep(Backoff(0.5, 30.0).delay(failures))
                continue
            failures = 0
            more = False
            try:
                more = await self._turn(canvas_id)
            except Exception as exc:
                self._set_aside(canvas_id, exc)
            try:
                await (self.work.again(canvas_id) if more else self.work.done(canvas_id))
            except Exception as exc:
                self._log.log(logging.ERROR, f"requeue:{type(exc).__name__}", "render queue: %s", exc)
                await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await self._publish_queues(canvas_id)

    async def _turn(self, canvas_id: str) -> bool:
        """One turn of one canvas: record what the cache has, or render one layer. True if more may follow."""
        if not self._quarantines.due(canvas_id):
            return False  # its retry timer marks it again
        if isinstance(self.work, SharedWork):
            self.service.refresh(canvas_id)  # other processes append too
        try:
            state = await self.service.state(canvas_id)
        except CanvasNotFound:
            self._forget(canvas_id)
            return False
        ready = ready_layers(state)
        self._backlog[canvas_id] = self._waiting(state)
        if self._quarantines.clear(canvas_id):
            log.info("canvas %s renders again", canvas_id)
            self._notify(canvas_id, RenderUnblocked().to_json())
        if not ready:
            self._backlog.pop(canvas_id, None)
            return False
        hits = await self._thread.run(self._cached_renders, state)
        if hits:
            await asyncio.gather(*(self._record(canvas_id, layer, record, True) for layer, record in hits))
        else:
            await self._render(state, self._next(canvas_id, ready))
        return True

    def _set_aside(self, canvas_id: str, exc: Exception) -> None:
        reason = f"this canvas cannot be scheduled: {type(exc).__name__}: {exc}"[:1000]
        entry = self._quarantines.fail(canvas_id, reason)
        self.stats["quarantined"] += 1
        self._log.log(
            logging.ERROR,
            f"quarantine:{canvas_id}:{type(exc).__name__}:{exc}",
            "rendering canvas %s set aside (attempt %d, retry in %.0f s): %s",
            canvas_id,
            entry.attempts,
            entry.retry_at - entry.last_attempt,
            reason,
            exc_info=exc,
        )
        self._notify(canvas_id, RenderBlocked(**entry.to_json()).to_json())
        self._retry_later(canvas_id, entry.retry_at - entry.last_attempt)

    def _retry_later(self, canvas_id: str, delay: float) -> None:
        if self._stopping.is_set():
            return
        timer = self._retry_timers.pop(canvas_id, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._retry_timers.pop(canvas_id, None)
            if isinstance(self.work, LocalWork):
                self.work.mark(canvas_id)
            else:
                task = loop.create_task(self.work.scan([canvas_id]))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        self._retry_timers[canvas_id] = loop.call_later(delay, again)

    def _forget(self, canvas_id: str) -> None:
        self._backlog.pop(canvas_id, None)
        self._quarantines.clear(canvas_id)
        self._turns.pop(canvas_id, None)

    def _next(self, canvas_id: str, ready: list[Layer]) -> Layer:
        """Users take turns within a canvas: the ready layer of whoever was served longest ago (oldest first)."""
        turns = self._turns.setdefault(canvas_id, {})
        layer = min(ready, key=lambda layer: (turns.get(self._user_of(canvas_id, layer.id), -1), layer.created_seq))
        self._served += 1
        turns[self._user_of(canvas_id, layer.id)] = self._served
        return layer

    def _user_of(self, canvas_id: str, layer_id: str) -> str:
        return self._requested_by.get((canvas_id, layer_id), "")

    def _cached_renders(self, state: CanvasState) -> list[tuple[Layer, RenderRecord]]:
        """Every layer needing a render whose output the cache already has — including layers whose inputs
        are only now found in the cache — so that a canvas made of known renders is recorded in one commit.
        A layer that cannot even be keyed is left to `_render`, which records why."""
        images_of = rendered_images(state)
        hits: list[tuple[Layer, RenderRecord]] = []
        for layer in state.topological_order():
            operation = self.operations.get(layer.operation)
            if layer.status not in NEEDS_RENDER or operation is None:
                continue
            try:
                record = self._cached_record(layer, resolve_inputs(operation, layer, images_of), state.canvas_id)
            except Exception:
                continue
            if record is not None:
                images_of[layer.id] = (record.output, *record.extra)
                hits.append((layer, record))
        return hits

    def _cached_record(self, layer: Layer, input_images: dict[str, str], canvas_id: str) -> RenderRecord | None:
        """The render cache's record for this layer's key, if every image it names is still in the blob store
        (and, with a private cache, if the canvas already names its image)."""
        return self._usable(self.store.find_render(self._key(layer, input_images)), canvas_id)

    def _usable(self, record: RenderRecord | None, canvas_id: str) -> RenderRecord | None:
        if record is None or not all(self.blobs.exists(sha) for sha in (record.output, *record.extra)):
            return None
        if self.private_cache and not self.store.names_blob(canvas_id, record.output):
            return None
        return record

    def _key(self, layer: Layer, input_images: dict[str, str]) -> str:
        fingerprint = self.renderer().fingerprint_for(layer.operation, params=layer.params)
        return cache_key(layer.operation, layer.params, layer.seed, input_images, fingerprint)

    async def _render(self, state: CanvasState, layer: Layer) -> None:
        canvas_id = state.canvas_id
        try:
            operation = self.operations.get(layer.operation)
            if operation is None:
                raise InputUnavailable(f"operation {layer.operation!r} is not available on this server")
            input_images = resolve_inputs(operation, layer, rendered_images(state))
            estimate = estimate_layer(operation, layer, state, self.limits)
        except Exception as exc:
            await self._record_failure(canvas_id, layer, failure_reason(exc))
            return
        running = _Running(
            canvas_id,
            layer.id,
            layer.revision,
            self._user_of(canvas_id, layer.id),
            frozenset({layer.id, *state.ancestors(layer.id)}),
            expected_s=self.times.seconds(layer.operation, estimate),
        )
        self._running = running
        loop = asyncio.get_running_loop()
        render_size = estimate.size if estimate is not None else None

        def tell(notice: RenderNotice) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a render left behind at shutdown
                loop.call_soon_threadsafe(self._notify, canvas_id, notice)

        def progress(step: int, total: int) -> None:
            running.step, running.total = step, total
            tell(Progress(layer.id, step, total, running.stage).to_json())

        def stage(name: str) -> None:
            running.stage = name
            tell(Progress(layer.id, running.step, running.total, name).to_json())

        def preview(step: int, total: int, picture: PreviewImage) -> None:
            final = render_size or (picture.image.width * 8, picture.image.height * 8)
            image, (width, height) = picture.encode()
            tell(Preview(layer.id, step, total, width, height, final[0], final[1], image).to_json())

        self._notify(canvas_id, RenderStarted(layer.id, layer.revision, running.user).to_json())
        started = time.perf_counter()
        try:
            record, cached = await self._thread.run(
                self._materialise,
                canvas_id,
                layer,
                input_images,
                progress,
                running.cancel.is_set,
                preview if self.previews else None,
                stage,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._stopping.is_set() and running.cancel.is_set():
                return  # shutting down: the layer stays pending for the next start
            cancelled = isinstance(exc, RenderCancelled)
            reason = "render cancelled" if cancelled else failure_reason(exc)
            if not cancelled and not self._said_by_load(reason):
                self._log.log(logging.WARNING, f"render:{reason}", "render of %s/%s failed: %s",
                              canvas_id, layer.id, reason)  # fmt: skip
            await self._record_failure(canvas_id, layer, reason, cancelled=cancelled)
            return
        finally:
            self._running = None
        if not cached:
            self.times.record(layer.operation, estimate, time.perf_counter() - started)
        await self._record(canvas_id, layer, record, cached)

    async def _record(self, canvas_id: str, layer: Layer, record: RenderRecord, cached: bool) -> None:
        self.stats["cache_hits" if cached else "computed"] += 1
        command = RecordRender(
            layer_id=layer.id,
            revision=layer.revision,
            output=record.output,
            width=record.width,
            height=record.height,
            fingerprint=record.fingerprint,
            duration_ms=record.duration_ms,
            cache_key=record.cache_key,
            cached=cached,
            extra_outputs=record.extra,
        )
        try:
            await self.service.execute(canvas_id, command, ENGINE_ACTOR)
        except (CommandRejected, CanvasNotFound) as exc:  # edited or deleted meanwhile: the result is moot
            log.info("render of %s/%s not recorded: %s", canvas_id, layer.id, exc)
            self.stats["discarded"] += 1
            return
        self._notify(canvas_id, RenderFinished(layer.id, record.output, cached).to_json())
        if record.extra:
            await self._add_output_layers(canvas_id, layer, len(record.extra))

    async def _add_output_layers(self, canvas_id: str, layer: Layer, extra: int) -> None:
        """Several images make several layers: one `layer_output` layer per further image, made once (a layer
        the user deleted stays deleted; re-rendering the source updates the others)."""
        state = await self.service.state(canvas_id)
        for index in range(1, extra + 1):
            layer_id = output_layer_id(layer.id, index)
            if layer_id in state.layers or layer_id in state.deleted or layer.id not in state.layers:
                continue
            command = AddLayer(
                layer_id=layer_id,
                operation="layer_output",
                params={"source": layer.id, "index": index},
                name=f"{state.layers[layer.id].name} · {index + 1}",
            )
            try:
                await self.service.execute(canvas_id, command, ENGINE_ACTOR)
            except (CommandRejected, CanvasNotFound) as exc:
                log.info("output layer %s not added: %s", layer_id, exc)

    def _materialise(
        self,
        canvas_id: str,
        layer: Layer,
        input_images: dict[str, str],
        progress: Callable[[int, int], None],
        cancelled: Callable[[], bool],
        preview: Callable[[int, int, PreviewImage], None] | None = None,
        stage: Callable[[str], None] | None = None,
    ) -> tuple[RenderRecord, bool]:
        """On the render thread: the cached record of this layer's key, or render, store the PNGs in the blob
        store and remember them in the render cache. Returns (record, found in the cache)."""
        from PIL import Image

        from engine.png import encode_png

        if cancelled():
            raise RenderCancelled("render cancelled")
        key = self._key(layer, input_images)
        found = self._usable(self.store.find_render(key), canvas_id)
        if found is not None:
            return found, True
        images = {path: Image.open(io.BytesIO(self.blobs.get(sha))) for path, sha in input_images.items()}
        started = time.perf_counter()
        try:
            result = self.renderer().render(
                layer.operation, layer.params, layer.seed, images, progress, cancelled, preview=preview, stage=stage
            )
        except Exception:
            raise
        except BaseException as exc:
            # An operation calling sys.exit() or raising KeyboardInterrupt: in the event loop that would stop the
            # whole server (and, the layer still pending, again on every restart). It is a failed render.
            raise OperationAborted(f"the operation raised {type(exc).__name__}: {exc}") from None
        shas = [self.blobs.put(encode_png(image)) for image in result.images]
        record = RenderRecord(
            cache_key=key,
            output=shas[0],
            width=result.images[0].width,
            height=result.images[0].height,
            fingerprint=result.fingerprint,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            extra=tuple(shas[1:]),
        )
        self.store.save_render(record)
        return record, False

    async def _record_failure(self, canvas_id: str, layer: Layer, reason: str, cancelled: bool = False) -> None:
        self.stats["cancelled" if cancelled else "failed"] += 1
        try:
            await self.service.execute(
                canvas_id, RecordFailure(layer_id=layer.id, revision=layer.revision, reason=reason[:4000]), ENGINE_ACTOR
            )
        except (CommandRejected, CanvasNotFound) as exc:
            log.info("failure of %s/%s not recorded: %s", canvas_id, layer.id, exc)
        ended = RenderCancelledNews if cancelled else RenderFailed
        self._notify(canvas_id, ended(layer.id, reason).to_json())

    def _notify(self, canvas_id: str, notice: RenderNotice) -> None:
        for listener in list(self._listeners):
            try:
                listener(canvas_id, notice)
            except Exception:
                log.exception("render listener failed")

    # --- cancelling ------------------------------------------------------------------------------------

    async def cancel(self, canvas_id: str, layer_id: str, actor: str) -> bool:
        """Stop a running render (within one model block) or keep a queued one from starting. False if neither."""
        running = self._running
        if running is not None and (running.canvas_id, running.layer_id) == (canvas_id, layer_id):
            running.cancelled_by = actor
            running.cancel.set()
            return True
        state = await self.service.state(canvas_id)
        layer = state.layers.get(layer_id)
        if layer is None or layer.status not in NEEDS_RENDER:
            return False
        await self._record_failure(canvas_id, layer, f"cancelled by {actor}", cancelled=True)
        return True

    # --- what is waiting, and why ----------------------------------------------------------------------

    def _waiting(self, state: CanvasState) -> list[_Waiting]:
        waiting: list[_Waiting] = []
        for layer in waiting_layers(state)[:MAX_QUEUE_ITEMS]:
            operation = self.operations.get(layer.operation)
            expected = None
            if operation is not None:
                with contextlib.suppress(Exception):
                    expected = self.times.seconds(layer.operation, estimate_layer(operation, layer, state, self.limits))
            blocked_by = None
            for parent_id in layer.parents:
                parent = state.layers.get(parent_id)
                if parent is None or parent.status == "rendered":
                    continue
                name = parent.name
                if parent.status == "failed" and is_cancellation(parent.error):  # stopped by a user: no error
                    blocked_by = f"its input “{name}” was cancelled; render that layer again first"
                elif parent.status == "failed":
                    blocked_by = f"its input “{name}” failed; retry that layer first"
                else:
                    blocked_by = f"waiting for “{name}” to render"
                break
            waiting.append(_Waiting(layer.id, self._user_of(state.canvas_id, layer.id), expected, blocked_by))
        return waiting

    def queue(self, state: CanvasState) -> list[dict[str, Any]]:
        """The layers of a canvas still to render, in order, the one rendering now first, each with how many
        renders (server-wide) come before it, an ETA from measured render times, and why it waits."""
        canvas_id = state.canvas_id
        try:
            mine = self._waiting(state)
        except Exception:  # a canvas that cannot be scheduled: its `blocked` says why
            return []
        running = self._running
        if running is not None and running.canvas_id == canvas_id:
            mine.sort(key=lambda item: item.layer_id != running.layer_id)
        # What waits on other canvases (the one rendering there is counted once, as `running`), and whether
        # that canvas's turn comes before this one's in each round (LocalWork/SharedWork order).
        order = self._turn_order
        mine_at = order.index(canvas_id) if canvas_id in order else len(order)
        others: list[tuple[list[_Waiting], bool]] = []
        for other, entries in self._backlog.items():
            if other == canvas_id:
                continue
            if running is not None and other == running.canvas_id:
                entries = [entry for entry in entries if entry.layer_id != running.layer_id]
            before = other in order and order.index(other) < mine_at
            others.append((entries, before))
        head = 0.0 if running is None else running.remaining_s()
        running_elsewhere = running is not None and running.canvas_id != canvas_id
        items: list[dict[str, Any]] = []
        turn = 0
        own_before: float | None = 0.0
        for index, item in enumerate(mine):
            rendering = running is not None and running.canvas_id == canvas_id and running.layer_id == item.layer_id
            if rendering:
                eta = running.remaining_s() if running is not None else None
                items.append(self._item(item, index, True, 0, 0, eta, None))
                continue
            elsewhere = [entries[: turn + 1 if before else turn] for entries, before in others]
            ahead_elsewhere = sum(len(entries) for entries in elsewhere) + (1 if running_elsewhere else 0)
            ahead = ahead_elsewhere + turn + (1 if running is not None and not running_elsewhere else 0)
            eta = _total(
                [head, own_before, item.expected_s, *(entry.expected_s for entries in elsewhere for entry in entries)]
            )
            reason = item.blocked_by or _behind(ahead, ahead_elsewhere, eta)
            items.append(self._item(item, index, False, ahead, ahead_elsewhere, eta, reason))
            own_before = _total([own_before, item.expected_s])
            turn += 1
        return items

    @staticmethod
    def _item(
        item: _Waiting,
        position: int,
        rendering: bool,
        ahead: int,
        elsewhere: int,
        eta: float | None,
        reason: str | None,
    ) -> dict[str, Any]:
        return {
            "layer_id": item.layer_id,
            "position": position,
            "rendering": rendering,
            "user": item.user or None,
            "ahead": ahead,
            "ahead_elsewhere": elsewhere,
            "eta_s": None if eta is None else round(eta, 1),
            "wait_reason": reason,
        }

    def blocked(self, canvas_id: str) -> dict[str, Any] | None:
        entry = self._quarantines.get(canvas_id)
        return None if entry is None else entry.to_json()

    def running(self) -> dict[str, Any] | None:
        running = self._running
        if running is None:
            return None
        return {
            "canvas_id": running.canvas_id,
            "layer_id": running.layer_id,
            "user": running.user or None,
            "step": running.step,
            "total": running.total,
            "stage": running.stage,
            "elapsed_s": round(time.monotonic() - running.started, 1),
            "eta_s": None if running.remaining_s() is None else round(running.remaining_s() or 0.0, 1),
            "cancelling": running.cancel.is_set(),
        }

    async def refresh_backlog(self) -> list[str]:
        """Bring the backlog up to date with every canvas marked as having work, also those not yet taken."""
        try:
            marked = await self.work.waiting()
        except Exception:
            marked = []
        self._turn_order = marked
        running = self._running
        for canvas_id in list(dict.fromkeys([*([running.canvas_id] if running else []), *marked]))[:200]:
            if self._quarantines.get(canvas_id) is not None:
                continue
            with contextlib.suppress(Exception):
                waiting = self._waiting(await self.service.state(canvas_id))
                if waiting:
                    self._backlog[canvas_id] = waiting
                else:
                    self._backlog.pop(canvas_id, None)
        return list(dict.fromkeys([*([running.canvas_id] if running else []), *self._backlog, *marked,
                                   *self._quarantines.by_canvas]))  # fmt: skip

    async def overview(self) -> dict[str, Any]:
        """The whole server's render queue, for admins: what renders now, for whom, and what waits where."""
        canvases = []
        for canvas_id in (await self.refresh_backlog())[:200]:
            try:
                state = await self.service.state(canvas_id)
                queue = self.queue(state)
                name = state.name
            except Exception:
                queue, name = [], None
            canvases.append({"canvas_id": canvas_id, "name": name, "queue": queue, "blocked": self.blocked(canvas_id)})
        return {"rendering": self.running(), "canvases": canvases, "stats": dict(self.stats)}

    async def _publish_queues(self, current: str) -> None:
        """Tell the canvas just served, and at most once a second every canvas with work, where their renders
        stand (a turn can take milliseconds: the whole server's queue is not recomputed at that pace)."""
        canvases = [current]
        now = time.monotonic()
        if now - self._queues_published_at >= QUEUE_NEWS_INTERVAL_S:
            self._queues_published_at = now
            canvases = list(dict.fromkeys([current, *(await self.refresh_backlog())]))[:50]
        for canvas_id in canvases:
            try:
                state = await self.service.state(canvas_id)
            except Exception:
                continue
            self._notify(canvas_id, QueueNews(canvas_id, self.queue(state), self.blocked(canvas_id)).to_json())

    # --- past versions ---------------------------------------------------------------------------------

    async def images_at(self, state: CanvasState) -> dict[str, dict[str, Any]]:
        """The image of every layer of a (past) state that the log or the render cache has; never renders.
        A layer without one says why (`missing`)."""
        return await asyncio.to_thread(self._images_of_state, state, False)

    async def render_images_at(self, state: CanvasState) -> dict[str, dict[str, Any]]:
        """Like `images_at`, rendering (on the render thread, in turn with the queue) what neither has — but
        never a layer that had failed or been cancelled at that version. Nothing is appended to the log."""
        return await self._thread.run(self._images_of_state, state, True)

    def _images_of_state(self, state: CanvasState, render: bool) -> dict[str, dict[str, Any]]:
        images_of: dict[str, tuple[str, ...]] = {}
        found: dict[str, dict[str, Any]] = {}
        for layer in state.topological_order():
            output = layer.output
            if layer.status == "rendered" and output is not None and self.blobs.exists(output.sha256):
                images_of[layer.id] = output.images
                found[layer.id] = {"sha256": output.sha256, "source": "recorded"}
                continue
            try:
                operation = self.operations.get(layer.operation)
                if operation is None:
                    raise InputUnavailable(f"operation {layer.operation!r} is not available on this server")
                inputs = resolve_inputs(operation, layer, images_of)
                record = self._cached_record(layer, inputs, state.canvas_id)
                source = "cache"
                if record is None:
                    if not render or layer.status == "failed":
                        found[layer.id] = {"sha256": None, "missing": _missing(layer)}
                        continue
                    record, cached = self._materialise(
                        state.canvas_id, layer, inputs, lambda step, total: None, self._stopping.is_set
                    )
                    source = "cache" if cached else "rendered"
                images_of[layer.id] = (record.output, *record.extra)
                found[layer.id] = {"sha256": record.output, "source": source}
            except Exception as exc:  # one layer that cannot be shown does not hide the others
                found[layer.id] = {"sha256": None, "missing": failure_reason(exc)}
        # Images are served under the canvas's access: what this version shows becomes the canvas's too.
        shown = [image["sha256"] for image in found.values() if image.get("source") in ("cache", "rendered")]
        if shown:
            self.store.add_blob_names(state.canvas_id, shown)
        return found


def _missing(layer: Layer) -> str:
    if layer.status == "failed":
        return f"failed at this version: {layer.error or 'no reason recorded'}"
    return "not rendered at this version"


def _total(parts: Sequence[float | None]) -> float | None:
    return None if any(part is None for part in parts) else float(sum(part for part in parts if part is not None))


def _behind(ahead: int, elsewhere: int, eta: float | None) -> str:
    if ahead == 0:
        return "next to render"
    about = "" if eta is None else f", about {_duration(eta)}"
    renders = "render" if ahead == 1 else "renders"
    if elsewhere == ahead:
        return f"behind {ahead} {renders} on other canvases{about}"
    if elsewhere:
        return f"behind {ahead} {renders} ({elsewhere} on other canvases){about}"
    return f"behind {ahead} {renders} on this canvas{about}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
