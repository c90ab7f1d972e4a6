"""The OpenAPI 3.1 document of the HTTP API, served (public) at `GET /api/v1/openapi.json`.

Built here rather than kept as a file so that the `POST /send` body cannot drift from the code
that validates it: its schema is derived from `MessageRequest.model_json_schema()` and then
refined with what the model's validators enforce beyond the field types (one content kind,
non-blank text, the 64 KiB and 48 hour limits, the context labels). Everything else (paths,
statuses, response bodies) is written out below and kept true by tests/api/test_openapi.py,
which drives every operation through every documented status and validates each answer against
this document, and fails when a route is added without being documented here.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from typing import Any

from aiohttp import web

from gateway.api.errors import UNAVAILABLE_RETRY_AFTER
from gateway.message_request import (
    CATEGORY_LABEL,
    MAX_SELF_DESTRUCT_SECONDS,
    MAX_TEXT_BYTES,
    TOPIC_LABEL,
    MessageRequest,
)
from gateway.outbox_payload import CONTENT_KINDS
from gateway.submission import OVERLOADED_RETRY_AFTER
from storage.enums import AttemptOutcome, Category, MessageStatus

OPENAPI_PATH = "/api/v1/openapi.json"
API = "/api/v1/communication"
# Kept in step with gateway.api.app.MAX_BODY_BYTES (not imported: app.py imports this module).
MAX_BODY_BYTES = 1024 * 1024

Schema = dict[str, Any]

_REF = "#/components/schemas/"
# What a caller can see: "sending" is the worker's lease and reads as "queued" (public_status).
PUBLIC_STATUSES = [s.value for s in MessageStatus if s is not MessageStatus.SENDING]
# A new message is one of these; the others come later, from the worker.
NEW_STATUSES = [
    MessageStatus.QUEUED.value,
    MessageStatus.DEFERRED.value,
    MessageStatus.SUPPRESSED.value,
]
_MAX_THREAD_ID = 10**18 - 1  # `-?[0-9]{1,18}`, as MessageRequest checks it


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


DATE_TIME: Schema = {"type": "string", "format": "date-time"}


def _object(properties: dict[str, Schema], *optional: str, **extra: Any) -> Schema:
    """A closed object: every property required except `optional`."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _strip_titles(schema: Any) -> Any:
    """pydantic's generated `title`s ("Retention Seconds") say nothing the names do not."""
    if isinstance(schema, dict):
        return {
            key: _strip_titles(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


class ModelChanged(LookupError):
    """MessageRequest no longer looks as the refinements below expect: update them."""


def _expect(condition: bool, what: str) -> None:
    # A renamed field or a changed type must not leave a stale refinement behind.
    if not condition:
        raise ModelChanged(what)


def _refine(properties: dict[str, Schema], name: str, schema: Schema) -> None:
    _expect(name in properties, f"MessageRequest has no field {name!r} any more")
    properties[name] = schema


def request_schemas() -> dict[str, Schema]:
    """MessageRequest, MessageContent and their enums as OpenAPI 3.1 component schemas."""
    schema = MessageRequest.model_json_schema(ref_template=_REF + "{model}")
    schemas: dict[str, Schema] = schema.pop("$defs")
    schemas["MessageRequest"] = schema
    schemas = _strip_titles(schemas)

    content = schemas["MessageContent"]
    props = content["properties"]
    text_like = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT_BYTES,  # characters; the limit itself is on the UTF-8 bytes
        "pattern": r"\S",
    }
    for kind in CONTENT_KINDS:
        if kind != "json_data":
            _refine(
                props,
                kind,
                {
                    **_nullable(text_like),
                    "default": None,
                    "description": f"the message as {kind}: not blank, at most 64 KiB as UTF-8",
                },
            )
    _refine(
        props,
        "json_data",
        {
            "default": None,
            "description": "any JSON value (null counts as absent); at most 64 KiB as JSON",
        },
    )
    _refine(
        props,
        "encrypted_content",
        {"type": "null", "default": None, "description": "reserved: not supported yet"},
    )
    _refine(
        props,
        "self_destruct_seconds",
        {
            **_nullable({"type": "integer", "minimum": 1, "maximum": MAX_SELF_DESTRUCT_SECONDS}),
            "default": None,
            "description": "delete the Telegram copy this long after it is sent (Telegram lets "
            "a bot delete its messages only within 48 hours)",
        },
    )
    props["ephemeral"]["description"] = "null: the recipient's default"
    content["description"] = "Exactly one of text, markdown, html and json_data."
    content["oneOf"] = [
        {"required": [kind], "properties": {kind: {"not": {"type": "null"}}}}
        for kind in CONTENT_KINDS
    ]

    request = schemas["MessageRequest"]
    props = request["properties"]
    _refine(
        props,
        "recipient",
        {
            "type": "null",
            "default": None,
            "description": "a personal token sends to its owner only: any value is refused (422)",
        },
    )
    props["category"]["description"] = (
        f"default: the `{CATEGORY_LABEL}` context label, else general"
    )
    props["retention_seconds"]["description"] = (
        "how long the message's record is kept; null: the recipient's default, else 86400. "
        "Written as an integer (3600, not 3600.0)"
    )
    channels = props["channels"]["anyOf"][0]
    _expect(channels.get("type") == "array", "channels is no longer an optional list")
    channels["minItems"] = 1
    props["channels"]["description"] = "the channels to try, in order; null: the recipient's"
    topic_id: Schema = {
        "anyOf": [
            {"type": "string", "pattern": "^-?[0-9]{1,18}$"},
            {"type": "integer", "minimum": -_MAX_THREAD_ID, "maximum": _MAX_THREAD_ID},
            {"type": "boolean"},
        ],
        "description": "the message_thread_id of one of the recipient's personal log topics",
    }
    label = props["context_labels"]
    _expect(
        label.get("additionalProperties") == {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "context_labels is no longer dict[str, str | int]",
    )
    label["additionalProperties"] = {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}],
        "description": "a boolean is read as the integer 1 or 0",
    }
    label["properties"] = {
        TOPIC_LABEL: topic_id,
        CATEGORY_LABEL: {
            "enum": [c.value for c in Category],
            "description": "the category when the `category` field is left out",
        },
    }
    request["description"] = "One message to the token's owner (DESIGN.md, MessageRequest)."
    return schemas


