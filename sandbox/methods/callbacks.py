"""answerCallbackQuery: once per query, within its lifetime."""

from __future__ import annotations

from typing import Any

from sandbox.errors import bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.state import SandboxState

methods = MethodGroup()

CALLBACK_QUERY_LIFETIME_SECONDS = 15.0
MAX_ANSWER_TEXT = 200
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


@methods.add("answerCallbackQuery", required=("callback_query_id",))
async def answer_callback_query(state: SandboxState, params: Params) -> Any:
    query = state.world.callbacks.get(str(params["callback_query_id"]))
    if (
        query is None
        or query.answered_at is not None
        or state.clock.now() - query.created_at > CALLBACK_QUERY_LIFETIME_SECONDS
    ):
        raise bad_request(QUERY_TOO_OLD)
    text = params.get("text")
    if isinstance(text, str) and len(text) > MAX_ANSWER_TEXT:
        raise bad_request("MESSAGE_TOO_LONG")
    query.answered_at = state.clock.now()
    query.answer = {
        "text": text,
        "show_alert": bool(params.get("show_alert")),
        "url": params.get("url"),
        "cache_time": params.get("cache_time"),
    }
    return True
