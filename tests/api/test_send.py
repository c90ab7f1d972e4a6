"""POST /send: accepted means committed; bad input gets the right status and a clear error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import ClientResponse
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.api.app import create_api_app
from gateway.api.keys import SUBMITTER
from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from gateway.submission import Submitter
from storage import sqlite_driver
from storage.engine import create_engine
from storage.enums import Category, MessageStatus
from storage.models import ApiToken, Message, User
from tests.api.conftest import Client, ClientFactory, Person, RecordingDelivery, make_person
from tests.sqlite_lock import locked_by_another_process
from tests.waiting import eventually

SEND = "/api/v1/communication/send"


async def _count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_accepted_message_is_committed_encrypted_and_worker_nudged(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    delivery: RecordingDelivery,
) -> None:
    body = {"category": "auth", "content": {"text": "Login from <Firefox>"}, "hashtags": ["x"]}
    resp = await api.post(SEND, json=body, headers=person.auth)
    data = await resp.json()
    assert resp.status == 202, data
    assert data["status"] == "queued"
    expires = datetime.fromisoformat(data["retention_expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(days=1)
    assert delivery.notified == 1
    async with sessionmaker() as session:
        row = await session.get(Message, data["message_id"])
    assert row is not None
    assert row.status is MessageStatus.QUEUED
    assert row.category is Category.AUTH
    assert row.encrypted_content is not None
    assert b"Firefox" not in row.encrypted_content  # content is not stored in the clear
    payload = OutboxPayload.from_dict(cipher.open(row.id, row.encrypted_content))
    assert (payload.kind, payload.value, payload.hashtags) == (
        "text",
        "Login from <Firefox>",
        ("x",),
    )


async def test_response_never_echoes_content(api: Client, person: Person) -> None:
    resp = await api.post(SEND, json={"content": {"text": "secret-ish words"}}, headers=person.auth)
    assert resp.status == 202
    assert "secret-ish" not in await resp.text()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Basic abc"}, "Authorization: Bearer"),
        ({"Authorization": "Bearer lgp_" + "x" * 43}, "unknown or revoked token"),
        ({"Authorization": "Bearer nonsense"}, "unknown or revoked token"),
    ],
)
async def test_missing_or_unknown_token_is_401(
    api: Client, person: Person, headers: dict[str, str], message: str
) -> None:
    resp = await api.post(SEND, json={"content": {"text": "hi"}}, headers=headers)
    assert resp.status == 401
    error = (await resp.json())["error"]
    assert error["code"] == "unauthorized"
    assert message in error["message"]


async def test_revoked_token_is_401(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        token = await session.get(ApiToken, person.token_id)
        assert token is not None
        token.revoked_at = datetime.now(UTC)
    resp = await api.post(SEND, json={"content": {"text": "hi"}}, headers=person.auth)
    assert resp.status == 401


@pytest.mark.both_databases
@pytest.mark.parametrize("recipient_cached", [True, False])
async def test_a_person_erased_by_another_process_gets_401_not_500(
    api: Client, person: Person, migrated_url: str, recipient_cached: bool
) -> None:
    first = await api.post(SEND, json={"content": {"text": "hi"}}, headers=person.auth)
    assert first.status == 202  # the token and the recipient are now cached in this process
    # Another process (its own engine: this one's caches hear nothing) erases the person.
    other = create_engine(migrated_url)
    try:
        async with other.begin() as connection:
            await connection.execute(delete(User).where(User.id == person.user_id))
    finally:
        await other.dispose()
    if not recipient_cached:
        # Their state read afresh (expired from the cache, say) looks like no log at all:
        # still the token's fault, not a 409 telling them to run /setup.
        api.app[SUBMITTER].recipients.clear()
    resp = await api.post(SEND, json={"content": {"text": "again"}}, headers=person.auth)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_malformed_json_is_400(api: Client, person: Person) -> None:
    resp = await api.post(SEND, data=b'{"content": ', headers=person.auth)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"category": "nope", "content": {"text": "x"}}, "category", "auth"),
        ({"content": {}}, "content", "exactly one of"),
        ({"content": {"text": "   "}}, "content", "text is empty"),
        ({"content": {"text": "a", "html": "<b>b</b>"}}, "content", "found text, html"),
        ({"content": {"text": "x" * (64 * 1024 + 1)}}, "content", "64 KiB"),
        ({"content": {"text": "x"}, "retention_seconds": -5}, "retention_seconds", "or equal to 1"),
        ({"content": {"text": "x"}, "priority": "asap"}, "priority", "urgent"),
        ({"content": {"text": "x"}, "colour": "red"}, "colour", "Extra inputs"),
        ({"content": {"text": "x"}, "hashtags": "auth"}, "hashtags", "list"),
        ({"content": {"text": "x"}, "channels": ["fax"]}, "channels.0", "telegram"),
        ({"content": {"text": "x"}, "channels": []}, None, "at least one channel"),
        (
            {"content": {"text": "x", "self_destruct_seconds": 172801}},
            "content.self_destruct_seconds",
            "only within 48 hours",
        ),
        (
            {"content": {"text": "x", "self_destruct_seconds": 0}},
            "content.self_destruct_seconds",
            "at least 1",
        ),
        ({"content": {"text": "x", "ephemeral": "yes"}}, "content.ephemeral", "boolean"),
        ({"content": {"text": "x", "encrypted_content": "abc"}}, "content", "not supported"),
        ({"text": "x"}, "content", "Field required"),
        ([1, 2], None, "JSON object"),
    ],
)
async def test_schema_violations_are_422_naming_the_field(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: Any,
    field: str | None,
    says: str,
) -> None:
    resp = await api.post(SEND, json=body, headers=person.auth)
    error = (await resp.json())["error"]
    assert resp.status == 422, error
    assert error["code"] == "invalid_request"
    assert error.get("field") == field
    assert says in error["message"]
    if field:
        assert error["message"].startswith(f"{field}: ")
    assert await _count(sessionmaker) == 0


async def test_text_of_exactly_64_kib_is_accepted(api: Client, person: Person) -> None:
    resp = await api.post(SEND, json={"content": {"text": "x" * 64 * 1024}}, headers=person.auth)
    assert resp.status == 202


async def test_body_over_1_mib_is_413(api: Client, person: Person) -> None:
    big = b'{"content": {"text": "' + b"x" * (1024 * 1024) + b'"}}'
    resp = await api.post(SEND, data=big, headers=person.auth)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_same_idempotency_key_returns_the_first_message(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    delivery: RecordingDelivery,
) -> None:
    body = {"content": {"text": "once"}, "idempotency_key": "order-42"}
    first = await api.post(SEND, json=body, headers=person.auth)
    second = await api.post(SEND, json=body, headers=person.auth)
    assert first.status == 202
    assert second.status == 200
    assert (await first.json()) == (await second.json())
    assert await _count(sessionmaker) == 1
    assert delivery.notified == 1
    other = await make_person(sessionmaker, 777)
    third = await api.post(SEND, json=body, headers=other.auth)
    assert third.status == 202  # keys are per token
    assert (await third.json())["message_id"] != (await first.json())["message_id"]


async def test_expired_idempotency_key_starts_a_new_message(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = {"content": {"text": "x"}, "idempotency_key": "k", "retention_seconds": 60}
    first = await (await api.post(SEND, json=body, headers=person.auth)).json()
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, first["message_id"])
        assert row is not None
        row.retention_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    again = await api.post(SEND, json=body, headers=person.auth)
    assert again.status == 202
    assert (await again.json())["message_id"] != first["message_id"]
    async with sessionmaker() as session:
        earlier = await session.get(Message, first["message_id"])
    # Left to the retention purge (with its "expired" notice), not deleted by the retry.
    assert earlier is not None
    assert earlier.idempotency_key_hash is None


@pytest.mark.parametrize("how", ["being sent", "carried by a digest on its way"])
async def test_an_expired_key_does_not_take_away_a_message_on_its_way(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession], how: str
) -> None:
    # Deleting it would send its content twice (the worker or the digest has it already) and
    # lose the record of its Telegram copy; the retention purge waits for the outcome.
    body = {"content": {"text": "x"}, "idempotency_key": "k", "retention_seconds": 60}
    first = await (await api.post(SEND, json=body, headers=person.auth)).json()
    digest = await (
        await api.post(SEND, json={"content": {"text": "d"}}, headers=person.auth)
    ).json()
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, first["message_id"])
        assert row is not None
        row.retention_expires_at = now - timedelta(seconds=1)
        if how == "being sent":
            row.status = MessageStatus.SENDING
            row.claimed_until = now + timedelta(minutes=5)
        else:
            row.carried_by = digest["message_id"]
    again = await api.post(SEND, json=body, headers=person.auth)
    assert again.status == 202
    assert (await again.json())["message_id"] != first["message_id"]
    async with sessionmaker() as session:
        earlier = await session.get(Message, first["message_id"])
    assert earlier is not None
    assert earlier.encrypted_content is not None
    assert earlier.status is (
        MessageStatus.SENDING if how == "being sent" else MessageStatus.QUEUED
    )


async def test_no_linked_log_is_409(
    api: Client, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    lonely = await make_person(sessionmaker, 901, linked=False)
    resp = await api.post(SEND, json={"content": {"text": "x"}}, headers=lonely.auth)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "no_personal_log"


async def test_topic_label_must_be_a_known_topic(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
) -> None:
    bad = {"content": {"text": "x"}, "context_labels": {"telegram.topic_id": "999999"}}
    resp = await api.post(SEND, json=bad, headers=person.auth)
    assert resp.status == 422
    assert "telegram.topic_id" in (await resp.json())["error"]["message"]
    thread = person.thread_ids["payment"]
    good = {"content": {"text": "x"}, "context_labels": {"telegram.topic_id": str(thread)}}
    resp = await api.post(SEND, json=good, headers=person.auth)
    assert resp.status == 202
    async with sessionmaker() as session:
        row = await session.get(Message, (await resp.json())["message_id"])
    assert row is not None
    assert row.encrypted_content is not None
    assert OutboxPayload.from_dict(cipher.open(row.id, row.encrypted_content)).thread_id == thread


@pytest.mark.parametrize(
    ("body", "category"),
    [
        ({"content": {"text": "x"}}, Category.GENERAL),
        ({"content": {"text": "x"}, "context_labels": {"category": "payment"}}, Category.PAYMENT),
        (
            {
                "category": "system",
                "content": {"text": "x"},
                "context_labels": {"category": "auth"},
            },
            Category.SYSTEM,
        ),
    ],
)
async def test_category_from_field_then_label_then_general(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    category: Category,
) -> None:
    resp = await api.post(SEND, json=body, headers=person.auth)
    assert resp.status == 202
    async with sessionmaker() as session:
        row = await session.get(Message, (await resp.json())["message_id"])
    assert row is not None
    assert row.category is category


async def test_recipient_is_refused_for_personal_tokens(api: Client, person: Person) -> None:
    resp = await api.post(
        SEND, json={"recipient": "someone", "content": {"text": "x"}}, headers=person.auth
    )
    assert resp.status == 422
    assert "recipient" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"content": {"text": "x"}, "context_labels": {"telegram.topic_id": "²"}}, "integer"),
        ({"content": {"json_data": {"v": float("nan")}}}, "NaN"),
        ({"content": {"json_data": ["x" * 1000] * 70}}, "64 KiB"),
    ],
)
async def test_odd_values_are_422_not_500(
    api: Client, person: Person, body: dict[str, Any], says: str
) -> None:
    import json

    raw = json.dumps(body).encode()  # json.dumps writes NaN, as some clients do
    resp = await api.post(SEND, data=raw, headers=person.auth)
    assert resp.status == 422
    assert says in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (rb'{"content": {"text": "half \ud83d of a pair"}}', 400),
        (rb'{"content": {"text": "\uDFFF alone"}}', 400),
        (rb'{"content": {"text": "a whole pair \ud83d\ude00"}}', 202),
        (rb'{"content": {"text": "caf\u00e9"}}', 202),
        # Not spelled as escapes: a surrogate encoded as UTF-8 (CESU-8), and UTF-16.
        (b'{"content": {"text": "\xed\xa0\x80"}}', 400),
        ('{"content": {"text": "utf-16"}}'.encode("utf-16"), 400),
        (b'\xef\xbb\xbf{"content": {"text": "after a byte order mark"}}', 202),
    ],
)
async def test_a_lone_surrogate_is_400_and_a_pair_is_fine(
    api: Client, person: Person, raw: bytes, status: int
) -> None:
    resp = await api.post(SEND, data=raw, headers=person.auth)
    assert resp.status == status
    if status == 400:
        assert (await resp.json())["error"]["code"] == "malformed_json"


async def test_deeply_nested_json_is_400(api: Client, person: Person) -> None:
    resp = await api.post(SEND, data=b"[" * 200_000 + b"]" * 200_000, headers=person.auth)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "malformed_json"


async def test_repeat_while_sending_reports_queued(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = {"content": {"text": "x"}, "idempotency_key": "busy"}
    first = await (await api.post(SEND, json=body, headers=person.auth)).json()
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, first["message_id"])
        assert row is not None
        row.status = MessageStatus.SENDING
    again = await api.post(SEND, json=body, headers=person.auth)
    assert again.status == 200
    assert (await again.json())["status"] == "queued"


async def test_a_database_locked_beyond_its_timeout_is_503_and_commits_nothing(
    api: Client,
    person: Person,
    migrated_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    delivery: RecordingDelivery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_driver, "BUSY_TIMEOUT_MS", 50)  # not half a minute
    assert (
        await api.post(SEND, json={"content": {"text": "first"}}, headers=person.auth)
    ).status == 202
    with locked_by_another_process(migrated_url) as other:  # writing for too long
        resp = await api.post(SEND, json={"content": {"text": "locked out"}}, headers=person.auth)
        body = await resp.json()
        assert resp.status == 503, body
        assert body["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "5"
        other.execute("ROLLBACK")
    resp = await api.post(SEND, json={"content": {"text": "again"}}, headers=person.auth)
    assert resp.status == 202
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2
    assert delivery.notified == 2  # the worker is not woken for what was not committed


async def test_a_postgresql_server_that_refuses_connections_is_503(unreachable: Client) -> None:
    # The token is looked up first: there the refused connection surfaces.
    token = {"Authorization": "Bearer lgp_" + "x" * 43}
    resp = await unreachable.post(SEND, json={"content": {"text": "x"}}, headers=token)
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "unavailable"


async def test_past_its_backlog_a_process_refuses_new_messages_at_once(
    aiohttp_client: ClientFactory,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    bot: Bot,
    cipher: ContentCipher,
    migrated_url: str,
) -> None:
    delivery = RecordingDelivery()
    submitter = Submitter(
        sessionmaker,
        cipher,
        clock=lambda: datetime.now(UTC),
        on_queued=delivery.notify,
        max_pending=1,
    )
    app = create_api_app(sessionmaker, bot, cipher, delivery, submitter=submitter)
    client = await aiohttp_client(app)

    async def send(text: str) -> ClientResponse:
        return await client.post(SEND, json={"content": {"text": text}}, headers=person.auth)

    assert (await send("warms the token and the recipient")).status == 202
    dbapi = engine.dialect.dbapi
    assert isinstance(dbapi, sqlite_driver.InlineDBAPI)
    with locked_by_another_process(migrated_url) as other:  # the next batch waits
        first = asyncio.create_task(send("committing"))
        await eventually(lambda: dbapi.lock_waits == 1, within=10, what="the batch's lock wait")
        second = asyncio.create_task(send("waiting for the next batch"))
        await eventually(lambda: submitter.committer.backlog == 1, within=10, what="a backlog")
        refused = await send("one too many")
        body = await refused.json()
        assert refused.status == 503, body
        assert body["error"]["code"] == "overloaded"
        assert refused.headers["Retry-After"] == "1"
        other.execute("ROLLBACK")
        assert [(await t).status for t in (first, second)] == [202, 202]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 3


async def test_a_missing_table_is_a_500_not_a_503(
    api: Client, person: Person, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug (a migration not run, a query wrong) is no outage: retrying does not mend it.
    async with engine.begin() as conn:
        for table in ("delivery_attempts", "audit_entries", "telegram_copies", "messages"):
            await conn.exec_driver_sql(f"DROP TABLE {table}")
    resp = await api.post(SEND, json={"content": {"text": "x"}}, headers=person.auth)
    body = await resp.json()
    assert resp.status == 500, body
    assert body["error"]["code"] == "internal_error"
    assert "unhandled error on POST" in caplog.text


async def test_a_token_is_trusted_when_its_last_use_cannot_be_written(
    api: Client,
    person: Person,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Its first use writes last_used_at; another process holds the write lock for longer than
    # that write waits. A read is not to fail for it.
    monkeypatch.setattr(sqlite_driver, "BUSY_TIMEOUT_MS", 50)
    with locked_by_another_process(migrated_url) as other:
        resp = await api.get("/api/v1/communication/channels", headers=person.auth)
        other.execute("ROLLBACK")
    assert resp.status == 200, await resp.text()
    assert f"last use of token {person.token_id} not written: OperationalError" in caplog.text