def _error(*codes: str, field: bool = False) -> Schema:
    """The error body restricted to the codes one answer can carry."""
    detail: Schema = {"code": {"enum": list(codes)} if len(codes) > 1 else {"const": codes[0]}}
    if not field:
        detail["field"] = False  # only validation errors name a field
    return {
        "allOf": [
            _ref("Error"),
            {"properties": {"error": {"properties": detail}}},
        ]
    }


def _json(schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _retry_after(seconds: str) -> Schema:
    return {
        "Retry-After": {
            "description": f"seconds to wait before trying again ({seconds})",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    }


def _responses() -> dict[str, Schema]:
    return {
        "Unauthorized": _json(
            _error("unauthorized"),
            "no bearer token, or one that is unknown or revoked",
        ),
        "NotFound": _json(
            _error("not_found"),
            "no message with this id was sent by this token (the same answer for any other "
            "token's message and for ids that are not the gateway's)",
        ),
        "Unavailable": _json(
            _error("unavailable"),
            "the database failed (locked beyond its timeout, or unreachable); try again after "
            "Retry-After seconds. A /send it answers was not committed, unless the connection "
            "broke during the commit itself: retry it with the same idempotency_key",
            headers=_retry_after(str(UNAVAILABLE_RETRY_AFTER)),
        ),
    }


def component_schemas() -> dict[str, Schema]:
    channel_state = _object(
        {
            "name": _ref("Channel"),
            "configured": {"type": "boolean"},
            "healthy": {
                "type": ["boolean", "null"],
                "description": "null: configured but not checked yet",
            },
            "error": {"type": ["string", "null"], "description": "an error class, no details"},
            "checked_at": {**DATE_TIME, "type": ["string", "null"]},
        }
    )
    submission = _object(
        {
            "message_id": {"type": "string", "format": "uuid"},
            "status": _ref("PublicStatus"),
            "retention_expires_at": DATE_TIME,
            "reason": {"type": "string", "description": "why it was suppressed"},
            "deferred_until": {**DATE_TIME, "description": "when quiet hours end"},
        },
        "reason",
        "deferred_until",
    )
    check: Schema = _object(
        {"ok": {"type": "boolean"}, "error": {"type": "string"}},
        "error",
    )
    health = _object(
        {
            "status": {"enum": ["ok", "degraded"]},
            "database": check,
            "queue_depth": {"type": "integer", "minimum": 0},
            "deletions": _object(
                {
                    "pending": {"type": "integer", "minimum": 0},
                    "overdue": {"type": "integer", "minimum": 0},
                    "oldest_due": {**DATE_TIME, "type": ["string", "null"]},
                    "deleted": {"type": "integer", "minimum": 0},
                    "given_up": {"type": "integer", "minimum": 0},
                    "last_lateness_seconds": {"type": ["number", "null"]},
                    "max_lateness_seconds": {"type": "number"},
                }
            ),
            "telegram": _object(
                {
                    "ok": {"type": "boolean"},
                    "username": {"type": ["string", "null"]},
                    "error": {"type": "string"},
                },
                "username",
                "error",
            ),
            "worker": _object(
                {
                    "ok": {"type": "boolean"},
                    "last_error": {"type": ["string", "null"]},
                    "last_run_at": {**DATE_TIME, "type": ["string", "null"]},
                    "unknown_send_outcomes": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Telegram sends since start whose outcome was "
                        "unknowable (timeout after sending): each may have arrived twice",
                    },
                    "seen_at": {
                        **DATE_TIME,
                        "type": ["string", "null"],
                        "description": "in a `serve --role api` process, which runs no worker: "
                        "when the worker's process last wrote its state (every 15 s, and at "
                        "shutdown); the worker is not ok when that is over a minute ago, or "
                        "never",
                    },
                    "running": {
                        "type": "boolean",
                        "description": "in a `serve --role api` process: whether the worker "
                        "ran as of `seen_at` (false at once when its process stopped)",
                    },
                },
                "seen_at",
                "running",
            ),
            "channels": {
                "type": "object",
                "description": "the configured fallback channels, as last checked",
                "propertyNames": _ref("Channel"),
                "additionalProperties": _object(
                    {
                        "ok": {"type": ["boolean", "null"]},
                        "error": {"type": ["string", "null"]},
                    }
                ),
            },
            "scheduler": _object({"ok": {"type": "boolean"}}),
            "failing": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        # queue_depth and deletions need the database; so does the worker section of a `serve
        # --role api` process, which reports the worker's last beat; the scheduler is absent
        # where none runs.
        "queue_depth",
        "deletions",
        "worker",
        "scheduler",
        "failing",
    )
    return {
        **request_schemas(),
        "PublicStatus": {
            "enum": PUBLIC_STATUSES,
            "description": "a message being sent right now reads as queued",
        },
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"type": "string", "description": "stable, for programs"},
                        "message": {"type": "string", "description": "for people"},
                        "field": {
                            "type": "string",
                            "description": "the request field at fault (validation errors)",
                        },
                    },
                    "field",
                )
            }
        ),
        "Submission": submission,
        "MessageStatusReport": _object(
            {
                "message_id": {"type": "string", "format": "uuid"},
                "status": _ref("PublicStatus"),
                "category": _ref("Category"),
                "priority": _ref("Priority"),
                "created_at": DATE_TIME,
                "delivered_at": {**DATE_TIME, "type": ["string", "null"]},
                "retention_expires_at": DATE_TIME,
                "failure_reason": {"type": ["string", "null"]},
                "telegram_message_ids": {"type": "array", "items": {"type": "integer"}},
                "carried_by": {
                    "type": ["string", "null"],
                    "description": "the digest message that carried it (quiet hours, or a burst)",
                },
                "attempts": {
                    "type": "array",
                    "items": _object(
                        {
                            "channel": _ref("Channel"),
                            "attempt": {"type": "integer", "minimum": 1},
                            "outcome": {"enum": [o.value for o in AttemptOutcome]},
                            "error": {"type": ["string", "null"]},
                            "attempted_at": DATE_TIME,
                        }
                    ),
                },
            },
            description="Delivery status only: never the content.",
        ),
        "Erased": _object(
            {
                "message_id": {"type": "string", "format": "uuid"},
                "status_before": _ref("PublicStatus"),
                "record_deleted": {"const": True},
                "telegram": _object(
                    {
                        "deleted": {"type": "array", "items": {"type": "integer"}},
                        "not_deleted": {
                            "type": "array",
                            "items": _object(
                                {
                                    "telegram_message_id": {"type": "integer"},
                                    "reason": {"type": "string"},
                                }
                            ),
                        },
                    }
                ),
            }
        ),
        "Health": health,
        "Channels": _object({"channels": {"type": "array", "items": channel_state}}),
    }


