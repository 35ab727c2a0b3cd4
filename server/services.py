"""The composition root: the one place where the server's pieces are built and wired together.

`open_services(settings)` opens the store (migrated), the blob store, the operations (with what the model's
files say of them), the decider, the canvas service and, by role, the render queue, tokens, live hub and the
PostgreSQL bus; `Services.close()` stops them in the right order. The app (server/app.py), the CLI's
commands and the worker (server/cli.py) all start from here, so a new piece is wired once.

Roles: "server" (the web app: everything `settings` asks for), "worker" (a render worker of a PostgreSQL
deployment: no tokens, no live hub, claims canvases from render_jobs), "tool" (a CLI command that writes a
canvas: store, blobs, operations, the canvas service; no renders).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.models.progress import LoadProgress
from engine.operation import OperationRegistry
from server.auth import TokenStore
from server.blobstore import BlobStore, open_blob_store
from server.config import Settings
from server.core.decide import Decider
from server.heap import freeze_long_lived
from server.image_checks import configure_pillow
from server.library import open_library
from server.service import CanvasService
from server.store.sql import SQLEventStore

if TYPE_CHECKING:
    from engine.models.library import ModelLibrary
    from engine.render import Renderer
    from server.bus import PostgresBus
    from server.live import LiveHub
    from server.render_queue import RenderQueue

log = logging.getLogger("opendream")
Role = Literal["server", "worker", "tool"]


@dataclass
class Services:
    settings: Settings
    store: SQLEventStore
    blobs: BlobStore
    canvases: CanvasService
    operations: OperationRegistry
    renders: RenderQueue | None
    tokens: TokenStore
    live: LiveHub | None
    admin_token: str
    role: Role = "server"
    bus: PostgresBus | None = None
    model: dict[str, object] | None = None  # what the model's files say, before it loads (/api/health)
    model_progress: LoadProgress | None = None
    library: ModelLibrary | None = None  # server/library.py: the models, LoRAs and companions it offers
    rescanning: asyncio.Lock = field(default_factory=asyncio.Lock)  # server/library.py rescan: one at a time

    async def close(self) -> None:
        """Stop everything `open_services` started, the last started first."""
        if self.role == "worker":  # its renders' last news still go out through the bus
            if self.renders is not None:
                await self.renders.stop()
            if self.bus is not None:
                await self.bus.stop()
        else:
            if self.bus is not None:
                await self.bus.stop()
            if self.live is not None:
                await self.live.stop()
            if self.renders is not None:
                await self.renders.stop()
        await self.canvases.stop()
        self.store.close()


def load_operations(settings: Settings) -> OperationRegistry:
    """Built-ins, installed extensions (entry points) and the configured extensions directory."""
    from engine.discovery import load_registry

    registry = load_registry(settings.extensions_dir)
    for name, reason in sorted(registry.unavailable().items()):
        log.warning("operation %s is unavailable: %s", name, reason)
    return registry


def describe_model(settings: Settings, registry: OperationRegistry) -> dict[str, object]:
    """The model's family and what it can run, told from its files before anything loads; the operations it
    cannot run are listed as unavailable with the reason (the client greys them out)."""
    from engine.models.families import UnknownFamily, availability, model_capabilities

    try:
        problem = availability(settings.model)
        family, capabilities = model_capabilities(settings.model, settings.model_family)
    except (ValueError, UnknownFamily) as exc:
        log.warning("opendream: the model %s cannot be told apart before loading: %s", settings.model, exc)
        return {"spec": settings.model, "family": None, "problem": str(exc)}
    if problem:
        log.warning("opendream: %s", problem)
    for name in registry.names():
        operation = registry.get(name)
        kind = getattr(operation, "pipeline_kind", None)
        reason = capabilities.get(kind) if kind else None
        if reason:
            registry.mark_unavailable(name, reason)
    if family is not None:
        log.info("opendream: model %s is %s (native %d px)", settings.model, family.title, family.native_size)
    return {"spec": settings.model, "family": None if family is None else family.describe(), "problem": problem}


def install_family_defaults(
    settings: Settings, registry: OperationRegistry, library: ModelLibrary | None = None
) -> None:
    """The generating operations' size defaults follow the model's family, their steps the server's limits
    (engine.defaults), their `model` / `loras` choices the library: told from files at start, like the family."""
    from engine.defaults import apply_family_defaults

    side = settings.working_side or settings.family_native_side
    for name, changed in apply_family_defaults(registry, side, settings.render_limits, library).items():
        log.info("opendream: %s defaults to %s", name, ", ".join(f"{key}={value}" for key, value in changed.items()))


def renderer_factory(
    settings: Settings,
    operations: OperationRegistry,
    blobs: BlobStore | None = None,
    progress: LoadProgress | None = None,
    library: ModelLibrary | None = None,
) -> Callable[[], Renderer]:
    def build() -> Renderer:
        # Imported here: torch and diffusers take seconds to import, and only the render thread needs them.
        from engine.models.loader import ModelManager, ModelOptions
        from engine.render import Renderer

        options = ModelOptions(
            device=settings.device,
            attention_slicing=settings.attention_slicing,
            vae_tiling=settings.vae_tiling,
            models_dir=settings.models_dir,
            hash_cache=settings.models_dir / "weight-hashes.json",
            taesd=settings.taesd,
            family=settings.model_family,
        )
        return Renderer(
            ModelManager(settings.model, options, progress),
            operations,
            reproducible=settings.reproducible or None,
            blob_reader=None if blobs is None else blobs.get,
            limits=settings.render_limits,
            library=library,
        )

    return build


def open_store(settings: Settings, migrate: bool = True) -> SQLEventStore:
    """The event store (migrated to the current schema unless told not to)."""
    if migrate:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLEventStore(settings.database_url)
    if migrate:
        store.migrate()
    return store


def open_blobs(settings: Settings) -> BlobStore:
    return open_blob_store(settings.blobs, settings.blob_dir)


def make_decider(settings: Settings, operations: OperationRegistry, store: SQLEventStore, blobs: BlobStore) -> Decider:
    return Decider(operations, blob_exists=blobs.exists, limits=settings.render_limits, blob_named=store.names_blob)


@contextlib.contextmanager
def reading_services(settings: Settings, operations: OperationRegistry) -> Iterator[CanvasService]:
    """A canvas service that only reads (a CLI command that exports or replays a stored canvas): no writer, no
    migration. Closes the store after."""
    store = open_store(settings, migrate=False)
    try:
        yield CanvasService(store, make_decider(settings, operations, store, open_blobs(settings)))
    finally:
        store.close()


async def open_services(
    settings: Settings,
    operations: OperationRegistry | None = None,
    *,
    role: Role = "server",
    lease_s: float = 30.0,
    renderer: Callable[[], Renderer] | None = None,
) -> Services:
    """Open, wire and start everything `role` needs (see the module's docstring). `renderer` replaces the
    renderer the settings describe (a bench that renders with one it has already loaded)."""
    from server.render_jobs import LocalWork, SharedWork

    configure_pillow(settings.image_limits)
    store = open_store(settings)
    registry = operations if operations is not None else load_operations(settings)
    model = describe_model(settings, registry) if role == "server" else None
    library = open_library(settings) if role != "tool" else None
    if role != "tool":  # the same defaults as the servers that decide the commands
        install_family_defaults(settings, registry, library)
    blobs = open_blobs(settings)
    canvases = CanvasService(
        store, make_decider(settings, registry, store, blobs), snapshot_every=settings.snapshot_every
    )
    await canvases.start()
    services = Services(settings, store, blobs, canvases, registry, None, TokenStore(store.writer_engine,
                        store.reader_engine), None, "", role, model=model, library=library)  # fmt: skip
    renders: RenderQueue | None = None
    if role == "worker" or (role == "server" and settings.render):
        from server.render_queue import RenderQueue

        progress = LoadProgress()  # "model: ...": the log names the spec once, at start
        shared = role == "worker" or settings.shared
        work = SharedWork(store.writer_engine, lease_s=lease_s) if shared else LocalWork()
        make_renderer = renderer or renderer_factory(settings, registry, blobs, progress, library)
        renders = RenderQueue(
            canvases, store, blobs, registry, make_renderer, work,
            limits=settings.render_limits, previews=settings.previews, shutdown_grace_s=settings.shutdown_grace_s,
            private_cache=settings.private_render_cache,
        )  # fmt: skip
        services.renders, services.model_progress = renders, progress
    if role == "worker":
        from server.bus import PostgresBus

        bus = PostgresBus(settings.database_url, canvases.on_remote_head, on_models=_rescanning(services))
        await bus.start()
        services.bus = bus
        loop = asyncio.get_running_loop()
        assert renders is not None

        sending: set[asyncio.Task[None]] = set()

        def relay(canvas_id: str, notice: dict[str, Any]) -> None:  # render news to the web replicas' clients
            task = loop.create_task(bus.publish(canvas_id, notice))
            sending.add(task)  # kept until done: the loop holds only weak references to its tasks
            task.add_done_callback(sending.discard)

        renders.subscribe(relay)
        await renders.start(scan_existing=False)
        renders.preload_model(services.model_progress)  # the log tells how far loading the model has come
        return services
    if renders is not None:
        await renders.start()
        # Loaded now, in the background, not by the first render (which waits for it); /api/health tells.
        renders.preload_model(services.model_progress)
    if role == "server":
        from server.live import LiveHub, LiveLimits

        services.admin_token = await asyncio.to_thread(services.tokens.admin_token, settings.admin_token_path)
        live_limits = LiveLimits(
            outbound_bytes=settings.ws_outbound_bytes,
            max_connections_per_address=settings.ws_max_per_address,
            max_connections_per_token=settings.ws_max_per_token,
        )
        live = LiveHub(canvases, services.tokens, renders, live_limits)
        live.start()
        services.live = live
        if settings.shared:  # other replicas and workers: hear of their appends, presence and progress
            from server.bus import PostgresBus

            bus = PostgresBus(settings.database_url, canvases.on_remote_head, live.deliver_ephemeral,
                              on_models=_rescanning(services))  # fmt: skip
            await bus.start()
            live.relay = bus.publish
            services.bus = bus
    freeze_long_lived()  # the server's modules and settings, before the first request (server/heap.py)
    return services


def _rescanning(services: Services) -> Callable[[], None]:
    """The bus's `on_models`: another process scanned the models directory again; this one does too."""
    scans: set[asyncio.Task[None]] = set()

    async def scan() -> None:
        from server.library import rescan

        try:
            await rescan(services)
            log.info("opendream: the models directory was scanned again, as another process asked")
        except Exception:
            log.exception("scanning the models directory again failed")

    def on_models() -> None:
        if sum(not task.done() for task in scans) >= 2:  # one scanning, one to follow: a flood adds nothing more
            return
        task = asyncio.get_running_loop().create_task(scan())
        scans.add(task)  # kept until done: the loop holds only weak references to its tasks
        task.add_done_callback(scans.discard)

    return on_models


@contextlib.asynccontextmanager
async def running_services(
    settings: Settings, operations: OperationRegistry | None = None, *, role: Role = "server", lease_s: float = 30.0
) -> AsyncIterator[Services]:
    services = await open_services(settings, operations, role=role, lease_s=lease_s)
    try:
        yield services
    finally:
        await services.close()
