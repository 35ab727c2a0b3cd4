"""HTTP route handlers. Thin: parse and check input, call a service, render JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import secrets
from collections.abc import Callable
from math import ceil
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response

import server
from server.auth import RANK, SHARE_ROLES, Grant, Role, Share, attributed_user
from server.blobstore import BlobNotFound, BlobStore, InvalidBlobName, check_name
from server.composite import composite_png
from server.core.commands import MalformedCommand, parse_envelope
from server.core.decide import CommandRejected
from server.core.state import CanvasState, RenderOutput
from server.heap import collection_paused
from server.http import ApiError, JSONResponse, int_query, read_body, read_json
from server.image_checks import InvalidImage, describe_limits, inspect_image
from server.live import USER_PATTERN
from server.security import local_session_refusal
from server.service import CanvasNotFound
from server.store.sql import PeopleStore
from server.workflow import (
    InvalidWorkflow,
    embed_in_png,
    export_workflow,
    import_workflow,
    load_document,
    parse_workflow,
)
from server.workflow.imports import imported_name

if TYPE_CHECKING:
    from server.services import Services

REJECTION_STATUS = {
    "canvas_not_found": 404,
    "version_conflict": 409,
    "command_id_reused": 409,
    "canvas_exists": 409,
    "stale_revision": 409,
    "storage_error": 503,
    "busy": 503,
    "history_conflict": 409,
    "bad_version": 400,
}
MAX_EVENTS_PAGE = 10_000


def services(request: Request) -> Services:
    return request.app.state.services


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


async def grant_for(request: Request, canvas_id: str | None, role: Role) -> Grant:
    """The caller's grant, if it gives `role` on `canvas_id` (on some canvas, when None); else 401/403."""
    grant = await asyncio.to_thread(services(request).tokens.resolve, bearer_token(request))
    if grant is None:
        raise ApiError(401, "unauthorized", "missing, unknown or revoked token (Authorization: Bearer <token>)")
    allowed = grant.allows(canvas_id, role) if canvas_id is not None else RANK[grant.role] >= RANK[role]
    if not allowed:
        where = f"canvas {canvas_id!r}" if canvas_id is not None else "any canvas"
        raise ApiError(403, "forbidden", f"this {grant.role} token does not allow {role} access to {where}")
    return grant


def actor_of(request: Request, grant: Grant) -> str:
    """Who the events are attributed to: derived from the credential (`attributed_user`); the
    `X-Opendream-User` header only tells apart the people who share one token."""
    user = request.headers.get("x-opendream-user", "").strip()
    return attributed_user(grant, user if USER_PATTERN.match(user) else None)


def rejected(exc: CommandRejected) -> ApiError:
    return ApiError(REJECTION_STATUS.get(exc.code, 422), exc.code, exc.message, exc.field)


# The domain's errors as API errors, for every route (server/app.py installs them as Starlette's exception
# handlers): a handler lets them rise instead of repeating the same try/except.
DOMAIN_ERRORS: dict[type[Exception], Callable[[Any], ApiError]] = {
    CommandRejected: rejected,
    CanvasNotFound: lambda exc: ApiError(404, "canvas_not_found", str(exc)),
    InvalidImage: lambda exc: ApiError(422, "invalid_image", str(exc)),
    InvalidWorkflow: lambda exc: ApiError(422, "invalid_workflow", str(exc), exc.where),
    InvalidBlobName: lambda exc: ApiError(400, "bad_blob_name", str(exc)),
}


def domain_error(exc: Exception) -> ApiError:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[cls](exc)
    raise exc


async def health(request: Request) -> Response:
    svc = services(request)
    model = getattr(request.app.state, "model", None)
    progress = getattr(request.app.state, "model_progress", None)
    if model is not None and progress is not None:  # a server that renders: how far loading the model has come
        model = {**model, **progress.snapshot()}
    return JSONResponse(
        {
            "status": "ok",
            "version": server.__version__,
            "database": "sqlite" if svc.store.is_sqlite else "postgresql",
            "model": model,
        }
    )


