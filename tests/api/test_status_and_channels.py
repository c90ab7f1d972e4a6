"""GET /messages/{id}, /channels and /health."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import AttemptOutcome, Channel, MessageStatus
from storage.models import DeliveryAttempt, Message
from tests.api.conftest import Client, Person, RecordingDelivery, make_person

API = "/api/v1/communication"


async def test_status_of_own_message_has_no_content(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sent = await api.post(f"{API}/send", json={"content": {"text": "hush"}}, headers=person.auth)
    message_id = (await sent.json())["message_id"]
    async with sessionmaker() as session, session.begin():
        session.add(
            DeliveryAttempt(
                message_id=message_id,
                channel=Channel.TELEGRAM,
                attempt=1,
                outcome=AttemptOutcome.RETRY,
                error="Telegram server error",
                attempted_at=datetime.now(UTC),
            )
        )
    resp = await api.get(f"{API}/messages/{message_id}", headers=person.auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["message_id"] == message_id
    assert body["status"] == "queued"
    assert body["delivered_at"] is None
    assert body["attempts"] == [
        {
            "channel": "telegram",
            "attempt": 1,
            "outcome": "retry",
            "error": "Telegram server error",
            "attempted_at": body["attempts"][0]["attempted_at"],
        }
    ]
    assert "hush" not in await resp.text()


async def test_status_is_404_for_another_token_and_unknown_ids(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sent = await api.post(f"{API}/send", json={"content": {"text": "x"}}, headers=person.auth)
    message_id = (await sent.json())["message_id"]
    other = await make_person(sessionmaker, 888)
    assert (await api.get(f"{API}/messages/{message_id}", headers=other.auth)).status == 404
    assert (await api.get(f"{API}/messages/nope", headers=person.auth)).status == 404
    assert (await api.get(f"{API}/messages/{message_id}")).status == 401


async def test_channels_lists_telegram_configured_and_healthy(api: Client, person: Person) -> None:
    resp = await api.get(f"{API}/channels", headers=person.auth)
    assert resp.status == 200
    listed = {c["name"]: c for c in (await resp.json())["channels"]}
    telegram = listed["telegram"]
    assert (telegram["configured"], telegram["healthy"], telegram["error"]) == (True, True, None)
    for name in ("email", "webhook", "sms", "push"):  # none set up in this app
        assert (listed[name]["configured"], listed[name]["healthy"]) == (False, False)
    assert set(listed) == {"telegram", "email", "webhook", "sms", "push"}


async def test_health_names_a_stopped_worker(api: Client, delivery: RecordingDelivery) -> None:
    ok = await api.get(f"{API}/health")
    assert ok.status == 200
    assert (await ok.json())["worker"] == {
        "ok": True,
        "last_error": None,
        "last_run_at": None,
        "unknown_send_outcomes": 0,
    }
    delivery.running = False
    bad = await api.get(f"{API}/health")
    body = await bad.json()
    assert bad.status == 503
    assert body["failing"] == ["worker"]


async def test_a_message_being_sent_reads_as_queued(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sent = await api.post(f"{API}/send", json={"content": {"text": "x"}}, headers=person.auth)
    message_id = (await sent.json())["message_id"]
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, message_id)
        assert row is not None
        row.status = MessageStatus.SENDING
    resp = await api.get(f"{API}/messages/{message_id}", headers=person.auth)
    assert (await resp.json())["status"] == "queued"