def _paths() -> dict[str, Schema]:
    message_id = {
        "name": "message_id",
        "in": "path",
        "required": True,
        "description": "the message_id /send answered: a canonical (lower-case) UUID; anything "
        "else answers 404",
        "schema": {"type": "string"},
    }
    unsubscribe_token = {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "the token of the email's List-Unsubscribe link",
        "schema": {"type": "string"},
    }
    html: Schema = {"text/html": {"schema": {"type": "string"}}}
    page_headers = {
        "Cache-Control": {"schema": {"const": "no-store"}, "required": True},
        "Referrer-Policy": {"schema": {"const": "no-referrer"}, "required": True},
    }
    unauthorized = {"$ref": "#/components/responses/Unauthorized"}
    not_found = {"$ref": "#/components/responses/NotFound"}
    unavailable = {"$ref": "#/components/responses/Unavailable"}
    return {
        f"{API}/health": {
            "get": {
                "operationId": "getHealth",
                "tags": ["operations"],
                "summary": "Is each dependency working?",
                "description": "Database, Telegram (getMe), delivery worker, scheduler and the "
                "configured fallback channels; queue depth and deletion figures.",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "allOf": [
                                _ref("Health"),
                                {
                                    "properties": {"status": {"const": "ok"}},
                                    "not": {"required": ["failing"]},
                                },
                            ]
                        },
                        "everything works",
                    ),
                    "503": _json(
                        {
                            "allOf": [
                                _ref("Health"),
                                {
                                    "properties": {"status": {"const": "degraded"}},
                                    "required": ["failing"],
                                },
                            ]
                        },
                        "something does not work; `failing` names what",
                    ),
                },
            }
        },
        f"{API}/send": {
            "post": {
                "operationId": "sendMessage",
                "tags": ["messages"],
                "summary": "One message to the token's owner",
                "description": "Answers 202 only once the message is committed to the outbox. "
                f"The body may be at most {MAX_BODY_BYTES} bytes.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("MessageRequest")}},
                },
                "responses": {
                    "202": _json(
                        {
                            "allOf": [
                                _ref("Submission"),
                                {"properties": {"status": {"enum": NEW_STATUSES}}},
                            ]
                        },
                        "accepted and committed: queued, held for quiet hours (deferred) or "
                        "suppressed by the recipient's preferences (nothing kept but the record)",
                    ),
                    "200": _json(
                        _ref("Submission"),
                        "the idempotency_key was used before by this token, within that "
                        "message's retention: the earlier message, as it stands now",
                    ),
                    "400": _json(_error("malformed_json"), "the body is not JSON (UTF-8)"),
                    "401": unauthorized,
                    "409": _json(
                        _error("no_personal_log"),
                        "the recipient has no personal log linked and no verified channel",
                    ),
                    "413": _json(
                        _error("payload_too_large"),
                        f"the body is over {MAX_BODY_BYTES} bytes",
                    ),
                    "422": _json(
                        _error("invalid_request", field=True),
                        "the body is JSON but not a valid MessageRequest; `field` names the "
                        "field at fault where there is one",
                    ),
                    "503": _json(
                        _error("unavailable", "overloaded"),
                        "`unavailable`: the database failed (locked beyond its timeout, or "
                        "unreachable); try again after Retry-After seconds, with the same "
                        "idempotency_key (the message was not committed, unless the connection "
                        "broke during the commit itself). `overloaded`: more messages wait for "
                        "their commit than the process takes; nothing was accepted",
                        headers=_retry_after(
                            f"{UNAVAILABLE_RETRY_AFTER}, or {OVERLOADED_RETRY_AFTER} when "
                            "overloaded"
                        ),
                    ),
                },
            }
        },
        f"{API}/messages/{{message_id}}": {
            "parameters": [message_id],
            "get": {
                "operationId": "getMessageStatus",
                "tags": ["messages"],
                "summary": "Delivery status of a message this token sent (no content)",
                "responses": {
                    "200": _json(_ref("MessageStatusReport"), "the message's delivery status"),
                    "401": unauthorized,
                    "404": not_found,
                    "503": unavailable,
                },
            },
            "delete": {
                "operationId": "eraseMessage",
                "tags": ["messages"],
                "summary": "Erase now: the record, and the Telegram copies that can be deleted",
                "description": "Telegram lets a bot delete its messages within 48 hours; the "
                "answer lists what was and was not deleted, and why.",
                "responses": {
                    "200": _json(_ref("Erased"), "the record is gone"),
                    "401": unauthorized,
                    "404": not_found,
                    "409": _json(
                        _error("being_delivered"),
                        "the message (or the digest carrying it) is being delivered right "
                        "now; nothing was changed",
                        headers=_retry_after("5"),
                    ),
                    "503": unavailable,
                },
            },
        },
        f"{API}/channels": {
            "get": {
                "operationId": "listChannels",
                "tags": ["operations"],
                "summary": "The channels this deployment offers, and whether each works",
                "responses": {
                    "200": _json(_ref("Channels"), "telegram first, then the fallbacks"),
                    "401": unauthorized,
                    "503": unavailable,
                },
            }
        },
        f"{API}/unsubscribe/{{token}}": {
            "parameters": [unsubscribe_token],
            "get": {
                "operationId": "unsubscribePage",
                "tags": ["email"],
                "summary": "The page behind an email's unsubscribe link; changes nothing",
                "description": "A button on it POSTs to the same URL (RFC 8058), so link "
                "scanners that follow the link unsubscribe no one.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the confirmation page",
                        "headers": page_headers,
                        "content": html,
                    }
                },
            },
            "post": {
                "operationId": "unsubscribeNow",
                "tags": ["email"],
                "summary": "One-click unsubscribe (RFC 8058)",
                "description": "The same 200 page whether or not the token matched an address: "
                "the endpoint is no oracle for live tokens. The body is ignored.",
                "security": [],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {"List-Unsubscribe": {"const": "One-Click"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "no more emails for this link",
                        "headers": page_headers,
                        "content": html,
                    },
                    "503": {
                        "description": "the database failed; try again later",
                        "headers": _retry_after("60"),
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                },
            },
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getOpenApiDocument",
                "tags": ["operations"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["openapi", "info", "paths"],
                            "properties": {"openapi": {"const": "3.1.0"}},
                        },
                        "the OpenAPI 3.1 document of this API",
                        headers={
                            "Cache-Control": {"schema": {"const": "no-cache"}, "required": True}
                        },
                    )
                },
            }
        },
    }


def _version() -> str:
    try:
        return metadata.version("libral-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Libral Gateway HTTP API",
            "version": _version(),
            "description": "Services hand the gateway messages for a person's Telegram personal "
            "log (or the fallback channel they chose). Every error is JSON "
            '`{"error": {"code", "message", "field"?}}`; unknown paths answer 404 and unknown '
            "methods 405 in that shape (401 first under /api/v1/communication/ without a "
            "valid token).",
        },
        "tags": [
            {"name": "messages", "description": "sending, status and erasure"},
            {"name": "operations", "description": "health, channels and this document"},
            {"name": "email", "description": "one-click unsubscribe links in emails"},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "lgp_...",
                    "description": "a personal token from the bot's /token command",
                }
            },
            "schemas": component_schemas(),
            "responses": _responses(),
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return json.dumps(build_document(), ensure_ascii=False, indent=1).encode()


async def openapi_document(request: web.Request) -> web.Response:
    # no-cache: clients may keep it but must revalidate, so an upgrade is seen at once.
    return web.Response(
        body=document_bytes(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )
