"""A stand-in for people's webhook endpoints: records what arrives, answers as scripted.

Routes (JSON; control errors are `{"error": "..."}` with 400 or 408):

- `POST /hooks/{name}`: a webhook delivery. Recorded with its headers, exact body bytes, parsed
  JSON and whether its Standard Webhooks signature verified with the secret configured for
  `name`; answered with the next scripted response for `name` (200 once the script is empty).
- `PUT /hooks/{name}/config`: `{"secret": "whsec_..." | null, "responses": [{"status": 503,
  "retry_after": 2}, ...]}` replaces the hook's secret and its script. A response may also give
  `"body"` (JSON to answer with), `"location"` (for a 3xx; default `/hooks/redirected-{name}`)
  and `"stall": true` (never answer until the receiver shuts down: a timeout for the sender).
- `GET /hooks/{name}/requests[?wait_for=N&timeout=S]`: `{"requests": [...]}`; with `wait_for`,
  answers once N requests arrived, or 408 after S seconds (default 5, at most 30).

The signature check is injected (`verifier`, e.g. gateway.webhook_signing.verify): the sandbox
package does not import the gateway. `WebhookReceiverClient` mirrors the routes for tests and
tools; in-process, `webhook_receiver(app).wait_for(...)` waits on a condition, never polls.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from sandbox.control import MAX_WAIT_SECONDS

NAME_PATTERN = r"[A-Za-z0-9_\-]{1,64}"
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WAIT_SECONDS = 5.0

Clock = Callable[[], datetime]


class Verifier(Protocol):
    """Checks a delivery's signature; raises ValueError (saying why) if it does not verify."""

    def __call__(
        self, secret: str, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> None: ...


class ReceiverError(Exception):
    """A control request was refused (`status` 400) or a wait ran out (408)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer a hook gives. `retry_after`: the Retry-After header, seconds or an HTTP date."""

    status: int = 200
    retry_after: str | None = None
    body: Any = None  # JSON to answer with; None: an empty body
    location: str | None = None
    stall: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "retry_after": self.retry_after,
            "body": self.body,
            "location": self.location,
            "stall": self.stall,
        }

    @classmethod
    def from_json(cls, data: Any) -> ScriptedResponse:
        """Raises ValueError for anything the control API should refuse."""
        if not isinstance(data, dict):
            raise ValueError("each response is an object")
        unknown = set(data) - {"status", "retry_after", "body", "location", "stall"}
        if unknown:
            raise ValueError(f"unknown response field(s): {', '.join(sorted(unknown))}")
        status = data.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError("status is an integer from 200 to 599")
        retry_after = data.get("retry_after")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            if retry_after < 0:
                raise ValueError("retry_after is not negative")
            retry_after = str(int(retry_after))
        if retry_after is not None and not (
            isinstance(retry_after, str) and retry_after.isprintable()
        ):
            raise ValueError("retry_after is seconds (a number) or an HTTP date (a string)")
        location = data.get("location")
        if location is not None and not (isinstance(location, str) and location.isprintable()):
            raise ValueError("location is a URL or a path")
        stall = data.get("stall", False)
        if not isinstance(stall, bool):
            raise ValueError("stall is true or false")
        return cls(status, retry_after, data.get("body"), location, stall)


@dataclass(frozen=True)
class ReceivedRequest:
    """One delivery as it arrived, and how the hook answered it."""

    hook: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the body parsed, None if it is not JSON
    verified: bool
    verify_error: str | None  # why it did not verify
    status: int  # what the hook answered (or would have, for a stalled one)
    stalled: bool

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def to_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "headers": self.headers,
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "json": self.json,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "status": self.status,
            "stalled": self.stalled,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReceivedRequest:
        return cls(
            hook=data["hook"],
            headers=dict(data["headers"]),
            body=base64.b64decode(data["body_b64"]),
            json=data["json"],
            verified=bool(data["verified"]),
            verify_error=data["verify_error"],
            status=int(data["status"]),
            stalled=bool(data["stalled"]),
        )


@dataclass
class _Hook:
    secret: str | None = None
    script: deque[ScriptedResponse] = field(default_factory=deque)
    received: list[ReceivedRequest] = field(default_factory=list)


class WebhookReceiver:
    """The receiver's in-memory state, shared by its routes and in-process tests."""

    def __init__(self, verifier: Verifier, clock: Clock | None = None) -> None:
        self._verifier = verifier
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._hooks: dict[str, _Hook] = {}
        self._arrived = asyncio.Condition()
        self._release = asyncio.Event()
        self._closed = False

    def _hook(self, name: str) -> _Hook:
        return self._hooks.setdefault(name, _Hook())

    def configure(
        self, name: str, *, secret: str | None = None, responses: Iterable[ScriptedResponse] = ()
    ) -> None:
        """Replace the hook's secret and script (recorded requests are kept)."""
        hook = self._hook(name)
        hook.secret = secret
        hook.script = deque(responses)

    def requests(self, name: str) -> list[ReceivedRequest]:
        return list(self._hook(name).received)

    async def wait_for(self, name: str, count: int, within: float) -> list[ReceivedRequest]:
        """The hook's requests once there are at least `count`; TimeoutError after `within` s."""
        hook = self._hook(name)
        try:
            async with asyncio.timeout(within), self._arrived:
                await self._arrived.wait_for(lambda: len(hook.received) >= count or self._closed)
        except TimeoutError:
            pass
        if len(hook.received) < count:
            raise TimeoutError(
                f"hook {name!r}: {len(hook.received)} of {count} requests after {within} s"
            )
        return list(hook.received)

    async def close(self) -> None:
        """Let stalled deliveries finish and wake every waiter (on shutdown)."""
        self._closed = True
        self._release.set()
        async with self._arrived:
            self._arrived.notify_all()

    def _check(self, hook: _Hook, headers: Mapping[str, str], body: bytes) -> str | None:
        if hook.secret is None:
            return "no secret configured for this hook"
        try:
            self._verifier(hook.secret, headers, body, now=self._clock())
        except ValueError as exc:
            return str(exc) or type(exc).__name__
        return None

    async def deliver(self, name: str, headers: Mapping[str, str], body: bytes) -> ScriptedResponse:
        """Record one delivery and return how to answer it (waits first if it stalls)."""
        hook = self._hook(name)
        answer = hook.script.popleft() if hook.script else ScriptedResponse()
        lowered = {key.lower(): value for key, value in headers.items()}
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        error = self._check(hook, lowered, body)
        record = ReceivedRequest(
            hook=name,
            headers=lowered,
            body=body,
            json=parsed,
            verified=error is None,
            verify_error=error,
            status=answer.status,
            stalled=answer.stall,
        )
        async with self._arrived:
            hook.received.append(record)
            self._arrived.notify_all()
        if answer.stall:
            await self._release.wait()
        return answer


