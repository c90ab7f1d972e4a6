"""A local stand-in for an ntfy server's publish API (tests and `libral-gateway sandbox`).

`POST /{topic}` (or PUT) publishes the request body as the message, with ntfy's headers:
`Title` (also `X-Title`, `t`), `Priority` (`X-Priority`, `prio`, `p`: 1-5 or min/low/default/
high/max/urgent), `Tags` (`X-Tags`, `ta`: comma-separated) and `Authorization: Bearer <token>`.
Header values may be RFC 2047 encoded words (`=?UTF-8?B?...?=`); like ntfy, the stand-in
decodes them and keeps the raw value when they do not decode.

Topics listed in `protected` need their token: none → 403 (ntfy code 40301), a wrong one → 401
(40101); an unknown token is refused on any topic (401), as ntfy does. A bad priority is 400
(40007), a body over 4096 bytes or not UTF-8 is 413 (41301) / 400 (40000). Success is 200
`{"id", "time", "expires", "event": "message", "topic", "message", ...}`. Errors have ntfy's
shape `{"code", "http", "error", "link"?}`.

Received messages are recorded (`PushServerState.messages`, `wait_for_messages`). Failures can
be scripted: the next N publishes answer a status (429, 503 with Retry-After, 404, ...) or hang
until released.

Control API, JSON: `GET /sandbox/messages?count=N&timeout=S` (waits for at least N),
`DELETE /sandbox/messages`, `POST /sandbox/failures` `{"status", "times", "retry_after", "hang"}`,
`DELETE /sandbox/failures`. `GET /v1/health` answers `{"healthy": true}`.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from sandbox.scripted_failures import (
    ScriptedFailure,
    ScriptedStandIn,
    add_control_routes,
    failure_from_json,
)

MESSAGE_LIMIT_BYTES = 4096
MESSAGE_TTL_SECONDS = 12 * 3600
TOPIC_ROUTE = "/{topic:[-_A-Za-z0-9]{1,64}}"
_ID_ALPHABET = string.ascii_letters + string.digits
_PRIORITY_NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}


@dataclass(frozen=True)
class PushRecord:
    """One published message as the stand-in received it (header values decoded)."""

    id: str
    time: int
    topic: str
    message: str
    title: str | None
    priority: int | None  # None: not given (ntfy's default, 3)
    tags: tuple[str, ...]
    token: str | None  # the Bearer token, if any
    raw_headers: dict[str, str]  # Title/Priority/Tags exactly as sent


# ntfy has no routes worth scripting apart: every rule applies to every publish.
PushFailure = ScriptedFailure


class NtfyError(Exception):
    def __init__(self, status: int, code: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.code = code
        self.error = error


def ntfy_error(
    status: int, code: int, error: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"code": code, "http": status, "error": error}, status=status, headers=headers
    )


def decode_header_value(value: str) -> str:
    """An RFC 2047 encoded header as text (the raw value if it does not decode), trimmed."""
    try:
        return str(make_header(decode_header(value))).strip()
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value.strip()


@dataclass
class PushServerState(ScriptedStandIn[PushRecord, PushFailure]):
    """`requests` counts every publish attempt, failed or not."""

    # topic -> the token publishing to it needs
    protected: dict[str, str] = field(default_factory=dict, repr=False)
    clock: Callable[[], float] = time.time  # Unix seconds

    def now(self) -> int:
        return int(self.clock())

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        code: int | None = None,
        hang: bool = False,
    ) -> None:
        """Make the next `times` publishes fail with `status` (or hang first)."""
        self.script(PushFailure(status, times, retry_after, code, hang))

    def messages_for(self, topic: str) -> list[PushRecord]:
        return [m for m in self.messages if m.topic == topic]


PUSH_STATE_KEY = web.AppKey("push_server_state", PushServerState)


def _state(request: web.Request) -> PushServerState:
    return request.app[PUSH_STATE_KEY]


def _param(request: web.Request, *names: str) -> tuple[str | None, str | None]:
    """(raw, decoded) of the first of `names` present as a header, else as a query parameter."""
    for name in names:
        raw = request.headers.get(name)
        if raw is None:
            raw = request.query.get(name)
        if raw is not None:
            return raw, decode_header_value(raw)
    return None, None


def _authorize(request: web.Request, state: PushServerState, topic: str) -> str | None:
    header = request.headers.get("Authorization")
    token: str | None = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NtfyError(401, 40101, "unauthorized")
        token = value.strip()
        if not any(secrets.compare_digest(token, t) for t in state.protected.values()):
            raise NtfyError(401, 40101, "unauthorized")
    required = state.protected.get(topic)
    if required is None:
        return token
    if token is None:
        raise NtfyError(403, 40301, "forbidden")
    if not secrets.compare_digest(token, required):
        raise NtfyError(401, 40101, "unauthorized")
    return token


def _priority(decoded: str | None) -> int | None:
    if decoded is None or decoded == "":
        return None
    value = decoded.lower()
    if value in _PRIORITY_NAMES:
        return _PRIORITY_NAMES[value]
    if value in ("1", "2", "3", "4", "5"):
        return int(value)
    raise NtfyError(400, 40007, "invalid priority")


async def publish(request: web.Request) -> web.Response:
    state = _state(request)
    state.requests += 1
    topic = request.match_info["topic"]
    try:
        token = _authorize(request, state, topic)
        rule = await state.scripted_failure()
        if rule is not None:
            code = rule.code or rule.status * 100 + 1
            return ntfy_error(rule.status, code, "scripted failure", rule.retry_headers())
        raw_title, title = _param(request, "X-Title", "Title", "t")
        raw_priority, priority_text = _param(request, "X-Priority", "Priority", "prio", "p")
        raw_tags, tags_text = _param(request, "X-Tags", "Tags", "Tag", "ta")
        priority = _priority(priority_text)
        data = await request.read()
        if len(data) > MESSAGE_LIMIT_BYTES:
            raise NtfyError(413, 41301, "message too large")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NtfyError(400, 40000, "message is not UTF-8") from None
    except NtfyError as err:
        return ntfy_error(err.status, err.code, err.error)
    tags = tuple(t.strip() for t in (tags_text or "").split(",") if t.strip())
    raw = {
        name: value
        for name, value in (("Title", raw_title), ("Priority", raw_priority), ("Tags", raw_tags))
        if value is not None
    }
    record = PushRecord(
        id="".join(secrets.choice(_ID_ALPHABET) for _ in range(12)),
        time=state.now(),
        topic=topic,
        message=message or "triggered",
        title=title or None,
        priority=priority,
        tags=tags,
        token=token,
        raw_headers=raw,
    )
    await state.record(record)
    answer: dict[str, Any] = {
        "id": record.id,
        "time": record.time,
        "expires": record.time + MESSAGE_TTL_SECONDS,
        "event": "message",
        "topic": topic,
        "message": record.message,
    }
    if record.title:
        answer["title"] = record.title
    if record.tags:
        answer["tags"] = list(record.tags)
    if record.priority is not None and record.priority != 3:
        answer["priority"] = record.priority
    return web.json_response(answer)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"healthy": True})


# --- control API ---------------------------------------------------------------------------------


def _record_view(record: PushRecord) -> dict[str, Any]:
    view = asdict(record)
    view["tags"] = list(record.tags)
    return view


def _failure_from_json(data: Any) -> PushFailure:
    return failure_from_json(data, PushFailure)


@web.middleware
async def _ntfy_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPNotFound:
        return ntfy_error(404, 40401, "page not found")
    except web.HTTPMethodNotAllowed:
        return ntfy_error(405, 40501, "method not allowed")
    return response


class TopicMaskingAccessLogger(AbstractAccessLogger):
    """Access log lines without the topic (a secret) or the query string. Pass it as
    `access_log_class` to the runner serving `create_push_server_app()`."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.path if request.path.startswith(("/sandbox/", "/v1/")) else "/<topic>"
        self.logger.info("%s %s -> %d (%.3fs)", request.method, path, response.status, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_push_server_app(*, protected: Mapping[str, str] | None = None) -> web.Application:
    """The stand-in; `protected` maps topics to the Bearer token publishing to them needs."""
    state = PushServerState(protected=dict(protected or {}))
    app = web.Application(middlewares=[_ntfy_not_found], client_max_size=1024 * 1024)
    app[PUSH_STATE_KEY] = state
    app.router.add_get("/v1/health", health)
    add_control_routes(
        app,
        state,
        view=_record_view,
        parse_failure=_failure_from_json,
        expected="{status, times, retry_after, code, hang}",
    )
    app.router.add_post(TOPIC_ROUTE, publish)
    app.router.add_put(TOPIC_ROUTE, publish)
    return app


def push_server_state(app: web.Application) -> PushServerState:
    """The state behind an app from `create_push_server_app` (for in-process inspection)."""
    return app[PUSH_STATE_KEY]
