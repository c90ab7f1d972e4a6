"""The OpenAPI document is valid OpenAPI 3.1 and true: every route is documented, and every
operation, driven through each status the document names for it, answers what it says.

`Contract` (the response check) and `schema_values` (values drawn from a document schema) are
shared with the fuzz run against the running gateway (tests/e2e/test_api_fuzz.py).
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiogram import Bot
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api import app as api_app
from gateway.api import openapi
from gateway.api.app import create_api_app
from gateway.channel_monitor import ChannelStatus
from gateway.channels.webhook import WebhookChannel
from gateway.contact_setup import ContactSetup
from gateway.content_cipher import ContentCipher
from gateway.message_request import MessageRequest
from gateway.submission import Submitter
from gateway.worker_heartbeat import Heartbeat
from storage.enums import (
    AttemptOutcome,
    Category,
    Channel,
    MessageStatus,
    Priority,
)
from storage.models import DeliveryAttempt, Message, UserPreferences
from storage.types import utcnow
from tests.api.conftest import Person, RecordingDelivery, make_person

API = "/api/v1/communication"
SEND = f"{API}/send"
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_BASE = "urn:libral-gateway:openapi"

# No .hypothesis folder in the work tree: every run here says database=None (no examples kept),
# and the caches hypothesis writes anyway (unicode tables, constants) go to the temp dir.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "libral-gateway-hypothesis")


# --- the contract: a response checked against the document -------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Contract:
    """Checks answers against an OpenAPI document (schemas with JSON Schema 2020-12, `$ref`s
    resolved against the document itself, formats such as date-time and uuid checked)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(dict(document), default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_BASE, resource)
        self._routes = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in document["paths"]
        ]
        self._validators: dict[str, Draft202012Validator] = {}

    def resolve(self, node: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
        """A `$ref`'d object (a response) and the JSON pointer it came from."""
        ref = node.get("$ref")
        if ref is None:
            return None, node
        assert ref.startswith("#/"), ref
        target: Any = self.document
        for token in ref[2:].split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        return ref[1:], target

    def validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": f"{_BASE}#{pointer}"},
                registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
        return self._validators[pointer]

    def operation(self, method: str, path: str) -> tuple[str, Mapping[str, Any]] | None:
        """The documented (path template, operation) a request goes to, if any."""
        route = urlsplit(path).path
        for pattern, template in self._routes:
            if pattern.match(route):
                op = self.document["paths"][template].get(method.lower())
                return (template, op) if op is not None else None
        return None

    def documented_statuses(self, method: str, template: str) -> set[int]:
        return {int(s) for s in self.document["paths"][template][method.lower()]["responses"]}

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        """Raise AssertionError saying how this answer breaks the document, if it does."""
        found = self.operation(method, path)
        media = headers.get("Content-Type", "").split(";")[0].strip()
        if found is None:
            # No operation: aiohttp's own 404/405 (or 401 first, under the bearer-auth prefix),
            # in the API's error shape.
            assert status in (401, 404, 405), f"{method} {path}: undocumented route gave {status}"
            assert media == "application/json", f"{method} {path}: {status} as {media!r}"
            self._validate("/components/schemas/Error", json.loads(body), method, path, status)
            return
        template, op = found
        where = f"{method} {template} -> {status}"
        response = op["responses"].get(str(status))
        assert response is not None, f"{where}: status not documented"
        pointer, response = self.resolve(response)
        if pointer is None:
            pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{status}"
        for name, header in response.get("headers", {}).items():
            value = headers.get(name)
            if header.get("required"):
                assert value is not None, f"{where}: no {name} header"
            if value is not None:
                schema = header["schema"]
                parsed: Any = int(value) if schema.get("type") == "integer" else value
                assert Draft202012Validator(schema).is_valid(parsed), f"{where}: {name}={value}"
        content = response.get("content", {})
        assert media in content, f"{where}: answered {media!r}, documented {sorted(content)}"
        schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
        value = json.loads(body) if media == "application/json" else body.decode()
        self._validate(schema_pointer, value, method, path, status)

    def _validate(self, pointer: str, value: Any, method: str, path: str, status: int) -> None:
        errors = sorted(self.validator(pointer).iter_errors(value), key=lambda e: e.path)
        assert not errors, f"{method} {path} -> {status} breaks {pointer}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:3]
        )


