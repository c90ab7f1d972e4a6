"""gateway.export and storage.repositories.person_data against a migrated SQLite database: the
export holds everything about one person and nothing of another, never a token hash or
content; erasure leaves no row that refers to the person (tests.person_rows, generic over the
metadata), and that check does find leftovers when there are any."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.export import EXPORTED, FORMAT_VERSION, NOT_EXPORTED, export_person
from gateway.topics import TOPICS
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import (
    ApiToken,
    Base,
    DeliveryAttempt,
    LogGroup,
    Message,
    Topic,
    User,
    UserPreferences,
)
from storage.repositories import copies, person_data, preferences
from tests.person_rows import footprint, footprint_of, references, references_to

pytestmark = pytest.mark.both_databases

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CONTENT = b"sealed-content-bytes"


@dataclass
class Seeded:
    user_id: int
    telegram_id: int
    chat_id: int
    token_ids: list[int] = field(default_factory=list)
    token_hashes: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


async def seed(session: AsyncSession, telegram_id: int, chat_id: int, tag: str) -> Seeded:
    """A person with everything: preferences, a group with topics, an active and a revoked
    token, a delivered message (attempts, two Telegram copies), a queued one with content, a
    deferred one folded into a digest carrier."""
    user = User(telegram_id=telegram_id, language="de", created_at=NOW - timedelta(days=10))
    session.add(user)
    await session.flush()
    seeded = Seeded(user.id, telegram_id, chat_id)
    session.add(
        UserPreferences(
            user_id=user.id,
            categories={"plugin": False},
            timezone="Europe/Berlin",
            quiet_mode="defer",
            default_retention_seconds=7200,
        )
    )
    group = LogGroup(chat_id=chat_id, owner_id=user.id, is_forum=True, linked_at=NOW)
    session.add(group)
    await session.flush()
    for number, category in enumerate(Category):
        thread = None if category == Category.GENERAL else 100 + number
        session.add(
            Topic(
                group_id=group.id,
                category=category,
                message_thread_id=thread,
                name=TOPICS[category].name,
            )
        )
    for revoked in (False, True):
        secret = f"lgp_{tag}_{os.urandom(8).hex()}"
        token = ApiToken(
            owner_id=user.id,
            token_hash=hashlib.sha256(secret.encode()).hexdigest(),
            prefix=secret[:12],
            scopes=["send"],
            created_at=NOW - timedelta(days=5),
            last_used_at=None if revoked else NOW - timedelta(hours=1),
            revoked_at=NOW - timedelta(days=1) if revoked else None,
        )
        session.add(token)
        await session.flush()
        seeded.token_ids.append(token.id)
        seeded.token_hashes.append(token.token_hash)
        seeded.prefixes.append(token.prefix)

    def message(status: MessageStatus, **values: object) -> Message:
        row = Message(
            id=f"{tag}-{status.value}",
            sender_token_id=seeded.token_ids[0],
            recipient_id=user.id,
            category=Category.AUTH,
            priority=Priority.HIGH,
            status=status,
            created_at=NOW - timedelta(hours=2),
            retention_expires_at=NOW + timedelta(days=1),
            **values,
        )
        session.add(row)
        seeded.message_ids.append(row.id)
        return row

    delivered = message(MessageStatus.DELIVERED, delivered_at=NOW - timedelta(hours=1))
    message(MessageStatus.QUEUED, encrypted_content=CONTENT, idempotency_key_hash=f"{tag}-key")
    message(
        MessageStatus.DEFERRED, encrypted_content=CONTENT, carried_by=delivered.id, attempt_count=1
    )
    await session.flush()
    for attempt, outcome in enumerate((AttemptOutcome.RETRY, AttemptOutcome.DELIVERED), 1):
        session.add(
            DeliveryAttempt(
                message_id=delivered.id,
                channel=Channel.TELEGRAM,
                attempt=attempt,
                outcome=outcome,
                external_id=str(500 + attempt) if outcome == AttemptOutcome.DELIVERED else None,
                error="TelegramNetworkError" if outcome == AttemptOutcome.RETRY else None,
                attempted_at=NOW - timedelta(hours=1),
            )
        )
    copies.add(
        session,
        user_id=user.id,
        message_id=delivered.id,
        chat_id=chat_id,
        telegram_ids=[501, 502],
        sent_at=NOW - timedelta(hours=1),
        delete_at=NOW + timedelta(hours=1),
    )
    await session.flush()
    return seeded


async def two_people(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[Seeded, Seeded]:
    async with sessionmaker() as session, session.begin():
        ada = await seed(session, 7_000_001, -1_000_000_000_101, "ada")
        bo = await seed(session, 7_000_002, -1_000_000_000_202, "bo")
    return ada, bo


async def export_of(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> dict[str, Any]:
    async with sessionmaker() as session:
        return await export_person(session, user_id, now=NOW)


# --- export -----------------------------------------------------------------------------------


async def test_export_holds_everything_of_the_person_and_nothing_of_another(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ada, bo = await two_people(sessionmaker)
    document = await export_of(sessionmaker, ada.user_id)
    text = json.dumps(document)  # plain JSON: no custom encoder needed
    assert json.loads(text) == document

    assert document["format_version"] == FORMAT_VERSION
    assert document["exported_at"] == NOW.isoformat()
    assert document["profile"] == {
        "id": ada.user_id,
        "telegram_id": ada.telegram_id,
        "language": "de",
        "created_at": (NOW - timedelta(days=10)).isoformat(),
    }

    prefs = document["preferences"]
    assert prefs["stored"] is True
    assert prefs["categories"] == {"plugin": False}
    assert prefs["timezone"] == "Europe/Berlin"
    assert prefs["quiet_mode"] == "defer"
    assert prefs["default_retention_seconds"] == 7200
    assert prefs["effective_default_retention_seconds"] == 7200
    assert datetime.fromisoformat(prefs["updated_at"]).tzinfo is not None
    every_column = {c.name for c in UserPreferences.__table__.columns} - {"user_id"}
    assert every_column <= set(prefs)

    group = document["log_group"]
    assert group["chat_id"] == ada.chat_id
    assert group["is_forum"] is True
    assert group["linked_at"] == NOW.isoformat()
    assert group["unlinked_at"] is None
    assert {t["category"]: t["message_thread_id"] for t in group["topics"]}["general"] is None
    assert {t["category"] for t in group["topics"]} == {c.value for c in Category}
    assert {t["name"] for t in group["topics"]} == {s.name for s in TOPICS.values()}

    tokens = document["api_tokens"]
    assert [t["prefix"] for t in tokens] == ada.prefixes
    assert [t["id"] for t in tokens] == ada.token_ids
    assert all(t["scopes"] == ["send"] for t in tokens)
    assert tokens[0]["revoked_at"] is None
    assert tokens[0]["last_used_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert tokens[1]["revoked_at"] == (NOW - timedelta(days=1)).isoformat()
    assert all("token_hash" not in t for t in tokens)

    by_id = {m["id"]: m for m in document["messages"]}
    assert sorted(by_id) == sorted(ada.message_ids)
    delivered, queued, deferred = (by_id[f"ada-{s}"] for s in ("delivered", "queued", "deferred"))
    assert delivered["status"] == "delivered"
    assert delivered["category"] == "auth"
    assert delivered["priority"] == "high"
    assert delivered["delivered_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert delivered["sender_token_id"] == ada.token_ids[0]
    assert (delivered["content_stored"], queued["content_stored"]) == (False, True)
    assert queued["idempotency_key_hash"] == "ada-key"
    assert deferred["carried_by"] == "ada-delivered"
    assert deferred["attempt_count"] == 1
    assert [(a["attempt"], a["outcome"], a["external_id"]) for a in delivered["attempts"]] == [
        (1, "retry", None),
        (2, "delivered", "502"),
    ]
    assert delivered["attempts"][0]["error"] == "TelegramNetworkError"
    assert queued["attempts"] == []
    assert all("encrypted_content" not in m for m in document["messages"])

    assert [
        (c["chat_id"], c["telegram_message_id"], c["first_part_id"], c["message_id"])
        for c in document["telegram_copies"]
    ] == [(ada.chat_id, 501, 501, "ada-delivered"), (ada.chat_id, 502, 501, "ada-delivered")]
    assert document["telegram_copies"][0]["sent_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert document["telegram_copies"][0]["delete_at"] == (NOW + timedelta(hours=1)).isoformat()

    # never a secret's hash, never content, nothing of Bo
    for token_hash in ada.token_hashes + bo.token_hashes:
        assert token_hash not in text
    assert "token_hash" not in text
    assert CONTENT.decode() not in text
    for value in (str(bo.telegram_id), str(bo.chat_id), *bo.prefixes, "bo-"):
        assert value not in text


async def test_export_of_a_new_person_shows_the_default_preferences(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=7_000_003)
        session.add(user)
    document = await export_of(sessionmaker, user.id)
    assert document["log_group"] is None
    assert document["api_tokens"] == document["messages"] == document["telegram_copies"] == []
    prefs = document["preferences"]
    assert prefs["stored"] is False
    assert prefs["default_retention_seconds"] is None
    assert prefs["effective_default_retention_seconds"] == 86_400
    assert prefs["updated_at"] is None
    # exactly what a row created now would hold (the export itself creates none)
    async with sessionmaker() as session:
        row = await preferences.for_update(session, user.id)
        fresh = {
            c.name: getattr(row, c.key)
            for c in UserPreferences.__table__.columns
            if c.name not in ("user_id", "updated_at")
        }
        await session.rollback()
    assert {k: prefs[k] for k in fresh} == fresh
    async with sessionmaker() as session:
        assert await session.get(UserPreferences, user.id) is None


def test_every_column_is_exported_or_left_out_on_purpose() -> None:
    # A new table or column fails here until gateway.export decides about it.
    assert {m.__table__.name for m in NOT_EXPORTED} == set(Base.metadata.tables)
    for model, left_out in NOT_EXPORTED.items():
        columns = {c.name for c in model.__table__.columns}
        exported = set(EXPORTED.get(model, columns - set(left_out)))
        assert exported | set(left_out) == columns, model.__name__
        assert not exported & set(left_out), model.__name__
    assert "token_hash" in NOT_EXPORTED[ApiToken]
    assert "encrypted_content" in NOT_EXPORTED[Message]


# --- erasure and the check that nothing is left -----------------------------------------------


async def test_erase_leaves_no_row_that_refers_to_the_person(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ada, bo = await two_people(sessionmaker)
    # Bo got a message sent with Ada's token: it is Bo's; only its link to the token goes.
    async with sessionmaker() as session, session.begin():
        session.add(
            Message(
                id="bo-from-ada",
                sender_token_id=ada.token_ids[0],
                recipient_id=bo.user_id,
                category=Category.SYSTEM,
                priority=Priority.NORMAL,
                status=MessageStatus.DELIVERED,
                retention_expires_at=NOW + timedelta(days=1),
            )
        )
    person = await footprint_of(sessionmaker, ada.user_id)
    bo_before = await footprint_of(sessionmaker, bo.user_id)
    # The footprint reaches every kind of row of Ada's, through the foreign keys alone.
    assert {name: len(rows) for name, rows in person.rows.items()} == {
        "users": 1,
        "user_preferences": 1,
        "log_groups": 1,
        "topics": len(Category),
        "api_tokens": 2,
        "messages": 3,
        "delivery_attempts": 2,
        "telegram_copies": 2,
    }
    assert person.telegram_ids == {ada.telegram_id, ada.chat_id}
    # Before erasure the check finds them all (it can fail), and Bo's message's token link.
    found = await references_to(sessionmaker, person)
    assert len(found) >= person.count()
    assert any("bo-from-ada" in line and "sender_token_id" in line for line in found)

    async with sessionmaker() as session:
        assert await person_data.erase(session, ada.user_id) is True
        await session.commit()

    assert await references_to(sessionmaker, person) == []
    bo_after = await footprint_of(sessionmaker, bo.user_id)
    assert {n: set(r) for n, r in bo_after.rows.items()} == {
        n: set(r) for n, r in bo_before.rows.items()
    }
    async with sessionmaker() as session:
        kept = await session.get(Message, "bo-from-ada")
        assert kept is not None
        assert kept.sender_token_id is None
        assert await person_data.erase(session, ada.user_id) is False  # already gone


async def test_deletable_copies_are_the_young_ones_by_chat(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ada, bo = await two_people(sessionmaker)
    async with sessionmaker() as session, session.begin():
        copies.add(
            session,
            user_id=ada.user_id,
            message_id=None,
            chat_id=-1_000_000_000_999,  # an earlier log
            telegram_ids=[7, 8],
            sent_at=NOW - timedelta(minutes=5),
            delete_at=None,
        )
        copies.add(
            session,
            user_id=ada.user_id,
            message_id=None,
            chat_id=ada.chat_id,
            telegram_ids=[9],
            sent_at=NOW - timedelta(hours=49),
            delete_at=None,
        )
    async with sessionmaker() as session:
        deletable = await person_data.deletable_copies(
            session, ada.user_id, NOW - timedelta(hours=48)
        )
        assert deletable == {-1_000_000_000_999: [7, 8], ada.chat_id: [501, 502]}
        assert await person_data.count_copies(session, ada.user_id) == 5
        assert await person_data.count_copies(session, bo.user_id) == 2


def test_the_check_covers_tables_it_was_not_written_for() -> None:
    """A table added later (a users foreign key, a chat id column) is walked without changes,
    and rows left behind in it are reported."""
    metadata = MetaData()
    users = Table(
        "users",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("telegram_id", BigInteger),
    )
    secrets = Table(
        "webhook_secrets",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("owner_id", ForeignKey("users.id", ondelete="CASCADE")),
    )
    deliveries = Table(
        "webhook_deliveries",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("secret_id", ForeignKey("webhook_secrets.id", ondelete="CASCADE")),
    )
    mentions = Table(
        "mentions",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("target_chat_id", BigInteger),  # no foreign key: found by its name
        Column("note", String(20)),
    )
    engine = create_engine("sqlite://")  # foreign keys off: nothing cascades by itself
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(insert(users), [{"id": 1, "telegram_id": 555}, {"id": 2, "telegram_id": 666}])
        conn.execute(insert(secrets), [{"id": 10, "owner_id": 1}, {"id": 20, "owner_id": 2}])
        conn.execute(insert(deliveries), [{"id": 100, "secret_id": 10}])
        conn.execute(insert(mentions), [{"id": 7, "target_chat_id": 555, "note": "x"}])

        person = footprint(conn, metadata, 1)
        assert {n: set(r) for n, r in person.rows.items()} == {
            "users": {(1,)},
            "webhook_secrets": {(10,)},
            "webhook_deliveries": {(100,)},
        }
        conn.execute(delete(users).where(users.c.id == 1))  # the cascade "forgotten"
        found = references(conn, metadata, person)
        assert any(line.startswith("webhook_secrets (10,)") for line in found)
        assert any(line.startswith("webhook_deliveries (100,)") for line in found)
        assert any(line.startswith("mentions (7,)") for line in found)
        assert not any("(20,)" in line or "users" in line.split()[0] for line in found)

        conn.execute(delete(secrets).where(secrets.c.id == 10))
        conn.execute(delete(deliveries))
        conn.execute(delete(mentions))
        assert references(conn, metadata, person) == []
        assert conn.execute(select(users.c.id)).scalars().all() == [2]
