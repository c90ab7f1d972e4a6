"""POST /send: validate, commit to the outbox, then answer 202 (200 for an idempotent repeat)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError

from gateway.api.errors import error_response
from gateway.api.keys import SUBMITTER, request_token
from gateway.api.messages import public_status
from gateway.message_request import MessageRequest
from gateway.submission import Sender, SubmissionError, Submitted

log = logging.getLogger(__name__)

# \uD800 to \uDFFF in any case: the escapes that spell UTF-16 surrogates.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def validation_message(exc: ValidationError) -> tuple[str | None, str]:
    """The first problem as (field path, message); never echoes the offending value."""
    first = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    return field, f"{field}: {message}" if field else message


async def read_json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        raw = await request.read()  # over client_max_size: aiohttp raises 413
    except (RequestPayloadError, aiohttp.ClientPayloadError):  # gzip that is not, say
        return error_response(400, "malformed_json", "body could not be read as sent")
    try:
        # Decoded here, strictly: json.loads would guess UTF-16 or 32 from the bytes, and it
        # lets surrogates encoded in UTF-8 through, which no text (nor Telegram) holds.
        body = json.loads(raw.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        return error_response(400, "malformed_json", f"body is not valid JSON ({exc.msg})")
    except RecursionError:
        return error_response(400, "malformed_json", "body is nested too deeply")
    except UnicodeDecodeError:
        return error_response(400, "malformed_json", "body is not UTF-8 encoded JSON")
    except ValueError:  # e.g. an integer of more digits than Python converts
        return error_response(400, "malformed_json", "body holds a number too long to read")
    try:
        # JSON escapes can spell lone surrogates, which no UTF-8 text (nor Telegram) holds.
        # Only an escape in the surrogate range can (raw UTF-8 holds none): the body is
        # encoded again only when it has one.
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return error_response(
            400, "malformed_json", "body holds text that is not valid Unicode (a lone surrogate)"
        )
    if not isinstance(body, dict):
        return error_response(422, "invalid_request", "body must be a JSON object")
    return body


def submitted_body(result: Submitted) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": result.message_id,
        "status": public_status(result.status),
        "retention_expires_at": result.retention_expires_at.isoformat(),
    }
    if result.reason is not None:
        body["reason"] = result.reason
    if result.deferred_until is not None:
        body["deferred_until"] = result.deferred_until.isoformat()
    return body


async def send(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        message_request = MessageRequest.model_validate(body)
    except ValidationError as exc:
        field, message = validation_message(exc)
        return error_response(422, "invalid_request", message, field=field)
    token = request_token(request)
    try:
        result = await request.app[SUBMITTER].submit(
            Sender(token.id, token.owner_id), message_request
        )
    except SubmissionError as exc:
        return error_response(exc.status, exc.code, exc.message, retry_after=exc.retry_after)
    if result.created:
        log.info("accepted message %s from token %s", result.message_id, token.id)
    return web.json_response(submitted_body(result), status=202 if result.created else 200)
