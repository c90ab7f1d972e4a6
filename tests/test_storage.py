"""The models on a real migrated database, SQLite and PostgreSQL: constraints, cascades, UTC
datetimes, JSON, and the repository statements whose behaviour differs most between the two
(DELETE ... RETURNING, the row counts of conditional UPDATEs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import (
    ApiToken,
    DeliveryAttempt,
    LogGroup,
    Message,
    Topic,
    User,
    UserPreferences,
)
from storage.repositories import copies, groups, outbox, person_data, retention, users

pytestmark = pytest.mark.both_databases


async def _person(session: AsyncSession, telegram_id: int = 1001) -> User:
    user = User(telegram_id=telegram_id, language="en")
    session.add(user)
    await session.flush()
    return user


async def _message(session: AsyncSession, user: User, token: ApiToken | None) -> Message:
    msg = Message(
        id=f"m-{user.id}-{datetime.now(UTC).timestamp()}",
        sender_token_id=token.id if token else None,
        recipient_id=user.id,
        category=Category.AUTH,
        priority=Priority.HIGH,
        status=MessageStatus.QUEUED,
        encrypted_content=b"\x00ciphertext",
        idempotency_key_hash="k1",
        retention_expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    session.add(msg)
    await session.flush()
    return msg


@pytest.mark.sqlite_only
async def test_fk_pragma_is_on(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        assert (await session.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_erasing_a_person_cascades_to_everything(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        session.add(UserPreferences(user_id=user.id, quiet_mode="defer"))
        group = LogGroup(chat_id=-1001234, owner_id=user.id, is_forum=True)
        session.add(group)
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.AUTH, message_thread_id=7, name="x"))
        token = ApiToken(owner_id=user.id, token_hash="h" * 64, prefix="lgp_abcd", scopes=["send"])
        session.add(token)
        await session.flush()
        msg = await _message(session, user, token)
        session.add(
            DeliveryAttempt(
                message_id=msg.id,
                channel=Channel.TELEGRAM,
                attempt=1,
                outcome=AttemptOutcome.DELIVERED,
                external_id="42",
            )
        )
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM users WHERE telegram_id = 1001"))
    async with sessionmaker() as session:
        for model in (User, UserPreferences, LogGroup, Topic, ApiToken, Message, DeliveryAttempt):
            count = await session.scalar(select(func.count()).select_from(model))
            assert count == 0, model.__tablename__


async def test_idempotency_key_unique_per_token(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        token = ApiToken(owner_id=user.id, token_hash="a" * 64, prefix="lgp_a")
        session.add(token)
        await session.flush()
        await _message(session, user, token)
        with pytest.raises(IntegrityError):
            await _message(session, user, token)


async def test_one_log_group_per_person_and_topic_per_category(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        group = LogGroup(chat_id=-1001, owner_id=user.id)
        session.add(group)
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.GENERAL, name="General"))
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.GENERAL, name="again"))
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()
    async with sessionmaker() as session:
        user = await _person(session, 2002)
        session.add_all(
            [LogGroup(chat_id=-1, owner_id=user.id), LogGroup(chat_id=-2, owner_id=user.id)]
        )
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_a_linked_log_is_read_as_a_plain_view_of_its_topics(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user, bare_user = await _person(session), await _person(session, 2002)
        group = LogGroup(chat_id=-1001, owner_id=user.id)
        bare = LogGroup(chat_id=-1002, owner_id=bare_user.id)  # linked, no topics yet
        session.add_all([group, bare])
        await session.flush()
        session.add_all(
            [
                Topic(group_id=group.id, category=Category.GENERAL, name="General"),
                Topic(group_id=group.id, category=Category.AUTH, message_thread_id=7, name="a"),
            ]
        )
        await session.commit()
    async with sessionmaker() as session:
        view = await groups.linked_view_of(session, user.id)
        assert view is not None
        assert (view.id, view.chat_id) == (group.id, -1001)
        assert dict(view.threads) == {Category.GENERAL: None, Category.AUTH: 7}
        assert view.category_of_thread(7) is Category.AUTH
        assert view.category_of_thread(8) is None
        bare_view = await groups.linked_view_of(session, bare_user.id)
        assert bare_view is not None
        assert dict(bare_view.threads) == {}
        # Unlinked, or never linked: no view.
        await session.execute(
            update(LogGroup).where(LogGroup.id == group.id).values(unlinked_at=datetime.now(UTC))
        )
        assert await groups.linked_view_of(session, user.id) is None
        assert await groups.linked_view_of(session, user.id + 1000) is None


async def test_datetimes_come_back_aware_utc(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
    async with sessionmaker() as session:
        loaded = await session.get(User, user.id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetime_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        session.add(User(telegram_id=5, created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            await session.flush()


async def test_unknown_enum_value_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        msg = Message(
            id="bad",
            recipient_id=user.id,
            category="nonsense",  # type: ignore[arg-type]
            priority=Priority.LOW,
            status=MessageStatus.QUEUED,
            retention_expires_at=datetime.now(UTC),
        )
        session.add(msg)
        with pytest.raises(StatementError, match="nonsense"):
            await session.flush()


async def test_datetimes_keep_their_instant_to_the_microsecond(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tokyo = timezone(timedelta(hours=9))
    at = datetime(2030, 1, 1, 21, 0, 0, 123456, tzinfo=tokyo)  # 12:00:00.123456 UTC
    async with sessionmaker() as session, session.begin():
        session.add(User(telegram_id=9, created_at=at))
    async with sessionmaker() as session:
        loaded = await session.scalar(select(User.created_at).where(User.created_at == at))
        later = await session.scalar(
            select(func.count()).where(User.created_at > at - timedelta(microseconds=1))
        )
    assert loaded == at
    assert loaded.tzinfo is UTC
    assert (loaded.hour, loaded.microsecond) == (12, 123456)
    assert later == 1


async def test_json_columns_round_trip(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        session.add(
            UserPreferences(
                user_id=user.id,
                categories={"auth": False, "système": True},
                channel_order=["email", "telegram"],
            )
        )
    async with sessionmaker() as session:
        prefs = await session.get(UserPreferences, user.id)
    assert prefs is not None
    assert prefs.categories == {"auth": False, "système": True}
    assert prefs.channel_order == ["email", "telegram"]
    assert prefs.disabled_channels == []


async def test_a_long_language_tag_is_cut_to_its_column(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL enforces VARCHAR lengths (SQLite does not): Telegram's tag is cut, not fatal."""
    async with sessionmaker() as session, session.begin():
        user, created = await users.get_or_create(session, 11, "x-" + "a" * 40)
        assert created
    async with sessionmaker() as session, session.begin():
        again, created = await users.get_or_create(session, 11, "y-" + "b" * 40)
        assert not created
    assert again.id == user.id
    assert again.language == ("y-" + "b" * 40)[:16]