async def list_operations(request: Request) -> Response:
    svc = services(request)
    registry = svc.operations
    operations = [registry.get(name).describe() for name in registry.names()]  # type: ignore[union-attr]
    unavailable = [{"name": name, "error": reason} for name, reason in sorted(registry.unavailable().items())]
    # the render limits, and what an upload may be (the client refuses a file over them before sending it)
    limits = {**svc.settings.render_limits.describe(), "upload": describe_limits(svc.settings.image_limits)}
    return JSONResponse({"operations": operations, "unavailable": unavailable, "limits": limits})


async def local_session(request: Request) -> Response:
    """The admin token, for a browser on the same machine as a server that listens on loopback only
    (server/security.py says exactly who; docs/security.md why)."""
    svc = services(request)
    reason = local_session_refusal(request.scope, svc.settings)
    if reason is not None:
        raise ApiError(403, "forbidden", reason)
    return JSONResponse({"token": svc.admin_token, "role": "admin"}, headers={"Cache-Control": "no-store"})


async def may_create(request: Request) -> Grant | None:
    """Creating or importing a canvas: an editor (or more) of some canvas, the admin included. With
    --open-creation also anyone without a token, so many per minute per client address."""
    svc = services(request)
    if bearer_token(request) is None:
        if not svc.settings.open_creation:
            raise ApiError(401, "unauthorized", "creating a canvas needs a token (the admin's, or an owner's or "
                           "editor's link); the server's operator may allow anyone with --open-creation")  # fmt: skip
        wait = request.app.state.creations.take(request.client.host if request.client else "")
        if wait:
            raise ApiError(429, "rate_limited", f"too many canvases from this address: try again in {ceil(wait)} s")
        return None
    return await grant_for(request, None, "editor")


async def list_canvases(request: Request) -> Response:
    grant = await grant_for(request, None, "viewer")
    infos = await asyncio.to_thread(services(request).store.canvases)
    infos = [info for info in infos if grant.canvas_id is None or info.id == grant.canvas_id]
    return JSONResponse(
        {
            "canvases": [
                {
                    "id": info.id,
                    "name": info.name,
                    "version": info.version,
                    "created_at": info.created_at,
                    "updated_at": info.updated_at,
                }
                for info in infos
            ]
        }
    )


async def create_canvas(request: Request) -> Response:
    svc = services(request)
    grant = await may_create(request)
    body = await read_json(request, svc.settings.max_request_bytes)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    unknown = set(body) - {"name", "id", "command_id"}
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    name = _string(body, "name", "Untitled canvas", 200)
    canvas_id = _string(body, "id", None, 64, pattern=True)
    command_id = _string(body, "command_id", None, 128)
    if canvas_id is None and command_id is not None:
        # The id follows from the command id, so a retried creation finds the canvas it made.
        canvas_id = "c" + hashlib.sha256(command_id.encode()).hexdigest()[:16]
    actor = "creator" if grant is None else actor_of(request, grant)  # anyone, with --open-creation
    result = await svc.canvases.create_canvas(name, actor, canvas_id, command_id)
    if result.duplicate:  # tokens are stored hashed: a retried creation cannot hand the first one out again
        return JSONResponse({"id": result.canvas_id, "version": result.version, "duplicate": True, "owner_token": None})
    token, _ = await asyncio.to_thread(svc.tokens.issue, result.canvas_id, "owner", "owner")
    return JSONResponse(
        {"id": result.canvas_id, "version": result.version, "duplicate": False, "owner_token": token}, status_code=201
    )


def _string(body: dict[str, Any], key: str, default: str | None, max_length: int, pattern: bool = False) -> Any:
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "bad_request", f"{key} must be a non-empty string", key)
    if len(value) > max_length:
        raise ApiError(400, "bad_request", f"{key} is longer than {max_length} characters", key)
    if pattern and not all(ch.isalnum() or ch in "_-" for ch in value):
        raise ApiError(400, "bad_request", f"{key} may hold only letters, digits, '_' and '-'", key)
    return value


