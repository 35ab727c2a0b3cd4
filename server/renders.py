"""The render queue: turns layers that need pixels into `layer.rendered` / `layer.failed` events.

Level-triggered rather than job-based: a canvas with work is marked dirty, and the worker asks its latest
state which layers are ready (their inputs rendered). Nothing is lost if an event is missed or the server
restarts — on start every canvas is looked at once. Canvases take turns, one render each (fair across
canvases); renders run one at a time in a worker thread (a GPU is a serial resource), off the event loop.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from engine.cache_key import cache_key
from engine.operation import Operation, OperationRegistry, input_refs
from server.blobs import BlobStore
from server.core.commands import AddLayer, RecordFailure, RecordRender
from server.core.decide import CommandRejected
from server.core.events import Event
from server.core.scheduling import NEEDS_RENDER, ready_layers, waiting_layers
from server.core.state import CanvasState, Layer
from server.service import WAKING_EVENTS, CanvasNotFound, CanvasService
from server.store.base import EventStore, RenderRecord
from server.work import LocalWork, SharedWork

if TYPE_CHECKING:
    from engine.render import Renderer

log = logging.getLogger("opendream.renders")
T = TypeVar("T")

ENGINE_ACTOR = "engine"

RenderNotice = dict[str, Any]
"""Ephemeral news for live clients: {"type": "render_started" | "progress" | "render_finished" | ...}."""


@dataclass
class _Running:
    canvas_id: str
    layer_id: str
    revision: int
    cancel: threading.Event = field(default_factory=threading.Event)


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
        if index >= len(made):
            raise InputUnavailable(f"layer {parent!r} made {len(made)} images; there is no image {index}")
        images[path] = made[index]
    return images


class RenderQueue:
    def __init__(
        self,
        service: CanvasService,
        store: EventStore,
        blobs: BlobStore,
        operations: OperationRegistry,
        renderer_factory: Callable[[], Renderer],
        work: LocalWork | SharedWork | None = None,
    ) -> None:
        self.service = service
        self.work = work or LocalWork()
        self.store = store
        self.blobs = blobs
        self.operations = operations
        self._renderer_factory = renderer_factory
        self._renderer: Renderer | None = None
        self._idle = asyncio.Event()
        self._running: _Running | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._listeners: list[Callable[[str, RenderNotice], None]] = []
        # One thread: renders are serial per device, and the model is loaded and used on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opendream-render")
        self.stats: Counter[str] = Counter()

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self, scan_existing: bool = True) -> None:
        self._unsubscribe = self.service.subscribe(self._on_events)
        if scan_existing:  # renders that were queued or in flight when the server stopped
            await self.work.scan([info.id for info in await asyncio.to_thread(self.store.canvases)])
        self._task = asyncio.create_task(self._run(), name="opendream-renders")

    async def stop(self) -> None:
        """Stop taking work; a render in flight is cancelled and its layer stays pending for the next start."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._running is not None:
            self._running.cancel.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.work.close()
        self._executor.shutdown(wait=True)

    def subscribe(self, listener: Callable[[str, RenderNotice], None]) -> Callable[[], None]:
        """`listener(canvas_id, notice)` on the event loop for progress and render status."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_idle(self, timeout: float = 120.0) -> None:
        """Until no canvas has a render that can run now (for tests and scripts)."""
        async with asyncio.timeout(timeout):
            while self.work.pending() or self._running is not None:
                self._idle.clear()
                await self._idle.wait()

    # --- what to render --------------------------------------------------------------------------------

    def _on_events(self, canvas_id: str, events: list[Event] | Any) -> None:
        # Shared work is marked by the append itself, in its transaction.
        if isinstance(self.work, LocalWork) and any(event.type in WAKING_EVENTS for event in events):
            self.work.mark(canvas_id)

    def queue(self, state: CanvasState) -> list[dict[str, Any]]:
        """The layers of a canvas still to render, in order, with the one rendering now first."""
        running = self._running
        layers = waiting_layers(state)
        if running is not None and running.canvas_id == state.canvas_id:
            layers.sort(key=lambda layer: layer.id != running.layer_id)
        return [
            {"layer_id": layer.id, "position": index, "rendering": running is not None and running.layer_id == layer.id}
            for index, layer in enumerate(layers)
        ]

    async def images_at(self, state: CanvasState) -> dict[str, dict[str, Any]]:
        """The image of every layer of a (past) state, rendering on demand what was never rendered or whose
        image is gone; nothing is appended to the log (the results land in the render cache)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._images_of_state, state)

    def _images_of_state(self, state: CanvasState) -> dict[str, dict[str, Any]]:
        images_of: dict[str, tuple[str, ...]] = {}
        found: dict[str, dict[str, Any]] = {}
        for layer in state.topological_order():
            output = layer.output
            if layer.status == "rendered" and output is not None and self.blobs.exists(output.sha256):
                images_of[layer.id] = output.images
                found[layer.id] = {"sha256": output.sha256, "source": "recorded"}
                continue
            operation = self.operations.get(layer.operation)
            try:
                if operation is None:
                    raise InputUnavailable(f"operation {layer.operation!r} is not available")
                inputs = resolve_inputs(operation, layer, images_of)
                record = self._cached_record(layer, inputs)
                source = "cache"
                if record is None:
                    record, source = (
                        self._materialise(layer, inputs, lambda step, total: None, lambda: False),
                        "rendered",
                    )
                images_of[layer.id] = (record.output, *record.extra)
                found[layer.id] = {"sha256": record.output, "source": source}
            except Exception as exc:  # one layer that cannot be shown does not hide the others
                found[layer.id] = {"sha256": None, "error": f"{type(exc).__name__}: {exc}"}
        return found

    async def cancel(self, canvas_id: str, layer_id: str, actor: str) -> bool:
        """Stop a running render between steps, or keep a queued one from starting. False if neither."""
        running = self._running
        if running is not None and (running.canvas_id, running.layer_id) == (canvas_id, layer_id):
            running.cancel.set()
            return True
        state = await self.service.state(canvas_id)
        layer = state.layers.get(layer_id)
        if layer is None or layer.status not in ("pending", "stale"):
            return False
        await self._record_failure(canvas_id, layer, f"cancelled by {actor}", cancelled=True)
        return True

    # --- the worker ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if isinstance(self.work, LocalWork) and not self.work.pending():
                self._idle.set()
            canvas_id = await self.work.take()
            try:
                if isinstance(self.work, SharedWork):
                    self.service.refresh(canvas_id)  # other processes append too
                state = await self.service.state(canvas_id)
            except CanvasNotFound:
                await self.work.done(canvas_id)
                continue
            ready = ready_layers(state)
            if not ready:
                await self.work.done(canvas_id)
                continue
            try:
                hits = await loop.run_in_executor(self._executor, self._cached_renders, state)
                if hits:
                    await asyncio.gather(*(self._record(canvas_id, layer, record, True) for layer, record in hits))
                else:
                    await self._render(state, ready[0])
            except Exception:  # never let one render take the worker down
                log.exception("rendering canvas %s failed unexpectedly", canvas_id)
            await self.work.again(canvas_id)

    def _cached_renders(self, state: CanvasState) -> list[tuple[Layer, RenderRecord]]:
        """Every layer needing a render whose output the cache already has — including layers whose inputs
        are only now found in the cache — so that a canvas made of known renders is recorded in one commit."""
        images_of = rendered_images(state)
        hits: list[tuple[Layer, RenderRecord]] = []
        for layer in state.topological_order():
            operation = self.operations.get(layer.operation)
            if layer.status not in NEEDS_RENDER or operation is None:
                continue
            try:
                input_images = resolve_inputs(operation, layer, images_of)
            except InputUnavailable:
                continue
            record = self._cached_record(layer, input_images)
            if record is not None:
                images_of[layer.id] = (record.output, *record.extra)
                hits.append((layer, record))
        return hits

    def _cached_record(self, layer: Layer, input_images: dict[str, str]) -> RenderRecord | None:
        """The render cache's record for this layer's key, if every image it names is still in the blob store."""
        fingerprint = self.renderer().fingerprint_for(layer.operation)
        record = self.store.find_render(cache_key(layer.operation, layer.params, layer.seed, input_images, fingerprint))
        if record is None or not all(self.blobs.exists(sha) for sha in (record.output, *record.extra)):
            return None
        return record

    async def _render(self, state: CanvasState, layer: Layer) -> None:
        canvas_id = state.canvas_id
        operation = self.operations.get(layer.operation)
        if operation is None:
            await self._record_failure(canvas_id, layer, f"operation {layer.operation!r} is not available")
            return
        try:
            input_images = resolve_inputs(operation, layer, rendered_images(state))
        except InputUnavailable as exc:
            await self._record_failure(canvas_id, layer, str(exc))
            return
        running = _Running(canvas_id, layer.id, layer.revision)
        self._running = running
        loop = asyncio.get_running_loop()

        def progress(step: int, total: int) -> None:
            notice = {"type": "progress", "layer_id": layer.id, "step": step, "total": total}
            loop.call_soon_threadsafe(self._notify, canvas_id, notice)

        self._notify(canvas_id, {"type": "render_started", "layer_id": layer.id, "revision": layer.revision})
        try:
            record = await loop.run_in_executor(
                self._executor, self._materialise, layer, input_images, progress, running.cancel.is_set
            )
        except Exception as exc:
            from engine.errors import RenderCancelled

            cancelled = isinstance(exc, RenderCancelled)
            reason = "render cancelled" if cancelled else f"{type(exc).__name__}: {exc}"
            if not cancelled:
                log.warning("render of %s/%s failed: %s", canvas_id, layer.id, reason)
            await self._record_failure(canvas_id, layer, reason, cancelled=cancelled)
            return
        finally:
            self._running = None
        await self._record(canvas_id, layer, record, False)

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
        notice = {"type": "render_finished", "layer_id": layer.id, "output": record.output, "cached": cached}
        self._notify(canvas_id, notice)
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
        layer: Layer,
        input_images: dict[str, str],
        progress: Callable[[int, int], None],
        cancelled: Callable[[], bool],
    ) -> RenderRecord:
        """In the render thread: render, store the PNGs in the blob store, remember them in the render cache."""
        from PIL import Image

        from engine.png import encode_png

        renderer = self.renderer()
        fingerprint = renderer.fingerprint_for(layer.operation)
        key = cache_key(layer.operation, layer.params, layer.seed, input_images, fingerprint)
        images = {path: Image.open(io.BytesIO(self.blobs.get(sha))) for path, sha in input_images.items()}
        started = time.perf_counter()
        try:
            result = renderer.render(layer.operation, layer.params, layer.seed, images, progress, cancelled)
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
        return record

    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = self._renderer_factory()
        return self._renderer

    async def _record_failure(self, canvas_id: str, layer: Layer, reason: str, cancelled: bool = False) -> None:
        self.stats["cancelled" if cancelled else "failed"] += 1
        try:
            await self.service.execute(
                canvas_id, RecordFailure(layer_id=layer.id, revision=layer.revision, reason=reason), ENGINE_ACTOR
            )
        except (CommandRejected, CanvasNotFound) as exc:
            log.info("failure of %s/%s not recorded: %s", canvas_id, layer.id, exc)
        kind = "render_cancelled" if cancelled else "render_failed"
        self._notify(canvas_id, {"type": kind, "layer_id": layer.id, "reason": reason})

    def _notify(self, canvas_id: str, notice: RenderNotice) -> None:
        for listener in list(self._listeners):
            try:
                listener(canvas_id, notice)
            except Exception:
                log.exception("render listener failed")