@cache
def document() -> dict[str, Any]:
    return openapi.build_document()


@cache
def contract() -> Contract:
    return Contract(document())


async def checked(resp: ClientResponse, seen: set[int] | None = None) -> Any:
    """The answer's body, after checking the answer against the document."""
    body = await resp.read()
    contract().check(resp.method, resp.url.path_qs, resp.status, resp.headers, body)
    if seen is not None:
        seen.add(resp.status)
    is_json = resp.content_type == "application/json"
    return json.loads(body) if is_json else body.decode()


async def assert_unavailable(resp: ClientResponse, seen: set[int]) -> None:
    body = await checked(resp, seen)
    assert (resp.status, body["error"]["code"]) == (503, "unavailable")
    assert resp.headers["Retry-After"] == "5"


def assert_all_exercised(method: str, template: str, seen: set[int]) -> None:
    documented = contract().documented_statuses(method, template)
    assert seen == documented, f"{method} {template}: exercised {seen}, documented {documented}"


# --- values drawn from a document schema (also the fuzz run's) ---------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def schema_values(
    schema: Mapping[str, Any], root: Mapping[str, Any], *, max_text: int = 30
) -> st.SearchStrategy[Any]:
    """Values valid for `schema`, mostly (the subset of JSON Schema the document uses; string
    lengths and list sizes kept small): the raw material of bodies the server should accept."""

    def values(node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        if "$ref" in node:
            target: Any = root
            for token in node["$ref"][2:].split("/"):
                target = target[token]
            return values(target)
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if node.get("type") == "object" or "properties" in node:
            return objects(node)
        for key in ("anyOf", "oneOf"):
            if key in node:
                return st.one_of([values(branch) for branch in node[key]])
        kind = node.get("type")
        if kind is None:
            return json_values
        if isinstance(kind, list):
            return st.one_of([values({**node, "type": k}) for k in kind])
        return scalars(node, kind)

    def scalars(node: Mapping[str, Any], kind: str) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.integers(node.get("minimum"), node.get("maximum"))
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "array":
            low = node.get("minItems", 0)
            return st.lists(
                values(node.get("items", {})),
                min_size=low,
                max_size=max(low, min(node.get("maxItems", 4), 4)),
            )
        assert kind == "string", node
        pattern = node.get("pattern")
        if pattern is not None and pattern.startswith("^"):
            return st.from_regex(pattern, fullmatch=True)
        low = node.get("minLength", 0)
        text = st.text(min_size=low, max_size=max(low, min(node.get("maxLength", 99), max_text)))
        if pattern is not None:
            text = text.filter(lambda s: re.search(pattern, s) is not None)
        return text

    def objects(node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        properties: Mapping[str, Any] = node.get("properties", {})
        required = set(node.get("required", ()))
        # Object-level oneOf: exactly one branch's required keys present (and not null).
        branches = node.get("oneOf", [{}])
        return st.integers(0, len(branches) - 1).flatmap(
            lambda i: one_branch(node, properties, required, branches, i)
        )

    def one_branch(
        node: Mapping[str, Any],
        properties: Mapping[str, Any],
        required: set[str],
        branches: list[Mapping[str, Any]],
        chosen: int,
    ) -> st.SearchStrategy[Any]:
        others = {k for i, b in enumerate(branches) if i != chosen for k in b.get("required", ())}
        wanted = required | set(branches[chosen].get("required", ()))
        fixed = {
            k: values(s).filter(lambda v: v is not None) if k in wanted - required else values(s)
            for k, s in properties.items()
            if k in wanted
        }
        optional = {
            k: values(s) for k, s in properties.items() if k not in wanted and k not in others
        }
        fixed_part = st.fixed_dictionaries(fixed, optional=optional)
        extra = node.get("additionalProperties", True)
        if not isinstance(extra, Mapping):
            return fixed_part
        more = st.dictionaries(
            st.text(max_size=12).filter(lambda k: k not in properties), values(extra), max_size=3
        )
        return st.tuples(fixed_part, more).map(lambda parts: {**parts[1], **parts[0]})

    return values(schema)


# --- fixtures: the real app, unsubscribe routes included (as the running gateway has them) -----


class Clock:
    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or utcnow()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def setup() -> AsyncIterator[ContactSetup]:
    webhooks = WebhookChannel()
    yield ContactSetup(
        ContentCipher(b"u" * 32), None, webhooks, public_url="https://gateway.example.org"
    )
    await webhooks.close()


def _fallback_statuses() -> list[ChannelStatus]:
    checked_at = utcnow()
    return [
        ChannelStatus(Channel.EMAIL, configured=True, healthy=True, checked_at=checked_at),
        ChannelStatus(Channel.WEBHOOK, configured=True, healthy=None),  # not checked yet
        ChannelStatus(Channel.SMS, configured=False, healthy=None),
        ChannelStatus(Channel.PUSH, configured=False, healthy=None),
    ]


@pytest.fixture
def full_app(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    delivery: RecordingDelivery,
    setup: ContactSetup,
    clock: Clock,
) -> web.Application:
    return create_api_app(
        sessionmaker,
        bot,
        cipher,
        delivery,
        clock=clock,
        channel_statuses=_fallback_statuses,
        contact_setup=setup,
    )


@pytest.fixture
async def client(aiohttp_client: ClientFactory, full_app: web.Application) -> Client:
    return await aiohttp_client(full_app)


NO_TOKEN: dict[str, str] = {}
UNKNOWN_TOKEN = {"Authorization": "Bearer lgp_" + "x" * 43}


# --- the document itself -----------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    validate(document())  # raises with the first problem
    assert document()["openapi"] == "3.1.0"
    Draft202012Validator.check_schema(document()["components"]["schemas"]["MessageRequest"])


def test_formats_are_checked() -> None:
    # date-time needs rfc3339-validator (locked): without it the check would pass silently.
    checker = Draft202012Validator.FORMAT_CHECKER
    assert not Draft202012Validator({"format": "date-time"}, format_checker=checker).is_valid(
        "2026-01-01T00:00:00"  # naive: no offset
    )
    assert not Draft202012Validator({"format": "uuid"}, format_checker=checker).is_valid("x")


def test_documented_body_limit_is_the_apps() -> None:
    assert openapi.MAX_BODY_BYTES == api_app.MAX_BODY_BYTES


def _routes(app: web.Application) -> set[tuple[str, str]]:
    registered = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    # add_get registers HEAD beside GET: the same operation without a body, not documented apart.
    return {(m, p) for m, p in registered if not (m == "HEAD" and ("GET", p) in registered)}


def test_every_route_is_documented_and_every_documented_route_exists(
    full_app: web.Application,
) -> None:
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert _routes(full_app) == documented
    for path, item in document()["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        params = [
            p
            for op in [item, *(item[m] for m in item if m in HTTP_METHODS)]
            for p in op.get("parameters", [])
        ]
        assert {p["name"] for p in params if p["in"] == "path"} == names, path


async def test_the_document_is_served_publicly_and_revalidated(client: Client) -> None:
    resp = await client.get(openapi.OPENAPI_PATH, headers=NO_TOKEN)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    assert await checked(resp) == json.loads(json.dumps(document()))


# --- every operation through every documented status -------------------------------------------


async def test_send_answers_are_documented(
    client: Client,
    aiohttp_client: ClientFactory,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    unreachable: Client,
    bot: Bot,
    cipher: ContentCipher,
    clock: Clock,
) -> None:
    seen: set[int] = set()
    auth = person.auth

    queued = await checked(await client.post(SEND, json={"content": {"text": "hi"}}, headers=auth))
    assert queued["status"] == "queued"
    full = {
        "category": "payment",
        "priority": "high",
        "content": {"markdown": "*paid*", "disable_preview": True, "self_destruct_seconds": 60},
        "hashtags": ["invoice"],
        "context_labels": {"telegram.topic_id": person.thread_ids["payment"], "order": 7},
        "channels": ["telegram", "email"],
        "retention_seconds": 3600,
        "gdpr_compliant": True,
        "personal_data_included": False,
        "idempotency_key": "order-7",
    }
    assert contract().validator("/components/schemas/MessageRequest").is_valid(full)
    first = await client.post(SEND, json=full, headers=auth)
    assert first.status == 202
    await checked(first, seen)
    again = await client.post(SEND, json=full, headers=auth)
    assert again.status == 200
    await checked(again, seen)
    # Off by default: suppressed, with the reason.
    plugin = {"category": "plugin", "content": {"json_data": {"plugin": "x"}}}
    suppressed = await checked(await client.post(SEND, json=plugin, headers=auth))
    assert (suppressed["status"], "reason" in suppressed) == ("suppressed", True)
    # Held for quiet hours: 23:00 in the recipient's zone (Tokyo by default), defer mode.
    night = await make_person(sessionmaker, 502)
    async with sessionmaker() as session, session.begin():
        session.add(UserPreferences(user_id=night.user_id, quiet_mode="defer"))
    clock.at = (utcnow() + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
    held = await client.post(SEND, json={"content": {"html": "<b>x</b>"}}, headers=night.auth)
    clock.at = None
    deferred = await checked(held, seen)
    assert deferred["status"] == "deferred"
    assert "deferred_until" in deferred

    resp = await client.post(SEND, data=b'{"content": ', headers=auth)
    assert (resp.status, (await checked(resp, seen))["error"]["code"]) == (400, "malformed_json")
    resp = await client.post(SEND, json={"content": {"text": "x"}}, headers=NO_TOKEN)
    assert resp.status == 401
    await checked(resp, seen)
    resp = await client.post(SEND, json={"content": {"text": "x"}}, headers=UNKNOWN_TOKEN)
    assert resp.status == 401
    await checked(resp, seen)
    lonely = await make_person(sessionmaker, 903, linked=False)
    resp = await client.post(SEND, json={"content": {"text": "x"}}, headers=lonely.auth)
    assert resp.status == 409
    await checked(resp, seen)
    big = b'{"content": {"text": "' + b"x" * openapi.MAX_BODY_BYTES + b'"}}'
    resp = await client.post(SEND, data=big, headers=auth)
    assert resp.status == 413
    await checked(resp, seen)
    for body in (
        {"content": {"text": "x"}, "priority": "asap"},  # names a field
        {"content": {"text": "x"}, "channels": []},  # a whole-request rule: no field
        [1, 2],
        {"recipient": "someone", "content": {"text": "x"}},  # refused after validation
    ):
        resp = await client.post(SEND, json=body, headers=auth)
        assert resp.status == 422, body
        await checked(resp, seen)
    # Refused for overload: a process that lets no message wait for its commit.
    submitter = Submitter(sessionmaker, cipher, clock=clock, on_queued=lambda: None, max_pending=0)
    app = create_api_app(sessionmaker, bot, cipher, RecordingDelivery(), submitter=submitter)
    crowded = await aiohttp_client(app)
    overloaded = await checked(
        await crowded.post(SEND, json={"content": {"text": "x"}}, headers=auth), seen
    )
    assert overloaded["error"]["code"] == "overloaded"
    resp = await unreachable.post(SEND, json={"content": {"text": "x"}}, headers=auth)
    await assert_unavailable(resp, seen)
    assert_all_exercised("POST", SEND, seen)


async def _delivered(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: str, external_id: str
) -> None:
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, message_id)
        assert row is not None
        row.status = MessageStatus.DELIVERED
        row.delivered_at = utcnow()
        row.encrypted_content = None
        session.add_all(
            [
                DeliveryAttempt(
                    message_id=message_id,
                    channel=Channel.TELEGRAM,
                    attempt=1,
                    outcome=AttemptOutcome.RETRY,
                    error="TelegramServerError",
                ),
                DeliveryAttempt(
                    message_id=message_id,
                    channel=Channel.TELEGRAM,
                    attempt=2,
                    outcome=AttemptOutcome.DELIVERED,
                    external_id=external_id,
                ),
            ]
        )


async def test_message_status_answers_are_documented(
    client: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    unreachable: Client,
) -> None:
    seen: set[int] = set()
    sent = await client.post(SEND, json={"content": {"text": "x"}}, headers=person.auth)
    message_id = (await sent.json())["message_id"]
    url = f"{API}/messages/{message_id}"
    queued = await checked(await client.get(url, headers=person.auth), seen)
    assert (queued["status"], queued["attempts"]) == ("queued", [])
    await _delivered(sessionmaker, message_id, "77,78")
    delivered = await checked(await client.get(url, headers=person.auth), seen)
    assert delivered["telegram_message_ids"] == [77, 78]
    assert len(delivered["attempts"]) == 2
    other = await make_person(sessionmaker, 888)
    for headers, path in [
        (NO_TOKEN, url),
        (UNKNOWN_TOKEN, url),
        (other.auth, url),  # someone else's: 404 as for an unknown id
        (person.auth, f"{API}/messages/{uuid.uuid4()}"),
        (person.auth, f"{API}/messages/{message_id.upper()}"),
        (person.auth, f"{API}/messages/not-an-id"),
    ]:
        resp = await client.get(path, headers=headers)
        assert resp.status in (401, 404)
        await checked(resp, seen)
    await assert_unavailable(await unreachable.get(url, headers=person.auth), seen)
    assert_all_exercised("GET", f"{API}/messages/{{message_id}}", seen)


def _row(message_id: str, person: Person, status: MessageStatus, **extra: object) -> Message:
    return Message(
        id=message_id,
        recipient_id=person.user_id,
        category=Category.SYSTEM,
        priority=Priority.NORMAL,
        status=status,
        retention_expires_at=utcnow() + timedelta(days=1),
        **extra,
    )


async def test_erase_answers_are_documented(
    client: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    unreachable: Client,
) -> None:
    seen: set[int] = set()
    sent = await client.post(SEND, json={"content": {"text": "x"}}, headers=person.auth)
    message_id = (await sent.json())["message_id"]
    url = f"{API}/messages/{message_id}"
    for headers in (NO_TOKEN, UNKNOWN_TOKEN):
        await checked(await client.delete(url, headers=headers), seen)
    await _delivered(sessionmaker, message_id, "91")
    erased = await checked(await client.delete(url, headers=person.auth), seen)
    assert erased["record_deleted"] is True
    assert [n["telegram_message_id"] for n in erased["telegram"]["not_deleted"]] == [91]
    resp = await client.delete(url, headers=person.auth)  # gone now
    assert resp.status == 404
    await checked(resp, seen)
    # A message inside a digest that is still on its way out: 409 with Retry-After.
    digest_id, member_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with sessionmaker() as session, session.begin():
        session.add(_row(digest_id, person, MessageStatus.QUEUED, encrypted_content=b"sealed"))
        await session.flush()
        session.add(
            _row(
                member_id,
                person,
                MessageStatus.QUEUED,
                sender_token_id=person.token_id,
                carried_by=digest_id,
            )
        )
    resp = await client.delete(f"{API}/messages/{member_id}", headers=person.auth)
    assert resp.status == 409
    await checked(resp, seen)
    resp = await unreachable.delete(f"{API}/messages/{member_id}", headers=person.auth)
    await assert_unavailable(resp, seen)
    assert_all_exercised("DELETE", f"{API}/messages/{{message_id}}", seen)


async def test_health_answers_are_documented(client: Client, delivery: RecordingDelivery) -> None:
    seen: set[int] = set()
    ok = await checked(await client.get(f"{API}/health", headers=NO_TOKEN), seen)
    assert ok["status"] == "ok"
    assert ok["channels"]["webhook"] == {"ok": None, "error": None}
    delivery.running = False
    delivery.last_error = "RuntimeError"
    delivery.last_run_at = datetime.now(UTC)
    bad = await checked(await client.get(f"{API}/health", headers=NO_TOKEN), seen)
    assert bad["failing"] == ["worker"]
    assert_all_exercised("GET", f"{API}/health", seen)


async def test_health_of_a_process_without_a_worker_is_documented(
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
) -> None:
    # serve --role api: the worker as its heartbeat says (gateway.worker_heartbeat).
    client = await aiohttp_client(create_api_app(sessionmaker, bot, cipher, None))
    seen: set[int] = set()
    unseen = await checked(await client.get(f"{API}/health", headers=NO_TOKEN), seen)
    assert unseen["worker"]["seen_at"] is None
    heartbeat = Heartbeat(sessionmaker, RecordingDelivery().state, lambda: datetime.now(UTC))
    assert await heartbeat.beat(stopped=True)
    fresh = await checked(await client.get(f"{API}/health", headers=NO_TOKEN), seen)
    assert fresh["worker"]["running"] is False
    assert fresh["worker"]["seen_at"] is not None
    assert_all_exercised("GET", f"{API}/health", seen)


async def test_channels_answers_are_documented(
    client: Client, unreachable: Client, person: Person
) -> None:
    seen: set[int] = set()
    listed = await checked(await client.get(f"{API}/channels", headers=person.auth), seen)
    assert [c["name"] for c in listed["channels"]] == [c.value for c in Channel]
    await checked(await client.get(f"{API}/channels", headers=NO_TOKEN), seen)
    await assert_unavailable(await unreachable.get(f"{API}/channels", headers=person.auth), seen)
    assert_all_exercised("GET", f"{API}/channels", seen)


async def test_unsubscribe_answers_are_documented(
    client: Client, setup: ContactSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{API}/unsubscribe/{'A' * 32}"
    get_seen: set[int] = set()
    page = await checked(await client.get(url, headers=NO_TOKEN), get_seen)
    assert '<form method="post">' in page
    assert_all_exercised("GET", f"{API}/unsubscribe/{{token}}", get_seen)
    post_seen: set[int] = set()
    one_click = {"List-Unsubscribe": "One-Click"}
    await checked(await client.post(url, data=one_click, headers=NO_TOKEN), post_seen)

    async def database_down(*args: object) -> bool:
        raise OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(setup, "unsubscribe", database_down)
    resp = await client.post(url, data=one_click, headers=NO_TOKEN)
    assert resp.status == 503
    await checked(resp, post_seen)
    assert_all_exercised("POST", f"{API}/unsubscribe/{{token}}", post_seen)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/nowhere", NO_TOKEN, 404),
        ("GET", f"{API}/nowhere", NO_TOKEN, 401),  # the bearer check comes first
        ("GET", f"{API}/messages/", "auth", 404),
        ("PUT", f"{API}/messages/x", "auth", 405),
        ("GET", SEND, "auth", 405),
        ("DELETE", openapi.OPENAPI_PATH, NO_TOKEN, 405),
    ],
)
async def test_unknown_paths_and_methods_answer_json_errors(
    client: Client,
    person: Person,
    method: str,
    path: str,
    headers: dict[str, str] | str,
    status: int,
) -> None:
    resp = await client.request(method, path, headers=person.auth if headers == "auth" else {})
    assert resp.status == status
    await checked(resp)


# --- the send schema says what MessageRequest accepts --------------------------------------------


def _accepts(body: Any) -> bool:
    try:
        MessageRequest.model_validate(body)
    except ValidationError:
        return False
    return True


def _request_valid(body: Any) -> bool:
    return contract().validator("/components/schemas/MessageRequest").is_valid(body)


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"content": {"text": "x"}}, True),
        ({"content": {"json_data": [1, {"a": None}]}}, True),
        ({"content": {"json_data": False}}, True),
        ({"content": {"text": "x", "html": None, "json_data": None}}, True),
        ({"content": {"text": "x", "html": "y"}}, False),
        ({"content": {"json_data": None}}, False),
        ({"content": {}}, False),
        ({"content": {"text": " \n\t"}}, False),
        ({"content": {"text": ""}}, False),
        ({"content": {"text": "x", "encrypted_content": "abc"}}, False),
        ({"content": {"text": "x", "self_destruct_seconds": 0}}, False),
        ({"content": {"text": "x", "self_destruct_seconds": 172800}}, True),
        ({"content": {"text": "x", "self_destruct_seconds": 172801}}, False),
        ({"content": {"text": "x", "ephemeral": None}}, True),
        ({"content": {"text": "x", "ephemeral": 1}}, False),
        ({"content": {"text": "x"}, "recipient": None}, True),
        ({"content": {"text": "x"}, "channels": []}, False),
        ({"content": {"text": "x"}, "channels": None}, True),
        ({"content": {"text": "x"}, "channels": ["sms", "push"]}, True),
        ({"content": {"text": "x"}, "context_labels": {"category": "auth", "k": 5}}, True),
        ({"content": {"text": "x"}, "context_labels": {"category": "nope"}}, False),
        ({"content": {"text": "x"}, "context_labels": {"category": 1}}, False),
        ({"content": {"text": "x"}, "context_labels": {"telegram.topic_id": "-12"}}, True),
        ({"content": {"text": "x"}, "context_labels": {"telegram.topic_id": "1.5"}}, False),
        ({"content": {"text": "x"}, "context_labels": {"telegram.topic_id": 10**18}}, False),
        ({"content": {"text": "x"}, "context_labels": {"k": True}}, True),  # read as 1
        ({"content": {"text": "x"}, "context_labels": {"k": 1.5}}, False),
        ({"content": {"text": "x"}, "context_labels": {"k": None}}, False),
        ({"content": {"text": "x"}, "retention_seconds": 2592000}, True),
        ({"content": {"text": "x"}, "retention_seconds": 2592001}, False),
        ({"content": {"text": "x"}, "retention_seconds": True}, False),
        ({"content": {"text": "x"}, "hashtags": ["h" * 100] * 30}, True),
        ({"content": {"text": "x"}, "hashtags": ["h" * 101]}, False),
        ({"content": {"text": "x"}, "hashtags": ["h"] * 31}, False),
        ({"content": {"text": "x"}, "idempotency_key": ""}, False),
        ({"content": {"text": "x"}, "priority": None}, False),
        ({"content": {"text": "x"}, "category": None}, True),
        ({"content": {"text": "x"}, "gdpr_compliant": None}, False),
        ({"content": {"text": "x"}, "colour": "red"}, False),
        ({"content": None}, False),
        ([], False),
    ],
)
def test_request_schema_agrees_with_the_model(body: Any, valid: bool) -> None:
    assert (_request_valid(body), _accepts(body)) == (valid, valid)