async def get_canvas(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    info = await asyncio.to_thread(services(request).store.canvas, canvas_id)
    if info is None:
        raise ApiError(404, "canvas_not_found", f"canvas {canvas_id!r} does not exist")
    return JSONResponse(
        {
            "id": info.id,
            "name": info.name,
            "version": info.version,
            "created_at": info.created_at,
            "updated_at": info.updated_at,
        }
    )


async def get_state(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    state = await state_at_query(request, canvas_id)
    return JSONResponse(state.to_json())


async def state_at_query(request: Request, canvas_id: str) -> CanvasState:
    """The canvas at `?version=N` (latest without it), or the API error that says why not."""
    version = int_query(request, "version")
    try:
        return await services(request).canvases.state(canvas_id, version)
    except ValueError as exc:
        raise ApiError(400, "bad_version", str(exc), "version") from None


async def get_events(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    after = int_query(request, "after", 0)
    limit = int_query(request, "limit", MAX_EVENTS_PAGE, minimum=1)
    assert after is not None and limit is not None
    events = await services(request).canvases.events(canvas_id, after, min(limit, MAX_EVENTS_PAGE))
    return JSONResponse({"canvas_id": canvas_id, "after": after, "events": [event.to_json() for event in events]})


async def post_command(request: Request) -> Response:
    svc = services(request)
    canvas_id = request.path_params["canvas_id"]
    grant = await grant_for(request, canvas_id, "editor")
    body = await read_json(request, svc.settings.max_request_bytes)
    try:
        envelope = parse_envelope(body)
    except MalformedCommand as exc:
        raise ApiError(400, "malformed_command", str(exc), exc.field) from None
    result = await svc.canvases.execute(
        canvas_id,
        envelope.command,
        actor_of(request, grant),
        envelope.command_id,
        envelope.expected_version,
        envelope.gesture,
    )
    return JSONResponse(result.to_json())


def render_queue(request: Request):
    queue = services(request).renders
    if queue is None:
        raise ApiError(503, "no_renderer", "this server runs no render worker")
    return queue


async def get_renders(request: Request) -> Response:
    """The canvas's render queue: layers still to render, in order, and the worker's counters."""
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    queue = render_queue(request)
    state = await services(request).canvases.state(canvas_id)
    await queue.refresh_backlog()  # so that "ahead" counts canvases not yet taken
    running = queue.running()
    return JSONResponse(
        {
            "canvas_id": canvas_id,
            "queue": queue.queue(state),
            "blocked": queue.blocked(canvas_id),
            "rendering": running if running is not None and running["canvas_id"] == canvas_id else None,
            "stats": dict(queue.stats),
        }
    )


async def get_all_renders(request: Request) -> Response:
    """Every canvas's render queue, for admins: what renders now and for whom, what waits, what is set aside."""
    await grant_for(request, None, "admin")
    return JSONResponse(await render_queue(request).overview())


async def get_images(request: Request) -> Response:
    """The image of every layer at a version that the log or the render cache has. Never renders: a viewer
    looking at the past costs the server no GPU time (editors can POST to render what is missing)."""
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    state = await state_at_query(request, canvas_id)
    return _images_response(canvas_id, state.version, await render_queue(request).images_at(state))


async def render_images(request: Request) -> Response:
    """Render what a past version never had (editors only; never a layer that had failed or was cancelled)."""
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "editor")
    state = await state_at_query(request, canvas_id)
    return _images_response(canvas_id, state.version, await render_queue(request).render_images_at(state))


def _images_response(canvas_id: str, version: int, images: dict[str, dict[str, Any]]) -> Response:
    missing = sum(1 for image in images.values() if image.get("sha256") is None)
    return JSONResponse({"canvas_id": canvas_id, "version": version, "images": images, "missing": missing})


async def cancel_render(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    layer_id = request.path_params["layer_id"]
    grant = await grant_for(request, canvas_id, "editor")
    cancelled = await render_queue(request).cancel(canvas_id, layer_id, actor_of(request, grant))
    if not cancelled:
        raise ApiError(409, "not_rendering", f"layer {layer_id!r} is neither rendering nor waiting to render")
    return JSONResponse({"canvas_id": canvas_id, "layer_id": layer_id, "cancelled": True})


async def upload_blob(request: Request) -> Response:
    """An uploaded image. With `?canvas=ID` (an editor of it) the canvas may show it at once; otherwise it is
    shown once a layer of a canvas names it."""
    svc = services(request)
    canvas_id = request.query_params.get("canvas")
    await grant_for(request, canvas_id, "editor")  # an editor (of that canvas, or of some canvas)
    limits = svc.settings.image_limits
    data = await read_body(request, limits.max_bytes)
    info = await asyncio.to_thread(inspect_image, data, limits)
    sha256 = await asyncio.to_thread(svc.blobs.put, data)
    if canvas_id is not None:
        if await asyncio.to_thread(svc.store.head, canvas_id) is None:
            raise ApiError(404, "canvas_not_found", f"canvas {canvas_id!r} does not exist")
        await asyncio.to_thread(svc.store.add_blob_names, canvas_id, [sha256])
    return JSONResponse(
        {
            "sha256": sha256,
            "size": len(data),
            "media_type": info.media_type,
            "width": info.width,
            "height": info.height,
        },
        status_code=201,
    )


async def fork_canvas(request: Request) -> Response:
    """A new canvas from this one's first `version` events; the caller owns it."""
    svc = services(request)
    canvas_id = request.path_params["canvas_id"]
    grant = await grant_for(request, canvas_id, "viewer")  # whoever can see a version may branch from it
    body = await read_json(request, svc.settings.max_request_bytes)
    version = body.get("version") if isinstance(body, dict) else None
    if version is None:
        version = int_query(request, "version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ApiError(400, "bad_request", "version must be an integer (the last event to keep)", "version")
    with collection_paused():  # a long log copied: see server/heap.py
        result = await svc.canvases.fork(canvas_id, version, actor_of(request, grant))
    token, _ = await asyncio.to_thread(svc.tokens.issue, result.canvas_id, "owner", "owner")
    return JSONResponse(
        {
            "id": result.canvas_id,
            "version": result.version,
            "owner_token": token,
            "forked_from": {"canvas_id": canvas_id, "version": version},
        },
        status_code=201,
    )


async def restore_version(request: Request) -> Response:
    """Bring a past version back by appending the events that lead there (the same as a `restore` command)."""
    svc = services(request)
    canvas_id = request.path_params["canvas_id"]
    grant = await grant_for(request, canvas_id, "editor")
    body = await read_json(request, svc.settings.max_request_bytes)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    envelope = {"command_id": body.get("command_id") or f"restore-{secrets.token_hex(8)}",
                "command": {"type": "restore", "version": body.get("version")}}  # fmt: skip
    try:
        parsed = parse_envelope(envelope)
    except MalformedCommand as exc:
        raise ApiError(400, "malformed_command", str(exc), "version") from None
    result = await svc.canvases.execute(canvas_id, parsed.command, actor_of(request, grant), parsed.command_id)
    return JSONResponse(result.to_json())


async def export_workflow_route(request: Request) -> Response:
    """The canvas's log up to `version` as a workflow file (`renders=0` leaves the rendered images out)."""
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    document = await _workflow(request, canvas_id, include_renders=request.query_params.get("renders") != "0")
    filename = f"{_slug(document['canvas']['name'])}-v{document['canvas']['version']}.opendream.json"
    return Response(
        orjson.dumps(document),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _workflow(request: Request, canvas_id: str, include_renders: bool) -> dict[str, Any]:
    svc = services(request)
    state = await state_at_query(request, canvas_id)
    events = await asyncio.to_thread(svc.store.read, canvas_id, 0, state.version)
    return await asyncio.to_thread(
        export_workflow, state.name, canvas_id, events, svc.blobs, svc.operations, include_renders
    )


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")[:60] or "canvas"


async def import_workflow_route(request: Request) -> Response:
    """A new canvas from a workflow file (JSON, a PNG carrying one, or an original Opendream file)."""
    svc = services(request)
    await may_create(request)
    limits = svc.settings.workflow_limits
    raw = await read_body(request, limits.max_bytes)
    if not raw:
        raise ApiError(400, "invalid_workflow", "the request body is empty: send a workflow file")
    with collection_paused():  # a 100k-event file is millions of objects: no full collections meanwhile
        document = await asyncio.to_thread(load_document, raw, limits)
        # only the file's own images: naming the server's by their hashes would read other canvases' images
        workflow = await asyncio.to_thread(parse_workflow, document, svc.operations, limits)
        del document
        result = await import_workflow(workflow, svc.canvases, svc.blobs, svc.operations)
    token, _ = await asyncio.to_thread(svc.tokens.issue, result.canvas_id, "owner", "owner")
    return JSONResponse(
        {
            "id": result.canvas_id,
            "version": result.version,
            "owner_token": token,
            "name": imported_name(workflow.name),
            "warnings": workflow.warnings,
        },
        status_code=201,
    )


async def layer_png(request: Request) -> Response:
    """A layer's image as a PNG with the canvas's workflow inside (without rendered images: they regenerate)."""
    svc = services(request)
    canvas_id, layer_id = request.path_params["canvas_id"], request.path_params["layer_id"]
    await grant_for(request, canvas_id, "viewer")
    state = await svc.canvases.state(canvas_id)
    layer = state.layers.get(layer_id)
    if layer is None or layer.output is None:
        raise ApiError(404, "no_image", f"layer {layer_id!r} has no image (yet)")
    png = await asyncio.to_thread(svc.blobs.get, layer.output.sha256)
    document = await _workflow(request, canvas_id, include_renders=False)
    body = await asyncio.to_thread(embed_in_png, png, document)
    return Response(body, media_type="image/png", headers=_download(f"{_slug(layer.name)}.png"))


THUMBNAIL_SIDE = 256  # `?thumbnail=1`: the timeline's hover card, not a file to keep


async def composite_png_route(request: Request) -> Response:
    """The canvas flattened, latest or at `?version=N`, with its workflow inside; `?thumbnail=1`: at most 256 px
    a side and without the workflow (the timeline shows one per version hovered)."""
    svc = services(request)
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    state = await state_at_query(request, canvas_id)
    if "version" in request.query_params and svc.renders is not None:
        # a past version looks as the editor shows it: with the pictures its layers got later (recorded or
        # cached for the same params), never rendering anything for it
        state = await asyncio.to_thread(_with_images, state, await svc.renders.images_at(state), svc.blobs)
    png = await asyncio.to_thread(composite_png, state, svc.blobs, svc.operations)
    if png is None:
        raise ApiError(404, "no_image", "no visible layer has an image at this version")
    if request.query_params.get("thumbnail") == "1":
        thumbnail = await asyncio.to_thread(_thumbnail, png, THUMBNAIL_SIDE)
        return Response(thumbnail, media_type="image/png", headers={"Cache-Control": "no-store"})
    document = await _workflow(request, canvas_id, include_renders=False)
    body = await asyncio.to_thread(embed_in_png, png, document)
    return Response(body, media_type="image/png", headers=_download(f"{_slug(state.name)}-v{state.version}.png"))


def _with_images(state: CanvasState, images: dict[str, dict[str, Any]], blobs: BlobStore) -> CanvasState:
    """`state` with each layer that had no picture then given the one `images_at` found for it."""
    from PIL import Image

    layers = dict(state.layers)
    for layer_id, image in images.items():
        layer = layers.get(layer_id)
        sha256 = image.get("sha256")
        if layer is None or not sha256 or (layer.status == "rendered" and layer.output is not None):
            continue
        with Image.open(io.BytesIO(blobs.get(sha256))) as picture:
            width, height = picture.size
        output = RenderOutput(sha256, width, height, fingerprint={}, duration_ms=0.0, cached=True)
        layers[layer_id] = dataclasses.replace(layer, status="rendered", output=output)
    return dataclasses.replace(state, layers=layers)


def _thumbnail(png: bytes, side: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as picture:
        picture.thumbnail((side, side))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _download(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"}


async def create_share(request: Request) -> Response:
    svc = services(request)
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "owner")
    body = await read_json(request, svc.settings.max_request_bytes)
    if not isinstance(body, dict) or body.get("role") not in SHARE_ROLES:
        raise ApiError(400, "bad_request", f"role must be one of {', '.join(SHARE_ROLES)}", "role")
    label = _string(body, "label", body["role"], 200)
    # derived from the caller's token, so the owner can copy the link again later (GET …/shares)
    token, share = await asyncio.to_thread(svc.tokens.issue, canvas_id, body["role"], label, bearer_token(request))
    return JSONResponse({**_share_json(share), "token": token, "path": _share_path(canvas_id, token)}, status_code=201)


async def list_shares(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "owner")
    shares = await asyncio.to_thread(services(request).tokens.shares, canvas_id, bearer_token(request))
    return JSONResponse(
        {"shares": [{**_share_json(s), "token": s.token, "path": _share_path(canvas_id, s.token)} for s in shares]}
    )


async def list_people(request: Request) -> Response:
    """Who the canvas's people are (display names and colours from their hellos, most recently seen first), so
    that history names people who are offline: anyone who may read the canvas may read them."""
    canvas_id = request.path_params["canvas_id"]
    await grant_for(request, canvas_id, "viewer")
    store = services(request).store
    if await asyncio.to_thread(store.head, canvas_id) is None:
        raise CanvasNotFound(canvas_id)
    found = await asyncio.to_thread(PeopleStore.beside(store).people, canvas_id)
    return JSONResponse({"people": [person.to_json() for person in found]})


def _share_path(canvas_id: str, token: str | None) -> str | None:
    # the token rides in the fragment, which a browser never sends to a server or a proxy
    return f"/?canvas={canvas_id}#token={token}" if token else None


async def revoke_share(request: Request) -> Response:
    canvas_id = request.path_params["canvas_id"]
    share_id = request.path_params["share_id"]
    await grant_for(request, canvas_id, "owner")
    if not await asyncio.to_thread(services(request).tokens.revoke, canvas_id, share_id):
        raise ApiError(404, "share_not_found", f"no active share {share_id!r} on canvas {canvas_id!r}")
    services(request).live.revoke(share_id)  # sockets opened with it see nothing more
    return JSONResponse({"id": share_id, "revoked": True})


def _share_json(share: Share) -> dict[str, Any]:
    return {"id": share.id, "role": share.role, "label": share.label, "created_at": share.created_at,
            "revoked": share.revoked}  # fmt: skip


async def get_blob(request: Request) -> Response:
    """Any image, for the admin. Everyone else reads images through a canvas that names them."""
    sha256 = check_name(request.path_params["sha256"])
    await grant_for(request, None, "admin")
    return await _blob_response(request, sha256)


async def get_canvas_blob(request: Request) -> Response:
    """An image the canvas's log names (at any version), for anyone who may read the canvas. Not found, rather
    than forbidden, when it names no such image: the answer says nothing of other canvases' images."""
    canvas_id = request.path_params["canvas_id"]
    sha256 = check_name(request.path_params["sha256"])
    await grant_for(request, canvas_id, "viewer")
    if not await asyncio.to_thread(services(request).store.names_blob, canvas_id, sha256):
        raise ApiError(404, "blob_not_found", f"canvas {canvas_id!r} has no image {sha256}")
    return await _blob_response(request, sha256)


async def _blob_response(request: Request, sha256: str) -> Response:
    blobs = services(request).blobs
    # private: a shared cache must not hand it to someone else; the URL's token is never logged (security.py)
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{sha256}"'}
    path = blobs.path(sha256)
    if path is not None:
        with path.open("rb") as handle:
            head = handle.read(16)
        return FileResponse(path, media_type=_sniff(head), headers=headers)
    try:
        data = await asyncio.to_thread(blobs.get, sha256)  # a store without local files (S3)
    except BlobNotFound:
        raise ApiError(404, "blob_not_found", f"blob {sha256} does not exist") from None
    return Response(data, media_type=_sniff(data[:16]), headers=headers)


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
