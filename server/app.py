"""The Starlette application: routes, error handling, and the services they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from engine.models.progress import LoadProgress
from engine.operation import OperationRegistry
from server import api
from server.auth import TokenStore
from server.blobs import BlobStore, open_blob_store
from server.bus import PostgresBus
from server.config import Settings
from server.core.decide import Decider
from server.http import ApiError, JSONResponse
from server.images import configure_pillow
from server.live import LiveHub, LiveLimits
from server.renders import RenderQueue
from server.security import SECURITY_HEADERS, CreationLimiter, EdgeGuard
from server.service import CanvasService
from server.store.sql import SQLEventStore
from server.work import LocalWork, SharedWork

if TYPE_CHECKING:
    from engine.render import Renderer

log = logging.getLogger("opendream")
CLIENT_DIR = Path(__file__).resolve().parents[1] / "client"


@dataclass
class Services:
    settings: Settings
    store: SQLEventStore
    blobs: BlobStore
    canvases: CanvasService
    operations: OperationRegistry
    renders: RenderQueue | None
    tokens: TokenStore
    live: LiveHub
    admin_token: str


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


def install_family_defaults(settings: Settings, registry: OperationRegistry) -> None:
    """The generating operations' size defaults follow the model's family, their steps the server's limits
    (engine.defaults): told from files at start, like the family."""
    from engine.defaults import apply_family_defaults

    side = settings.working_side or settings.family_native_side
    for name, changed in apply_family_defaults(registry, side, settings.render_limits).items():
        log.info("opendream: %s defaults to %s", name, ", ".join(f"{key}={value}" for key, value in changed.items()))


def renderer_factory(
    settings: Settings,
    operations: OperationRegistry,
    blobs: BlobStore | None = None,
    progress: LoadProgress | None = None,
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
        )

    return build


def create_app(settings: Settings | None = None, operations: OperationRegistry | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        configure_pillow(settings.image_limits)
        store = SQLEventStore(settings.database_url)
        store.migrate()
        registry = operations if operations is not None else load_operations(settings)
        model = describe_model(settings, registry)
        install_family_defaults(settings, registry)
        blobs = open_blob_store(settings.blobs, settings.blob_dir)
        limits = settings.render_limits
        service = CanvasService(
            store,
            Decider(registry, blob_exists=blobs.exists, limits=limits, blob_named=store.names_blob),
            snapshot_every=settings.snapshot_every,
        )
        await service.start()
        renders = None
        progress = None
        if settings.render:
            progress = LoadProgress()  # "model: ...": the log names the spec once, at start
            work = SharedWork(store.writer_engine) if settings.shared else LocalWork()
            factory = renderer_factory(settings, registry, blobs, progress)
            renders = RenderQueue(
                service,
                store,
                blobs,
                registry,
                factory,
                work,
                limits=limits,
                previews=settings.previews,
                shutdown_grace_s=settings.shutdown_grace_s,
                private_cache=settings.private_render_cache,
            )
            await renders.start()
            # Loaded now, in the background, not by the first render (which waits for it); /api/health tells.
            renders.preload_model(progress)
        tokens = TokenStore(store.writer_engine, store.reader_engine)
        admin_token = await asyncio.to_thread(tokens.admin_token, settings.admin_token_path)
        live_limits = LiveLimits(
            outbound_bytes=settings.ws_outbound_bytes,
            max_connections_per_address=settings.ws_max_per_address,
            max_connections_per_token=settings.ws_max_per_token,
        )
        live = LiveHub(service, tokens, renders, live_limits)
        live.start()
        bus = None
        if settings.shared:  # other replicas and workers: hear of their appends, presence and progress
            bus = PostgresBus(settings.database_url, service.on_remote_head, live.deliver_ephemeral)
            await bus.start()
            live.relay = bus.publish
        app.state.model = model
        app.state.model_progress = progress
        app.state.services = Services(settings, store, blobs, service, registry, renders, tokens, live, admin_token)
        app.state.creations = CreationLimiter(settings.creations_per_minute, settings.creation_burst)
        log.info("opendream: data in %s, database %s", settings.data_dir, settings.database_url)
        log.info("opendream: admin token in %s", settings.admin_token_path)
        try:
            yield
        finally:
            if bus is not None:
                await bus.stop()
            await live.stop()
            if renders is not None:
                await renders.stop()
            await service.stop()
            store.close()

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.app.state.services.live.serve(websocket)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def not_found(request: Request, exc: Exception) -> Response:
        return ApiError(404, "not_found", f"no route for {request.method} {request.url.path}").response()

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}").response()

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": {"code": "internal_error", "message": "internal server error", "field": None}},
            status_code=500,
            headers=SECURITY_HEADERS,  # sent outside EdgeGuard, which adds them to every other response
        )

    return Starlette(
        routes=[
            Route("/api/health", api.health),
            Route("/api/session", api.local_session),
            Route("/api/operations", api.list_operations),
            Route("/api/canvases", api.list_canvases, methods=["GET"]),
            Route("/api/canvases", api.create_canvas, methods=["POST"]),
            Route("/api/canvases/{canvas_id}", api.get_canvas),
            Route("/api/canvases/{canvas_id}/state", api.get_state),
            Route("/api/canvases/{canvas_id}/events", api.get_events),
            Route("/api/canvases/{canvas_id}/commands", api.post_command, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/renders", api.get_renders),
            Route("/api/canvases/{canvas_id}/images", api.get_images, methods=["GET"]),
            Route("/api/canvases/{canvas_id}/images", api.render_images, methods=["POST"]),
            Route("/api/renders", api.get_all_renders),
            Route("/api/canvases/{canvas_id}/layers/{layer_id}/cancel", api.cancel_render, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/fork", api.fork_canvas, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/workflow", api.export_workflow_route),
            Route("/api/canvases/{canvas_id}/composite.png", api.composite_png_route),
            Route("/api/canvases/{canvas_id}/layers/{layer_id}/image.png", api.layer_png),
            Route("/api/workflows", api.import_workflow_route, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/restore", api.restore_version, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/shares", api.create_share, methods=["POST"]),
            Route("/api/canvases/{canvas_id}/shares", api.list_shares, methods=["GET"]),
            Route("/api/canvases/{canvas_id}/shares/{share_id}", api.revoke_share, methods=["DELETE"]),
            Route("/api/blobs", api.upload_blob, methods=["POST"]),
            Route("/api/blobs/{sha256}", api.get_blob),
            Route("/api/canvases/{canvas_id}/blobs/{sha256}", api.get_canvas_blob),
            WebSocketRoute("/ws/canvases/{canvas_id}", websocket_endpoint),
            # The browser client: static files, no build step.
            Mount("/", StaticFiles(directory=CLIENT_DIR, html=True, check_dir=False), name="client"),
        ],
        exception_handlers={ApiError: api_error, 404: not_found, 405: method_not_allowed, 500: server_error},
        middleware=[Middleware(EdgeGuard, settings=settings)],  # Host, Origin, security headers, access log
        lifespan=lifespan,
    )
