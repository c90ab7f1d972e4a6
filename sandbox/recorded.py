"""Route handlers under the SMS and push stand-ins' control routes (sandbox.scripted_failures
registers them): list (optionally waiting for) what they recorded, and plain answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from aiohttp import web

from sandbox.control import MAX_WAIT_SECONDS

RecordT = TypeVar("RecordT")
RecordT_co = TypeVar("RecordT_co", covariant=True)


class Recorder(Protocol[RecordT_co]):
    @property
    def messages(self) -> Sequence[RecordT_co]: ...

    def wait_for_messages(self, count: int = 1) -> Awaitable[Sequence[RecordT_co]]: ...


async def list_recorded(
    request: web.Request, state: Recorder[RecordT], view: Callable[[RecordT], dict[str, Any]]
) -> web.Response:
    """GET ?count=N&timeout=S: the records, once N arrived (or whatever arrived by then)."""
    try:
        count = int(request.query.get("count", "0"))
        timeout = min(float(request.query.get("timeout", "5")), MAX_WAIT_SECONDS)
    except ValueError:
        return web.json_response({"error": "count and timeout must be numbers"}, status=400)
    try:
        async with asyncio.timeout(timeout):
            messages = await state.wait_for_messages(count)
    except TimeoutError:
        messages = list(state.messages)
    return web.json_response({"messages": [view(m) for m in messages]})


def ok() -> web.Response:
    return web.json_response({"ok": True})
