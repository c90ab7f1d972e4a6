"""JSON error bodies for the HTTP API: `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from storage.unavailable import database_unavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The database unavailable (locked beyond its timeout, unreachable, out of disk, no connection
# to be had from the pool: storage.unavailable) is no fault of the request and usually passes:
# 503 with a time to try again, so that clients back off, and a line per request rather than a
# traceback each.
UNAVAILABLE_RETRY_AFTER = 5  # seconds
UNAVAILABLE = (
    "the database is unavailable; try again shortly (a /send retried with the same "
    "idempotency_key cannot send twice)"
)

# aiohttp's own HTTP errors (404 for an unknown path, 405, 413 ...) mapped to stable codes.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    retry_after: int | None = None,
) -> web.Response:
    """`retry_after`: seconds after which trying again may succeed (a Retry-After header)."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field  # the request field at fault, for programs reading the error
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": error}, status=status, headers=headers)


def route_of(request: web.Request) -> str:
    """The route the request matched, as declared (`/unsubscribe/{token}`): what a log may
    name. Its path may carry a capability."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason)
    except Exception as exc:
        if database_unavailable(exc):
            cause = getattr(exc, "orig", None) or exc  # the driver's class says more
            log.warning(
                "database unavailable on %s %s: %s",
                request.method,
                route_of(request),
                type(cause).__name__,
            )
            return error_response(
                503, "unavailable", UNAVAILABLE, retry_after=UNAVAILABLE_RETRY_AFTER
            )
        # The route, not the path (an unsubscribe link's path is its token), and no body:
        # bodies may hold personal data.
        log.exception("unhandled error on %s %s", request.method, route_of(request))
        return error_response(500, "internal_error", "internal error; the request was not applied")