RECEIVER_KEY = web.AppKey("webhook_receiver", WebhookReceiver)


def _receiver(request: web.Request) -> WebhookReceiver:
    return request.config_dict[RECEIVER_KEY]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _deliver(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await request.read()
    answer = await _receiver(request).deliver(name, request.headers, body)
    headers: dict[str, str] = {}
    if answer.retry_after is not None:
        headers["Retry-After"] = answer.retry_after
    if 300 <= answer.status < 400:
        headers["Location"] = answer.location or f"/hooks/redirected-{name}"
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    return web.json_response(answer.body, status=answer.status, headers=headers)


async def _configure(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "the body is JSON")
    if not isinstance(data, dict):
        return _error(400, "the body is a JSON object")
    secret = data.get("secret")
    if secret is not None and not isinstance(secret, str):
        return _error(400, "secret is a string or null")
    raw = data.get("responses", [])
    if not isinstance(raw, list):
        return _error(400, "responses is a list")
    try:
        responses = [ScriptedResponse.from_json(item) for item in raw]
    except ValueError as exc:
        return _error(400, str(exc))
    _receiver(request).configure(request.match_info["name"], secret=secret, responses=responses)
    return web.json_response({"ok": True})


async def _requests(request: web.Request) -> web.StreamResponse:
    receiver = _receiver(request)
    name = request.match_info["name"]
    wanted = request.query.get("wait_for")
    if wanted is None:
        found = receiver.requests(name)
    else:
        try:
            count = int(wanted)
            timeout = float(request.query.get("timeout", DEFAULT_WAIT_SECONDS))
        except ValueError:
            return _error(400, "wait_for is an integer and timeout a number of seconds")
        if count < 0 or not 0 <= timeout <= MAX_WAIT_SECONDS:
            return _error(400, f"wait_for is not negative; timeout is 0 to {MAX_WAIT_SECONDS} s")
        try:
            found = await receiver.wait_for(name, count, within=timeout)
        except TimeoutError as exc:
            return _error(408, str(exc))
    return web.json_response({"requests": [r.to_json() for r in found]})


def create_webhook_receiver_app(
    *, verifier: Verifier, clock: Clock | None = None
) -> web.Application:
    """The receiver app; `verifier` checks signatures, `clock` (aware UTC) is its "now"."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RECEIVER_KEY] = WebhookReceiver(verifier, clock)
    app.router.add_post(f"/hooks/{{name:{NAME_PATTERN}}}", _deliver)
    app.router.add_put(f"/hooks/{{name:{NAME_PATTERN}}}/config", _configure)
    app.router.add_get(f"/hooks/{{name:{NAME_PATTERN}}}/requests", _requests)

    async def release(app: web.Application) -> None:
        await app[RECEIVER_KEY].close()

    app.on_shutdown.append(release)
    return app


def webhook_receiver(app: web.Application) -> WebhookReceiver:
    """The state behind an app from `create_webhook_receiver_app` (in-process inspection)."""
    return app[RECEIVER_KEY]


class WebhookReceiverClient:
    """The receiver's routes over HTTP, typed; `base_url` without a trailing slash."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self._base = base_url.rstrip("/")
        self._session = session

    def url(self, name: str) -> str:
        """Where to deliver webhooks for hook `name`."""
        return f"{self._base}/hooks/{name}"

    async def configure(
        self, name: str, *, secret: str | None = None, responses: Iterable[ScriptedResponse] = ()
    ) -> None:
        payload = {"secret": secret, "responses": [r.to_json() for r in responses]}
        async with self._session.put(f"{self.url(name)}/config", json=payload) as response:
            await self._checked(response)

    async def requests(self, name: str) -> list[ReceivedRequest]:
        async with self._session.get(f"{self.url(name)}/requests") as response:
            data = await self._checked(response)
        return [ReceivedRequest.from_json(item) for item in data["requests"]]

    async def wait_for(
        self, name: str, count: int, within: float = DEFAULT_WAIT_SECONDS
    ) -> list[ReceivedRequest]:
        """The hook's requests once at least `count` arrived; ReceiverError(408) otherwise."""
        query = {"wait_for": str(count), "timeout": str(within)}
        async with self._session.get(f"{self.url(name)}/requests", params=query) as response:
            data = await self._checked(response)
        return [ReceivedRequest.from_json(item) for item in data["requests"]]

    @staticmethod
    async def _checked(response: aiohttp.ClientResponse) -> dict[str, Any]:
        data: dict[str, Any] = await response.json()
        if response.status >= 400:
            raise ReceiverError(response.status, str(data.get("error")))
        return data
