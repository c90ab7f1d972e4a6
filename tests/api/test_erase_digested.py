"""DELETE of a message that went (or goes) out inside a digest with other messages."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api import erase
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import DeliveryAttempt, Message, TelegramCopy
from storage.repositories import messages
from storage.types import utcnow
from tests.api.conftest import Client, Person, RecordingDelivery

API = "/api/v1/communication"


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


async def _digest_carrying_one(
    sessionmaker: async_sessionmaker[AsyncSession], person: Person
) -> tuple[str, str]:
    """A queued digest and the one message of the person's token it carries: (digest, member)."""
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
    return digest_id, member_id


async def test_a_digested_message_waits_for_its_digest_then_keeps_it(
    api: Client, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    digest_id, member_id = await _digest_carrying_one(sessionmaker, person)
    url = f"{API}/messages/{member_id}"
    resp = await api.delete(url, headers=person.auth)
    assert resp.status == 409  # its content is in the digest on its way out
    assert resp.headers["Retry-After"] == "5"
    assert (await api.get(url, headers=person.auth)).status == 200

    async with sessionmaker() as session, session.begin():
        for message_id in (digest_id, member_id):
            row = await session.get(Message, message_id)
            assert row is not None
            row.status = MessageStatus.DELIVERED
            row.delivered_at = utcnow()
            row.encrypted_content = None
            session.add(
                DeliveryAttempt(
                    message_id=message_id,
                    channel=Channel.TELEGRAM,
                    attempt=1,
                    outcome=AttemptOutcome.DELIVERED,
                    external_id="77",
                )
            )
    resp = await api.delete(url, headers=person.auth)
    body = await resp.json()
    assert resp.status == 200
    assert body["record_deleted"] is True
    assert body["telegram"]["deleted"] == []
    [kept] = body["telegram"]["not_deleted"]
    assert kept["telegram_message_id"] == 77
    assert "digest" in kept["reason"]
    async with sessionmaker() as session:
        assert await session.get(Message, digest_id) is not None  # the others' digest stays


async def test_a_message_folded_after_it_was_read_is_not_erased_behind_its_digest(
    person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # DELETE read the message unfolded; the worker folded it into a burst digest before the
    # record went: the delete must not go through (the content is on its way in the digest).
    digest_id, member_id = await _digest_carrying_one(sessionmaker, person)
    assert person.token_id is not None
    async with sessionmaker() as session:
        assert not await messages.erase_sent_by(
            session, member_id, person.token_id, utcnow(), carried_by=None
        )
        assert await messages.erase_sent_by(
            session, member_id, person.token_id, utcnow(), carried_by=digest_id
        )


async def _sent(
    sessionmaker: async_sessionmaker[AsyncSession],
    person: Person,
    status: MessageStatus,
    **extra: object,
) -> str:
    """A message the person's token sent, as it stands in `status`; its id."""
    message_id = str(uuid.uuid4())
    async with sessionmaker() as session, session.begin():
        session.add(_row(message_id, person, status, sender_token_id=person.token_id, **extra))
    return message_id


async def test_an_erasure_makes_the_worker_forget_what_it_rendered(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    delivery: RecordingDelivery,
) -> None:
    # Queued for a retry, say: the worker may still hold its text rendered.
    message_id = await _sent(sessionmaker, person, MessageStatus.QUEUED, encrypted_content=b"x")
    url = f"{API}/messages/{message_id}"
    assert (await api.delete(f"{API}/messages/{uuid.uuid4()}", headers=person.auth)).status == 404
    assert delivery.forgotten == 0  # nothing erased, nothing to forget
    resp = await api.delete(url, headers=person.auth)
    assert resp.status == 200, await resp.text()
    assert delivery.forgotten == 1


async def test_an_erasure_committed_is_200_even_if_its_copies_cannot_be_dropped(
    api: Client,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message_id = await _sent(sessionmaker, person, MessageStatus.DELIVERED, delivered_at=utcnow())
    async with sessionmaker() as session, session.begin():
        session.add(
            TelegramCopy(
                user_id=person.user_id,
                message_id=message_id,
                chat_id=-100_000_000 - 1,
                telegram_message_id=77,
                first_part_id=77,
                sent_at=utcnow(),
            )
        )

    async def busy(*_: object) -> None:  # the database locked by another process by then
        raise OperationalError("DELETE FROM telegram_copies", {}, _busy())

    monkeypatch.setattr(erase.copies, "drop", busy)
    resp = await api.delete(f"{API}/messages/{message_id}", headers=person.auth)
    body = await resp.json()
    assert resp.status == 200, body  # erased: "try again" would be untrue
    assert body["record_deleted"] is True
    async with sessionmaker() as session:
        assert await session.get(Message, message_id) is None


def _busy() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = 5  # type: ignore[attr-defined]  # SQLITE_BUSY, as sqlite3 sets it
    return error
