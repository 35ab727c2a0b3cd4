"""The Starlette application: routes and error handling over the services server/services.py opens."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from engine.operation import OperationRegistry
from server import api, library
from server.config import Settings
from server.http import ApiError, JSONResponse
from server.security import SECURITY_HEADERS, CreationLimiter, EdgeGuard
from server.services import open_services

log = logging.getLogger("opendream")
CLIENT_DIR = Path(__file__).resolve().parents[1] / "client"


def create_app(settings: Settings | None = None, operations: OperationRegistry | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings, operations)  # server/services.py: the composition root
        app.state.model = services.model
        app.state.model_progress = services.model_progress
        app.state.services = services
        app.state.creations = CreationLimiter(settings.creations_per_minute, settings.creation_burst)
        log.info("opendream: data in %s, database %s", settings.data_dir, settings.database_url)
        log.info("opendream: admin token in %s", settings.admin_token_path)
        try:
            yield
        finally:
            await services.close()

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.app.state.services.live.serve(websocket)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def domain_error(request: Request, exc: Exception) -> Response:
        return api.domain_error(exc).response()

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
            Route("/api/models", library.list_models),
            Route("/api/models/rescan", library.rescan_models, methods=["POST"]),
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
            Route("/api/canvases/{canvas_id}/people", api.list_people),
            Route("/api/blobs", api.upload_blob, methods=["POST"]),
            Route("/api/blobs/{sha256}", api.get_blob),
            Route("/api/canvases/{canvas_id}/blobs/{sha256}", api.get_canvas_blob),
            WebSocketRoute("/ws/canvases/{canvas_id}", websocket_endpoint),
            # The browser client: static files, no build step.
            Mount("/", StaticFiles(directory=CLIENT_DIR, html=True, check_dir=False), name="client"),
        ],
        exception_handlers={
            ApiError: api_error,
            **dict.fromkeys(api.DOMAIN_ERRORS, domain_error),  # CommandRejected, CanvasNotFound, ...
            404: not_found,
            405: method_not_allowed,
            500: server_error,
        },
        middleware=[Middleware(EdgeGuard, settings=settings)],  # Host, Origin, security headers, access log
        lifespan=lifespan,
    )
