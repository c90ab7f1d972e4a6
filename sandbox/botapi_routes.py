"""The Bot API surface: /bot<token>/<method> and /file/bot<token>/<path>.

A call is decoded (JSON, urlencoded, multipart or query string, as aiogram and other clients
send it), checked against the reference schema, optionally failed by fault injection or flood
control, run by its handler and answered with Telegram's envelope (or, by a "timeout" or
"disconnect" fault, answered late or not at all). Every call is recorded for
`GET /sandbox/calls`. Logs carry method names and status codes, never tokens or message text.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import BodyPartReader, hdrs, web

from sandbox.access import chat_id_of
from sandbox.control import STATE_KEY
from sandbox.errors import BotAPIError, bad_request
from sandbox.faults import Withheld
from sandbox.methods import IMPLEMENTED
from sandbox.schema import UploadedFile, load_schema, parse_params
from sandbox.state import CallRecord, SandboxState

log = logging.getLogger("sandbox.botapi")

NOT_SUPPORTED = "method not supported by the sandbox"
PARAMS_KEY = web.RequestKey("sandbox_params", dict)


def _json_safe(value: Any) -> Any:
    """Params as the call log shows them: uploaded files by name and size, never bytes."""
    if isinstance(value, UploadedFile):
        return {
            "filename": value.filename,
            "content_type": value.content_type,
            "size": len(value.data),
        }
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return {"size": len(value)}
    return value


async def _multipart(request: web.Request) -> dict[str, Any]:
    """Text parts as strings, file parts as UploadedFile under their part names.

    aiogram sends a file as `document=attach://<part>` plus a part named <part>; a client may
    also post the file directly under the parameter's name. parse_params resolves both.
    """
    fields: dict[str, Any] = dict(request.query)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read(decode=True)
        if part.filename is not None:
            content_type = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
            fields[part.name] = UploadedFile(part.filename, content_type, bytes(data))
        else:
            fields[part.name] = bytes(data).decode(part.get_charset("utf-8"))
    return fields


async def decode_params(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The call's raw parameters and whether they are typed (JSON) or strings/files."""
    content_type = request.content_type
    if request.method == "POST" and content_type == "application/json":
        body = await request.read()
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(data, dict):
                raise bad_request("JSON object expected")
            return data, True
    if request.method == "POST" and content_type == "multipart/form-data":
        return await _multipart(request), False
    raw: dict[str, Any] = dict(request.query)
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    return raw, False


def _envelope(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(error: BotAPIError) -> web.Response:
    return web.json_response(error.envelope(), status=error.error_code)


def _authorized(state: SandboxState, token: str) -> bool:
    return hmac.compare_digest(token.encode(), state.token.encode())


def _flood_target(state: SandboxState, params: dict[str, Any]) -> tuple[int, bool] | None:
    try:
        chat_id = chat_id_of(params.get("chat_id"))
    except BotAPIError:
        return None
    chat = state.world.chats.get(chat_id)
    return chat_id, chat.is_private if chat is not None else chat_id > 0


async def _call(
    state: SandboxState, request: web.Request, method_name: str
) -> tuple[str, dict[str, Any], Any, Withheld | None]:
    """Run one call: (canonical method name, params for the log, result, the answer withheld by
    a fault if any); raises BotAPIError. A withheld call that does not take effect is not run."""
    method = load_schema().method(method_name)
    if method is None:
        raise BotAPIError(404, "Not Found")
    spec = IMPLEMENTED.get(method.name.lower())
    if spec is None:
        raise bad_request(NOT_SUPPORTED)
    raw, typed = await decode_params(request)
    try:
        params = parse_params(method, raw, typed=typed)
    except BotAPIError:
        request[PARAMS_KEY] = raw
        raise
    request[PARAMS_KEY] = params
    target = _flood_target(state, params) if spec.counts_as_send else None
    # Flood control first: a send over the limits (or before a 429's retry_after ran out) is
    # refused whatever else goes wrong, so every such send shows among its refusals.
    if target is not None:
        state.flood.check(target[0], is_private=target[1])
    try:
        withheld = state.faults.check(method.name)
    except BotAPIError as error:
        retry_after = (error.parameters or {}).get("retry_after")
        if target is not None and error.error_code == 429 and isinstance(retry_after, int):
            state.flood.told_to_wait(target[0], retry_after)
        raise
    if withheld is not None and not withheld.takes_effect:
        return method.name, params, None, withheld
    result = await spec.handler(state, params)
    if target is not None:
        state.flood.record(target[0], is_private=target[1])
    return method.name, params, result, withheld


async def _withhold(
    request: web.Request, withheld: Withheld, response: web.Response
) -> web.Response:
    """Carry out a "timeout" (answer only after its delay) or a "disconnect" (drop the
    connection unanswered)."""
    if withheld.kind == "disconnect":
        if request.transport is not None:
            request.transport.close()
        return response  # nothing is written to a closed transport
    await request.app[STATE_KEY].faults.hold(withheld.delay)
    return response


async def bot_api(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    method_name = request.match_info["method"]
    status, description = 200, None
    withheld: Withheld | None = None
    if not _authorized(state, request.match_info["token"]):
        response = _error(BotAPIError(401, "Unauthorized"))
        status, description = 401, "Unauthorized"
    else:
        try:
            method_name, _params, result, withheld = await _call(state, request, method_name)
            if withheld is not None and not withheld.takes_effect:
                response = _error(withheld.error)
                status = withheld.error.error_code
            else:
                response = _envelope(result)
            if withheld is not None:
                description = withheld.note()
        except BotAPIError as error:
            response = _error(error)
            status, description = error.error_code, error.description
    params = request.get(PARAMS_KEY, {})
    # Recorded when the call took effect (or failed), before any withheld answer is due.
    state.calls.append(
        CallRecord(method_name, _json_safe(params), status, state.clock.now(), description)
    )
    state.changes.bump()
    log.info("bot api %s -> %d", method_name, status)
    if withheld is not None:
        return await _withhold(request, withheld, response)
    return response


async def download_file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if not _authorized(state, request.match_info["token"]):
        return _error(BotAPIError(401, "Unauthorized"))
    stored = state.world.file_by_path(request.match_info["path"])
    if stored is None:
        return _error(BotAPIError(404, "Not Found"))
    return web.Response(body=stored.data, content_type=stored.mime_type)


def add_bot_api_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/bot{token}/{method}", bot_api)
    app.router.add_route("POST", "/bot{token}/{method}", bot_api)
    app.router.add_get("/file/bot{token}/{path:.+}", download_file)
