"""HTTP plumbing shared by the routes: orjson responses, API errors, bounded body reading."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.sizes import over_limit, readable_size


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """An error the client caused; rendered as `{"error": {"code", "message", "field"}}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message, "field": self.field}}, status_code=self.status
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                size, most = over_limit(int(declared), limit)
                raise ApiError(413, "too_large", f"request body is {size}; the limit is {most}")
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"request body is over the limit of {readable_size(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    body = await read_body(request, limit)
    if not body:
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None


MAX_QUERY_INT = 2**63 - 1  # what the database's integers hold: larger values are refused, not a 500


def int_query(
    request: Request, name: str, default: int | None = None, minimum: int = 0, maximum: int = MAX_QUERY_INT
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_query", f"query parameter {name!r} must be an integer, got {raw!r}", name) from None
    if value < minimum:
        raise ApiError(400, "bad_query", f"query parameter {name!r} must be at least {minimum}", name)
    if value > maximum:
        raise ApiError(400, "bad_query", f"query parameter {name!r} must be at most {maximum}", name)
    return value
