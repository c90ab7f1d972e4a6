"""What the push and SMS stand-ins share: a record of what they accepted, failures a test can
script for the next N requests, and the `/sandbox/...` control routes over both.

Both stand-ins let a test make the service misbehave (a 503, a 429 with Retry-After, a request
that hangs until released) and then check what got through. That bookkeeping is the same for
both, so it lives here; how a failure looks on the wire (ntfy's or Twilio's error shape), which
requests a rule applies to, and how a record is shown stay with each stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web

from sandbox.recorded import list_recorded, ok

RecordT = TypeVar("RecordT")


@dataclass
class ScriptedFailure:
    """The next `times` matching requests answer `status` (with Retry-After if `retry_after`);
    `code` overrides the service's error code, which each stand-in derives from the status."""

    status: int
    times: int = 1
    retry_after: float | None = None
    code: int | None = None
    hang: bool = False  # hold the request until `release_hung()` (for client timeouts)

    def matches(self, route: str) -> bool:
        """Whether the rule applies to a request on `route`; a stand-in that scripts failures
        per route overrides this (here every rule applies to every request)."""
        return True

    def retry_headers(self) -> dict[str, str] | None:
        return {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None


FailureT = TypeVar("FailureT", bound=ScriptedFailure)


@dataclass
class ScriptedStandIn(Generic[RecordT, FailureT]):
    """State a stand-in shares with its routes and with in-process tests: what it accepted,
    its scripted failures, and how many requests it served. Stand-ins subclass it and add their
    own settings and a typed `fail_next`."""

    messages: list[RecordT] = field(default_factory=list)
    failures: list[FailureT] = field(default_factory=list)
    requests: int = 0  # every request to the service's API, failed or not
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)
    _release: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def script(self, rule: FailureT) -> None:
        """Add `rule` after those already scripted (the first matching one is used first)."""
        if rule.hang and self._release.is_set():
            # released before: hang again until the next release
            self._release = asyncio.Event()
        self.failures.append(rule)

    def release_hung(self) -> None:
        """Let hanging requests finish (with their scripted status)."""
        self._release.set()

    def clear_failures(self) -> None:
        """Forget the scripted failures and let any request hanging on one finish."""
        self.failures.clear()
        self.release_hung()

    def take_failure(self, route: str = "*") -> FailureT | None:
        """The first rule with requests left that applies to `route`, using up one of them."""
        for rule in self.failures:
            if rule.times > 0 and rule.matches(route):
                rule.times -= 1
                return rule
        return None

    async def scripted_failure(self, route: str = "*") -> FailureT | None:
        """Like `take_failure`, but a hanging rule returns only once released, so the caller
        can answer it as it would any other."""
        rule = self.take_failure(route)
        if rule is not None and rule.hang:
            await self._release.wait()
        return rule

    async def record(self, message: RecordT) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for_messages(self, count: int = 1) -> list[RecordT]:
        """The messages once at least `count` arrived (bound the wait with asyncio.timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
            return list(self.messages)


def failure_from_json(data: Any, rule_type: type[FailureT], **extra: Any) -> FailureT:
    """A rule from a `POST /sandbox/failures` body `{"status", "times", "retry_after", "code",
    "hang"}`, plus the stand-in's own fields in `extra`. Raises ValueError, TypeError or
    AttributeError on a malformed body, which the route answers with 400."""
    retry_after = data.get("retry_after")
    code = data.get("code")
    return rule_type(
        status=int(data.get("status", 503)),
        times=int(data.get("times", 1)),
        retry_after=float(retry_after) if retry_after is not None else None,
        code=int(code) if code is not None else None,
        hang=bool(data.get("hang", False)),
        **extra,
    )


def add_control_routes(
    app: web.Application,
    state: ScriptedStandIn[RecordT, FailureT],
    *,
    view: Callable[[RecordT], dict[str, Any]],
    parse_failure: Callable[[Any], FailureT],
    expected: str,
) -> None:
    """Serve `GET`/`DELETE /sandbox/messages` and `POST`/`DELETE /sandbox/failures` for
    `state` on `app`, and release hanging requests on shutdown so they do not hold it up.

    `view` shows one record as JSON, `parse_failure` makes a rule from a `POST /sandbox/failures`
    body (raising as `failure_from_json` does) and `expected` names the body's fields in the 400
    answer to a malformed one."""

    async def list_messages(request: web.Request) -> web.Response:
        return await list_recorded(request, state, view)

    async def clear_messages(request: web.Request) -> web.Response:
        state.messages.clear()
        return ok()

    async def add_failure(request: web.Request) -> web.Response:
        try:
            rule = parse_failure(await request.json())
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": f"expected {expected}"}, status=400)
        state.script(rule)
        return ok()

    async def clear_failures(request: web.Request) -> web.Response:
        state.clear_failures()
        return ok()

    async def release(app: web.Application) -> None:
        state.release_hung()

    app.router.add_get("/sandbox/messages", list_messages)
    app.router.add_delete("/sandbox/messages", clear_messages)
    app.router.add_post("/sandbox/failures", add_failure)
    app.router.add_delete("/sandbox/failures", clear_failures)
    app.on_shutdown.append(release)
