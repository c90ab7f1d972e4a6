"""The control API under /sandbox/: act as the world (users, groups, messages) and inspect it.

JSON in and out; errors are `{"error": "..."}` with 400 or 404. The contract is documented on
each route and mirrored by `sandbox.client.SandboxClient`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from sandbox import actions
from sandbox.actions import ControlError
from sandbox.faults import FAULT_KINDS, GATEWAY_TIMEOUT, FaultRule
from sandbox.flood import FloodLimits
from sandbox.state import SandboxState
from sandbox.views import chat_view

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
MAX_WAIT_SECONDS = 30.0
DEFAULT_TIMEOUT_DELAY = 10.0  # how long a "timeout" fault withholds its answer by default

T = TypeVar("T")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def state_of(request: web.Request) -> SandboxState:
    return request.config_dict[STATE_KEY]


@web.middleware
async def _errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as error:
        return web.json_response({"error": error.message}, status=error.status)
    except web.HTTPNotFound:
        return web.json_response({"error": f"no control endpoint {request.path}"}, status=404)
    except web.HTTPMethodNotAllowed:
        return web.json_response(
            {"error": f"{request.method} is not allowed on {request.path}"}, status=405
        )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise ControlError(400, "bad JSON: the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ControlError(400, "bad JSON: the request body must be a JSON object")
    return data


def _get(body: dict[str, Any], name: str, kind: type[T], *, required: bool = True) -> T | None:
    value: Any = body.get(name)
    if value is None:
        if required:
            raise ControlError(400, f"missing field {name!r}")
        return None
    numeric = kind in (int, float)
    if numeric and isinstance(value, bool):
        raise ControlError(400, f"field {name!r} must be a {kind.__name__}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ControlError(400, f"field {name!r} must be a {kind.__name__}")
    return value


def _req(body: dict[str, Any], name: str, kind: type[T]) -> T:
    value = _get(body, name, kind)
    assert value is not None
    return value


def _int_path(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise ControlError(400, f"{name} must be an integer") from None


async def create_user(request: web.Request) -> web.Response:
    """POST /sandbox/users {first_name, last_name?, username?, language_code?} -> {id}"""
    body = await _body(request)
    first_name = _req(body, "first_name", str)
    if not first_name.strip():
        raise ControlError(400, "first_name must be non-empty")
    user = state_of(request).world.add_user(
        first_name,
        _get(body, "last_name", str, required=False),
        _get(body, "username", str, required=False),
        _get(body, "language_code", str, required=False),
    )
    state_of(request).changes.bump()
    return web.json_response({"id": user.id})


async def create_group(request: web.Request) -> web.Response:
    """POST /sandbox/groups {title, is_forum, owner_id} -> {id} (a -100... supergroup id)"""
    body = await _body(request)
    title = _req(body, "title", str)
    if not title.strip():
        raise ControlError(400, "title must be non-empty")
    state = state_of(request)
    chat = actions.create_group(
        state,
        title,
        is_forum=bool(_get(body, "is_forum", bool, required=False)),
        owner_id=_req(body, "owner_id", int),
    )
    state.changes.bump()
    return web.json_response({"id": chat.id})


async def set_bot_membership(request: web.Request) -> web.Response:
    """POST /sandbox/bot-membership {chat_id, by_id, status, rights?} -> {changed}"""
    body = await _body(request)
    changed = actions.set_bot_membership(
        state_of(request),
        _req(body, "chat_id", int),
        _req(body, "by_id", int),
        _req(body, "status", str),
        _get(body, "rights", dict, required=False) or {},
    )
    return web.json_response({"changed": changed})


async def user_message(request: web.Request) -> web.Response:
    """POST /sandbox/messages {from_id, chat_id, text, message_thread_id?} -> {message_id}"""
    body = await _body(request)
    message = actions.user_message(
        state_of(request),
        _req(body, "from_id", int),
        _req(body, "chat_id", int),
        _req(body, "text", str),
        _get(body, "message_thread_id", int, required=False),
    )
    return web.json_response({"message_id": message.message_id})


async def press_button(request: web.Request) -> web.Response:
    """POST /sandbox/callbacks {from_id, chat_id, message_id, data} -> {callback_query_id}"""
    body = await _body(request)
    query_id = actions.press_button(
        state_of(request),
        _req(body, "from_id", int),
        _req(body, "chat_id", int),
        _req(body, "message_id", int),
        _req(body, "data", str),
    )
    return web.json_response({"callback_query_id": query_id})


async def share_contact(request: web.Request) -> web.Response:
    """POST /sandbox/contacts {from_id} -> {message_id}"""
    body = await _body(request)
    message = actions.share_contact(state_of(request), _req(body, "from_id", int))
    return web.json_response({"message_id": message.message_id})


async def get_chat(request: web.Request) -> web.Response:
    """GET /sandbox/chats/{id} -> the chat, its members, topics, messages and callback queries"""
    state = state_of(request)
    chat = actions.known_chat(state, _int_path(request, "chat_id"))
    return web.json_response(chat_view(state, chat))


async def get_calls(request: web.Request) -> web.Response:
    """GET /sandbox/calls?after=N -> {calls: [{method, params, status, time, description}],
    total}: the calls after the first N (default 0: all), and how many there are in all.

    A client that keeps up (a benchmark counting deliveries) asks with after=total of its last
    look and gets only what is new: reading every call each time made each look cost the
    server more as the run went on, on the CPU the gateway measured beside it needed."""
    calls = state_of(request).calls
    raw = request.query.get("after", "0")
    try:
        after = int(raw)
    except ValueError:
        after = -1
    if after < 0:
        raise ControlError(400, "after is the number of calls already seen (0 or more)")
    return web.json_response({"calls": [c.describe() for c in calls[after:]], "total": len(calls)})


async def wait_for_change(request: web.Request) -> web.Response:
    """GET /sandbox/changes?after=V&timeout=S -> {version, changed}: long-poll for any change"""
    state = state_of(request)
    try:
        after = int(request.query.get("after", state.changes.version))
        timeout = min(float(request.query.get("timeout", 10)), MAX_WAIT_SECONDS)
    except ValueError:
        raise ControlError(400, "after is an integer, timeout a number of seconds") from None
    changed = await state.changes.wait_beyond(after, seconds=timeout)
    return web.json_response({"version": state.changes.version, "changed": changed})


async def set_flood(request: web.Request) -> web.Response:
    """POST /sandbox/flood {enabled?, private_chat_per_second?, group_per_minute?,
    global_per_second?} -> the flood settings now in force"""
    body = await _body(request)
    limits: dict[str, int] = {}
    for name in FloodLimits.field_names():
        value = _get(body, name, int, required=False)
        if value is not None:
            if value < 1:
                raise ControlError(400, f"{name} must be at least 1")
            limits[name] = value
    unknown = sorted(set(body) - {"enabled", *FloodLimits.field_names()})
    if unknown:
        raise ControlError(400, f"unknown flood settings: {', '.join(unknown)}")
    flood = state_of(request).flood
    flood.configure(enabled=_get(body, "enabled", bool, required=False), **limits)
    return web.json_response(flood.describe())


async def get_flood(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).flood.describe())


async def get_flood_refusals(request: web.Request) -> web.Response:
    """GET /sandbox/flood/refusals -> {refusals: [{chat_id, time, retry_after, reason}]}: every
    send flood control refused ("limit": a window was full; "retry_after": sent before an
    earlier 429's retry_after ran out)"""
    refusals = state_of(request).flood.refusals
    return web.json_response({"refusals": [r.describe() for r in refusals]})


def _faults_view(state: SandboxState) -> dict[str, Any]:
    return {"faults": [rule.describe() for rule in state.faults.rules]}


async def add_fault(request: web.Request) -> web.Response:
    """POST /sandbox/faults {method, kind?, error_code?, description?, times?, probability?,
    retry_after?, takes_effect?, delay?, seed?} -> {faults}

    kind "error" (the default) needs error_code and description. "timeout" withholds the
    answer `delay` seconds (default 10, at most 30); "disconnect" drops the connection. Both
    carry the call out first unless takes_effect is false (then a timeout is answered, late,
    with error_code and description, by default 504 Gateway Timeout)."""
    body = await _body(request)
    kind = _get(body, "kind", str, required=False) or "error"
    if kind not in FAULT_KINDS:
        raise ControlError(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
    failing = kind == "error"
    code = _get(body, "error_code", int, required=failing)
    code = GATEWAY_TIMEOUT[0] if code is None else code
    if not 400 <= code <= 599:
        raise ControlError(400, "error_code must be an HTTP error status (400-599)")
    description = _get(body, "description", str, required=failing)
    description = GATEWAY_TIMEOUT[1] if description is None else description
    times = _get(body, "times", int, required=False)
    probability = _get(body, "probability", float, required=False)
    if times is not None and times < 1:
        raise ControlError(400, "times must be at least 1")
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ControlError(400, "probability must be between 0 and 1")
    takes_effect = _get(body, "takes_effect", bool, required=False)
    if failing and takes_effect:
        raise ControlError(400, "takes_effect is for timeout and disconnect faults")
    delay = _get(body, "delay", float, required=False)
    if delay is not None and kind != "timeout":
        raise ControlError(400, "delay is for timeout faults")
    if delay is not None and not 0.0 < delay <= MAX_WAIT_SECONDS:
        raise ControlError(400, f"delay must be more than 0 and at most {MAX_WAIT_SECONDS:g} s")
    rule = FaultRule(
        method=_req(body, "method", str),
        error_code=code,
        description=description,
        times=times,
        probability=probability,
        retry_after=_get(body, "retry_after", int, required=False),
        kind=kind,
        takes_effect=not failing and takes_effect is not False,
        delay=(delay or DEFAULT_TIMEOUT_DELAY) if kind == "timeout" else 0.0,
    )
    state = state_of(request)
    state.faults.add(rule, seed=_get(body, "seed", int, required=False))
    return web.json_response(_faults_view(state))


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults_view(state_of(request)))


async def clear_faults(request: web.Request) -> web.Response:
    state = state_of(request)
    state.faults.clear()
    return web.json_response(_faults_view(state))


async def advance_clock(request: web.Request) -> web.Response:
    """POST /sandbox/clock {seconds} -> {now}: move the sandbox's clocks forward"""
    body = await _body(request)
    seconds = _req(body, "seconds", float)
    if seconds < 0:
        raise ControlError(400, "seconds must be zero or more: the clock only moves forward")
    state = state_of(request)
    state.clock.advance(seconds)
    state.changes.bump()
    return web.json_response({"now": state.clock.now()})


async def reset(request: web.Request) -> web.Response:
    """POST /sandbox/reset -> {}: forget everything but the bot"""
    state_of(request).reset()
    return web.json_response({})


def control_app() -> web.Application:
    """The /sandbox/ sub-application (state comes from the parent app's STATE_KEY)."""
    app = web.Application(middlewares=[_errors_as_json])
    app.router.add_post("/users", create_user)
    app.router.add_post("/groups", create_group)
    app.router.add_post("/bot-membership", set_bot_membership)
    app.router.add_post("/messages", user_message)
    app.router.add_post("/callbacks", press_button)
    app.router.add_post("/contacts", share_contact)
    app.router.add_get("/chats/{chat_id}", get_chat)
    app.router.add_get("/calls", get_calls)
    app.router.add_get("/changes", wait_for_change)
    app.router.add_post("/flood", set_flood)
    app.router.add_get("/flood", get_flood)
    app.router.add_get("/flood/refusals", get_flood_refusals)
    app.router.add_post("/faults", add_fault)
    app.router.add_get("/faults", list_faults)
    app.router.add_delete("/faults", clear_faults)
    app.router.add_post("/clock", advance_clock)
    app.router.add_post("/reset", reset)
    return app