async def test_dropping_expired_records_reports_only_what_this_statement_deleted(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        old = await _message(session, user, None)
        old.retention_expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await _message(session, user, None)  # still within its retention
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        expired = await retention.expired(session, now, 10)
        assert [e.message_id for e in expired] == [old.id]
        dropped = await retention.drop_expired(session, [old.id, "gone-already"], now)
        assert dropped == {old.id: True}  # undelivered
    async with sessionmaker() as session, session.begin():
        assert await retention.drop_expired(session, [old.id], now) == {}  # another was first
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def _expired_then(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
    meanwhile: Callable[[Message], None],
) -> tuple[str, dict[str, bool]]:
    """A message past its retention, found so by the purge's read; then `meanwhile` done to
    it by a worker (committed) before the purge's DELETE. Its id, and what the DELETE did."""
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        old = await _message(session, user, None)
        old.retention_expires_at = now - timedelta(seconds=1)
        old.next_attempt_at = now - timedelta(seconds=1)  # due
    async with sessionmaker() as purge:
        [found] = await retention.expired(purge, now, 10)
        assert found.message_id == old.id
        assert found.undelivered
        if purge.bind.dialect.name == "sqlite":
            # SQLite's snapshot would refuse the DELETE after another commit: end the read.
            await purge.commit()
        async with sessionmaker() as worker, worker.begin():
            row = await worker.get(Message, old.id)
            assert row is not None
            meanwhile(row)
        dropped = await retention.drop_expired(purge, [old.id], now)
        await purge.commit()
    return old.id, dropped


@pytest.mark.both_databases
async def test_a_record_claimed_after_it_was_found_expired_is_not_dropped(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The purge reads what expired, then deletes it; a worker's lease committed in between
    # (seen by the DELETE on PostgreSQL) means it is being sent: it waits for the outcome.
    now = datetime.now(UTC)

    def leased(row: Message) -> None:
        # A worker's lease on it, committed meanwhile (a claim made now would refuse a
        # message past its retention: this is the DELETE's own check).
        row.status = MessageStatus.SENDING
        row.claimed_until = now + timedelta(minutes=1)

    message_id, dropped = await _expired_then(sessionmaker, now, leased)
    assert dropped == {}
    async with sessionmaker() as session:
        row = await session.get(Message, message_id)
    assert row is not None
    assert row.status is MessageStatus.SENDING


async def test_a_record_delivered_after_it_was_found_expired_is_dropped_as_delivered(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Read as undelivered, delivered by a worker before the DELETE: no "expired" notice.
    def delivered(row: Message) -> None:
        row.status = MessageStatus.DELIVERED

    message_id, dropped = await _expired_then(sessionmaker, datetime.now(UTC), delivered)
    assert dropped == {message_id: False}


async def _numbered(session: AsyncSession, prefix: str, count: int, due: datetime) -> list[Message]:
    """`count` messages to a new person, named prefix0, prefix1, ..., due at `due`."""
    user = await _person(session)
    numbered = []
    for n in range(count):
        message = await _message(session, user, None)
        message.id = f"{prefix}{n}"
        message.idempotency_key_hash = None
        message.next_attempt_at = due
        numbered.append(message)
    return numbered


async def test_a_queue_is_claimed_in_one_statement_and_what_is_not_tried_handed_back(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        queue = await _numbered(session, "q", 4, now)
        queue[3].next_attempt_at = now + timedelta(hours=1)  # q3: not due
    ids = [message.id for message in queue]
    lease = now + timedelta(seconds=30)
    async with sessionmaker() as session, session.begin():
        other_worker = now + timedelta(seconds=31)
        assert await outbox.claim(session, "q0", now, other_worker) is not None
    async with sessionmaker() as session, session.begin():
        # q0 is another worker's now, q3 is not due: neither is taken.
        claimed = await outbox.claim_many(session, ids, now, lease)
        assert sorted(claimed) == ["q1", "q2"]
        assert all(m.status is MessageStatus.SENDING for m in claimed.values())
        session.add(
            DeliveryAttempt(
                message_id="q1",
                channel=Channel.TELEGRAM,
                attempt=2,
                outcome=AttemptOutcome.RETRY,
                attempted_at=now,
            )
        )
    async with sessionmaker() as session:
        numbers = await outbox.next_attempt_numbers(
            session, [("q1", Channel.TELEGRAM), ("q2", Channel.TELEGRAM)]
        )
        assert numbers == {"q1": 3, "q2": 1}
        # Numbered per channel: q1's first email attempt would be 1.
        assert await outbox.next_attempt_number(session, "q1", Channel.EMAIL) == 1
    until = now + timedelta(minutes=5)
    async with sessionmaker() as session, session.begin():
        # A token that is not ours hands back nothing; ours hands back q1 and q2 only.
        await outbox.release(session, ["q1", "q2"], lease + timedelta(seconds=1), until)
        await outbox.release(session, ["q0", "q1", "q2"], lease, until)
    async with sessionmaker() as session:
        rows = {m.id: m for m in await session.scalars(select(Message))}
    for handed_back in ("q1", "q2"):
        assert rows[handed_back].status is MessageStatus.QUEUED
        assert rows[handed_back].claimed_until is None
        assert rows[handed_back].next_attempt_at == until
    # q0 is the other worker's (another token) and q3 was never claimed: both untouched.
    assert rows["q0"].status is MessageStatus.SENDING
    assert rows["q0"].claimed_until == other_worker
    assert rows["q3"].status is MessageStatus.QUEUED
    assert rows["q3"].next_attempt_at == now + timedelta(hours=1)


async def test_a_claim_is_won_once_and_only_its_holder_settles(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        message = await _message(session, user, None)
        message.next_attempt_at = now
    lease = now + timedelta(seconds=30)
    async with sessionmaker() as session, session.begin():
        assert [c.message_id for c in await outbox.due(session, now, 10)] == [message.id]
        assert await outbox.claim(session, message.id, now, lease)
    async with sessionmaker() as session, session.begin():
        assert not await outbox.claim(session, message.id, now, lease)  # the lease holds
        stale = lease + timedelta(seconds=1)  # not the token this claim set
        assert not await outbox.settle(session, message.id, stale, status=MessageStatus.FAILED)
        assert await outbox.extend_claim(session, message.id, lease, lease + timedelta(seconds=5))
        assert await outbox.settle(
            session, message.id, lease + timedelta(seconds=5), status=MessageStatus.DELIVERED
        )
    async with sessionmaker() as session:
        assert await session.scalar(select(Message.status)) is MessageStatus.DELIVERED


async def test_deliveries_are_settled_together_only_where_the_claim_still_holds(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        queue = await _numbered(session, "d", 4, now)
        for n, message in enumerate(queue):
            message.attempt_count = n
    ids = [message.id for message in queue]
    lease = now + timedelta(seconds=30)
    async with sessionmaker() as session, session.begin():
        assert len(await outbox.claim_many(session, ids[:3], now, lease)) == 3
    at = now + timedelta(seconds=1)
    async with sessionmaker() as session, session.begin():
        held = await outbox.settle_delivered(
            session,
            # d1 with another worker's token; d3 was never claimed.
            [("d0", lease), ("d1", lease + timedelta(seconds=1)), ("d2", lease), ("d3", lease)],
            at,
            Channel.EMAIL,
        )
        assert held == {"d0", "d2"}
        assert await outbox.settle_delivered(session, [], at, Channel.EMAIL) == set()
    async with sessionmaker() as session:
        rows = {m.id: m for m in await session.scalars(select(Message))}
    for delivered, count in (("d0", 1), ("d2", 3)):
        row = rows[delivered]
        assert row.status is MessageStatus.DELIVERED
        assert (row.delivered_at, row.delivered_via) == (at, Channel.EMAIL)
        assert (row.attempt_count, row.encrypted_content, row.claimed_until) == (count, None, None)
    assert rows["d1"].status is MessageStatus.SENDING
    assert rows["d1"].encrypted_content is not None
    assert rows["d3"].status is MessageStatus.QUEUED


async def test_an_erase_that_must_not_race_a_send_deletes_nothing_while_one_is_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        [message] = await _numbered(session, "e", 1, now)
        user_id = message.recipient_id
    lease = now + timedelta(seconds=30)
    async with sessionmaker() as session, session.begin():
        assert await outbox.claim(session, "e0", now, lease) is not None
    async with sessionmaker() as session, session.begin():
        assert not await person_data.erase(session, user_id, unless_being_sent_at=now)
        assert await session.get(User, user_id) is not None
    # Once the lease ran out (the worker died), the erase goes ahead.
    later = lease + timedelta(seconds=1)
    async with sessionmaker() as session, session.begin():
        assert await person_data.erase(session, user_id, unless_being_sent_at=later)
    async with sessionmaker() as session:
        assert await session.get(User, user_id) is None
        assert await session.get(Message, "e0") is None


async def test_an_erase_deletes_nothing_if_the_bot_wrote_to_the_log_since_it_listed_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    listed = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        user_id = user.id
        copies.add(
            session,
            user_id=user_id,
            message_id=None,
            chat_id=-100,
            telegram_ids=[7],
            sent_at=listed + timedelta(seconds=1),
            delete_at=None,
        )
    async with sessionmaker() as session, session.begin():
        assert not await person_data.erase(session, user_id, unless_sent_since=listed)
    async with sessionmaker() as session, session.begin():
        later = listed + timedelta(seconds=2)
        assert await person_data.erase(session, user_id, unless_sent_since=later)


async def test_a_worker_learns_which_chats_were_held_from_the_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    later, latest = now + timedelta(seconds=30), now + timedelta(seconds=90)
    telegram, hook = [Channel.TELEGRAM.value], [Channel.WEBHOOK.value]
    # person label -> their messages: (status, due, lease, chain, place in it)
    outboxes: dict[str, list[tuple[MessageStatus, datetime, datetime | None, list[str], int]]] = {
        "retry": [(MessageStatus.QUEUED, later, None, telegram, 0)],
        "two held, the later counts": [
            (MessageStatus.QUEUED, later, None, telegram, 0),
            (MessageStatus.QUEUED, latest, None, telegram, 0),
        ],
        "unknown outcome": [(MessageStatus.SENDING, now, latest, telegram, 0)],
        "lease run out": [(MessageStatus.SENDING, now, now - timedelta(seconds=1), telegram, 0)],
        "due now": [(MessageStatus.QUEUED, now, None, telegram, 0)],
        "webhook retry": [(MessageStatus.QUEUED, later, None, hook, 0)],
        "fell back to telegram": [(MessageStatus.QUEUED, later, None, [*hook, *telegram], 1)],
        "fell back from telegram": [(MessageStatus.QUEUED, later, None, [*telegram, *hook], 1)],
        "deferred": [(MessageStatus.DEFERRED, later, None, telegram, 0)],
    }
    async with sessionmaker() as session, session.begin():
        people = {label: await _person(session, 2000 + n) for n, label in enumerate(outboxes)}
        for label, rows in outboxes.items():
            for n, (status, due, lease, chain, index) in enumerate(rows):
                session.add(
                    Message(
                        id=f"{label}-{n}",
                        recipient_id=people[label].id,
                        category=Category.GENERAL,
                        priority=Priority.NORMAL,
                        status=status,
                        next_attempt_at=due,
                        claimed_until=lease,
                        channels=chain,
                        channel_index=index,
                        retention_expires_at=now + timedelta(days=1),
                    )
                )
    async with sessionmaker() as session:
        held = await outbox.held_chats(session, now)

    by_label = {label: held.get(person.id) for label, person in people.items()}
    assert by_label == {
        "retry": later,
        "two held, the later counts": latest,
        "unknown outcome": latest,
        "lease run out": None,
        "due now": None,
        "webhook retry": None,
        "fell back to telegram": later,
        "fell back from telegram": None,
        "deferred": None,
    }