def test_a_recipient_is_refused_by_the_schema_as_by_the_server() -> None:
    # The model takes it; the submission refuses it (422, see the send test): personal tokens
    # send to their owner only.
    assert not _request_valid({"content": {"text": "x"}, "recipient": "someone"})


def _integral_floats(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(_integral_floats(v) for v in value)
    return False


def _mutations(body: Any) -> st.SearchStrategy[Any]:
    """`body`, or one of its fields (top level or in content) given an arbitrary value."""
    if not isinstance(body, dict):
        return st.just(body)
    keys = sorted(body) + [f"content.{k}" for k in sorted(body.get("content") or {})]

    def change(key: str, value: Any) -> Any:
        changed = json.loads(json.dumps(body))
        if key.startswith("content."):
            changed["content"][key.removeprefix("content.")] = value
        else:
            changed[key] = value
        return changed

    if not keys:
        return st.just(body)
    return st.just(body) | st.builds(change, st.sampled_from(keys), json_values)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    body=schema_values(document()["components"]["schemas"]["MessageRequest"], document()).flatmap(
        _mutations
    )
    | json_values
)
def test_the_schema_refuses_nothing_the_model_accepts(body: Any) -> None:
    accepted = _accepts(body)
    if accepted:
        assert _request_valid(body), f"the server accepts what the document refuses: {body!r}"
    elif _request_valid(body):
        # What JSON Schema cannot say: the 64 KiB limits are on UTF-8 bytes, and strict
        # integers must be written without a fraction (3600, not 3600.0).
        assert _integral_floats(body), f"the document allows what the server refuses: {body!r}"


def test_schema_values_are_mostly_valid_requests() -> None:
    """The generator the fuzz run relies on does make bodies the server takes."""
    strategy = schema_values(document()["components"]["schemas"]["MessageRequest"], document())
    results: list[bool] = []

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(strategy)
    def draw(body: Any) -> None:
        results.append(_accepts(body) and _request_valid(body))

    draw()
    assert sum(results) >= len(results) // 2, f"{sum(results)} of {len(results)} valid"
