"""The recipient-state cache (gateway.recipient_cache) behind submission: a warm submit reads
none of the recipient's tables, and every way the bot, the worker or a bulk statement changes
them is seen by the very next submit. Real SQLite, real sessions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import prefs_menu
from gateway import personal_log
from gateway import recipient_cache as recipient_cache_module
from gateway.channels.webhook import WebhookChannel
from gateway.contact_setup import ContactSetup
from gateway.content_cipher import ContentCipher
from gateway.message_request import MessageRequest
from gateway.recipient_cache import RecipientCache, RecipientSnapshot, read_snapshot
from gateway.routing import Preferences
from gateway.runtime import build_bot
from gateway.submission import Sender, SubmissionError, Submitted, Submitter
from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from storage.engine import create_sessionmaker
from storage.enums import Category, Channel, ContactState, MessageStatus
from storage.models import LogGroup, Message, Topic, User, UserPreferences
from storage.repositories import contacts, groups, person_data, preferences
from tests.api.conftest import Person, ServerFactory, make_person
from tests.held_calls import HeldCalls

# Midday in Tokyo (the default time zone): no quiet hours in the way.
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
RECIPIENT_TABLES = re.compile(r"\b(log_groups|topics|contacts|user_preferences)\b", re.I)


@pytest.fixture
def cipher() -> ContentCipher:
    return ContentCipher(b"k" * 32)


@pytest.fixture
def submitter(sessionmaker: async_sessionmaker[AsyncSession], cipher: ContentCipher) -> Submitter:
    return Submitter(sessionmaker, cipher, clock=lambda: NOW, on_queued=lambda: None)


@pytest.fixture
async def person(sessionmaker: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(sessionmaker, 501)


@pytest.fixture
async def unlinked(sessionmaker: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(sessionmaker, 502, linked=False)


class Statements:
    """Every SQL statement the engine sends, while `watching()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, *args: Any) -> None:
        self.seen.append(str(args[2]))

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.seen = []
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._record)
        try:
            yield self.seen
        finally:
            event.remove(self.engine.sync_engine, "before_cursor_execute", self._record)

    def recipient_reads(self) -> list[str]:
        return [s for s in self.seen if RECIPIENT_TABLES.search(s)]


@pytest.fixture
def statements(engine: AsyncEngine) -> Statements:
    return Statements(engine)


def request(**fields: Any) -> MessageRequest:
    return MessageRequest.model_validate({"content": {"text": "hi"}, **fields})


async def send(submitter: Submitter, person: Person, **fields: Any) -> Submitted:
    return await submitter.submit(Sender(person.token_id, person.user_id), request(**fields))


async def refused(submitter: Submitter, person: Person, **fields: Any) -> SubmissionError:
    with pytest.raises(SubmissionError) as raised:
        await send(submitter, person, **fields)
    return raised.value


def in_topic(thread_id: int | None) -> dict[str, Any]:
    return {"context_labels": {"telegram.topic_id": str(thread_id)}}


async def assert_warm(submitter: Submitter, person: Person, statements: Statements) -> None:
    with statements.watching():
        await send(submitter, person)
    assert statements.recipient_reads() == []


# --- the hot path -----------------------------------------------------------------------------


async def test_a_warm_submit_reads_none_of_the_recipient_tables(
    submitter: Submitter, person: Person, statements: Statements
) -> None:
    with statements.watching() as cold:
        first = await send(submitter, person, category="system")
    assert first.status is MessageStatus.QUEUED
    assert len(statements.recipient_reads()) >= 3  # the group (+ topics), contacts, preferences

    with statements.watching() as warm:
        second = await send(submitter, person, category="system", **in_topic(5016))
    assert second.created
    assert statements.recipient_reads() == []
    assert any(s.startswith("INSERT INTO messages") for s in warm)  # the watch does watch
    assert submitter.recipients.hits == 1
    assert submitter.recipients.reads.reads == 1
    assert len(cold) > len(warm)


async def test_a_warm_submit_keeps_the_errors(
    submitter: Submitter, person: Person, unlinked: Person
) -> None:
    for _ in range(2):  # cold, then warm
        assert (await refused(submitter, unlinked)).status == 409
        wrong_topic = await refused(submitter, person, **in_topic(999))
        assert (wrong_topic.status, wrong_topic.code) == (422, "invalid_request")
        with_recipient = await refused(submitter, person, recipient="someone")
        assert with_recipient.status == 422
    assert submitter.recipients.hits >= 2


async def test_without_a_key_a_warm_submit_opens_no_connection_before_its_commit(
    submitter: Submitter, person: Person, statements: Statements
) -> None:
    await send(submitter, person)
    with statements.watching() as seen:
        await send(submitter, person)
    assert [s.split()[0] for s in seen] == ["INSERT"]


# --- preferences --------------------------------------------------------------------------------


async def test_a_preference_changed_as_the_bot_does_is_seen_by_the_next_submit(
    submitter: Submitter,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    statements: Statements,
) -> None:
    assert (await send(submitter, person, category="system")).status is MessageStatus.QUEUED
    async with sessionmaker() as session:  # /prefs: a category button
        row = await preferences.for_update(session, person.user_id)
        assert prefs_menu.apply_set(row, prefs_menu.Setting.CATEGORY, "system", False)
        await session.commit()
    assert (await send(submitter, person, category="system")).status is MessageStatus.SUPPRESSED

    async with sessionmaker() as session:  # /retention 1h
        row = await preferences.for_update(session, person.user_id)
        row.default_retention_seconds = 3600
        await session.commit()
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(hours=1)
    await assert_warm(submitter, person, statements)


async def test_a_rolled_back_change_leaves_the_cache_warm(
    submitter: Submitter,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    statements: Statements,
) -> None:
    await send(submitter, person)
    async with sessionmaker() as session:
        row = await preferences.for_update(session, person.user_id)  # flushed: noted
        row.default_retention_seconds = 60
        await session.flush()
        await session.rollback()
        session.add(User(telegram_id=9_999))  # the same session commits something else
        await session.commit()
    await assert_warm(submitter, person, statements)
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(days=1)


async def test_a_savepoint_counts_when_the_whole_transaction_commits(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await send(submitter, person)
    async with sessionmaker() as session:
        async with session.begin_nested():
            row = await preferences.for_update(session, person.user_id)
            row.default_retention_seconds = 60
        # Released, not committed: others still read the old row, and may cache it.
        assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(days=1)
        await session.commit()
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(seconds=60)


# --- the personal log and its topics ------------------------------------------------------------


async def test_unlinking_and_relinking_the_log_is_seen_by_the_next_submit(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await send(submitter, person)
    chat_id = -100_000_000 - 501
    async with sessionmaker() as session:  # the bot was removed from the group
        assert await personal_log.unlink_chat(session, chat_id) is not None
        await session.commit()
    assert (await refused(submitter, person)).status == 409

    async with sessionmaker() as session:  # added back: what link_group does for a relink
        group = await groups.by_chat_id(session, chat_id)
        assert group is not None
        group.unlinked_at = None
        await session.commit()
    assert (await send(submitter, person)).created


async def test_the_snapshot_gives_the_log_as_a_delivery_reads_it(
    person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The delivery worker takes the personal log from the snapshot instead of reading it:
    the same log, and none once it is unlinked."""
    cache = RecipientCache(sessionmaker)
    async with sessionmaker() as session:
        read = await groups.linked_view_of(session, person.user_id)
    assert read is not None
    assert len(read.threads) > 1
    assert (await cache.load(person.user_id)).log_view == read
    async with sessionmaker() as session:
        assert await personal_log.unlink_chat(session, read.chat_id) is not None
        await session.commit()
    assert (await cache.load(person.user_id)).log_view is None


async def test_a_group_given_another_chat_id_is_seen_by_the_next_delivery(
    person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The snapshot holds the log's chat id (where deliveries go): a bulk UPDATE of it (a
    group upgraded to a supergroup changes its id) forgets the person."""
    cache = RecipientCache(sessionmaker)
    view = (await cache.load(person.user_id)).log_view
    assert view is not None
    async with sessionmaker() as session:
        await session.execute(
            update(LogGroup).where(LogGroup.id == view.id).values(chat_id=view.chat_id - 1)
        )
        await session.commit()
    moved = (await cache.load(person.user_id)).log_view
    assert moved is not None
    assert moved.chat_id == view.chat_id - 1


async def test_a_topic_removed_added_or_moved_is_seen_by_the_next_submit(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    thread = person.thread_ids[Category.AUTH.value]
    assert thread is not None
    await send(submitter, person, **in_topic(thread))

    # Removed, in a session that never loaded the group (its owner is found in the cache).
    async with sessionmaker() as session:
        topic = await session.scalar(select(Topic).where(Topic.message_thread_id == thread))
        assert topic is not None
        group_id = topic.group_id
        await session.delete(topic)
        await session.commit()
    assert (await refused(submitter, person, **in_topic(thread))).status == 422

    async with sessionmaker() as session:  # added by the group's id alone
        session.add(
            Topic(group_id=group_id, category=Category.AUTH, message_thread_id=77, name="a")
        )
        await session.commit()
    assert (await send(submitter, person, **in_topic(77))).created

    async with sessionmaker() as session:  # re-created in Telegram: create_topic's new thread
        topic = await session.scalar(select(Topic).where(Topic.message_thread_id == 77))
        assert topic is not None
        topic.message_thread_id = 78
        await session.commit()
    assert (await refused(submitter, person, **in_topic(77))).status == 422
    assert (await send(submitter, person, **in_topic(78))).created


@pytest.fixture
async def sandbox(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[Bot, SandboxClient]]:
    server = await aiohttp_server(create_sandbox_app())
    url = str(server.make_url("")).rstrip("/")
    bot = build_bot(DEFAULT_BOT_TOKEN, url)
    async with aiohttp.ClientSession() as http:
        yield bot, SandboxClient(url, http)
    await bot.session.close()


async def test_linking_and_moving_the_log_with_the_bot_is_seen_by_the_next_submit(
    submitter: Submitter,
    sessionmaker: async_sessionmaker[AsyncSession],
    sandbox: tuple[Bot, SandboxClient],
) -> None:
    bot, world = sandbox
    telegram_id = await world.create_user("Ada")
    ada = await make_person(sessionmaker, telegram_id, linked=False)
    assert (await refused(submitter, ada)).status == 409  # no log yet: cached as such

    async def forum(title: str) -> int:
        chat_id = await world.create_group(title, owner_id=telegram_id, is_forum=True)
        rights = {"can_manage_topics": True}
        await world.set_bot_membership(
            chat_id, by_id=telegram_id, status="administrator", rights=rights
        )
        return chat_id

    async def link(chat_id: int, *, replace: bool = False) -> dict[Category, int | None]:
        async with sessionmaker() as session:
            user = await session.get(User, ada.user_id)
            assert user is not None
            result = await personal_log.link_group(
                session, bot, user, chat_id, replace_existing=replace
            )
            await session.commit()
            assert result.group is not None, result
            return {t.category: t.message_thread_id for t in result.group.topics}

    first = await link(await forum("Log"))
    second = await forum("New log")
    for _ in range(10):  # thread ids are message ids: the new group's differ from the old's
        await world.send_message(telegram_id, second, "hello")
    assert (await send(submitter, ada)).created
    old_thread = first[Category.AUTH]
    await send(submitter, ada, **in_topic(old_thread))

    moved = await link(second, replace=True)  # the old group and topics go
    assert moved[Category.AUTH] != old_thread
    assert (await refused(submitter, ada, **in_topic(old_thread))).status == 422
    assert (await send(submitter, ada, **in_topic(moved[Category.AUTH]))).created


# --- contacts -------------------------------------------------------------------------------------


@pytest.fixture
async def setup(cipher: ContentCipher) -> AsyncIterator[ContactSetup]:
    webhooks = WebhookChannel()
    yield ContactSetup(cipher, None, webhooks, clock=lambda: NOW, public_url="https://x.test")
    await webhooks.close()


async def test_a_contact_verified_or_removed_is_seen_by_the_next_submit(
    submitter: Submitter,
    unlinked: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    setup: ContactSetup,
    statements: Statements,
) -> None:
    assert (await refused(submitter, unlinked)).status == 409
    async with sessionmaker() as session:  # the bot's phone sharing: verified at once
        await setup.set_phone(session, unlinked.user_id, "+4915112345678")
    # SMS interrupts: only urgent messages take it unasked.
    accepted = await send(submitter, unlinked, priority="urgent")
    assert accepted.status is MessageStatus.QUEUED

    async with sessionmaker() as session:  # /contacts: remove (a bulk DELETE)
        assert await setup.remove(session, unlinked.user_id, Channel.SMS)
    assert (await refused(submitter, unlinked)).status == 409

    async with sessionmaker() as session:
        await setup.set_phone(session, unlinked.user_id, "+4915112345678")
    assert (await send(submitter, unlinked, priority="urgent")).status is MessageStatus.QUEUED
    async with sessionmaker() as session:
        contact = await contacts.of(session, unlinked.user_id, Channel.SMS)
        assert contact is not None
        contact_id = contact.id
        await contacts.note_success(session, contact_id)  # a column no snapshot holds
        await session.commit()
    await assert_warm(submitter, unlinked, statements)

    async with sessionmaker() as session:  # the worker disables it (a bulk UPDATE by id)
        await contacts.set_state(session, contact_id, ContactState.DISABLED, "gone")
        await session.commit()
    assert (await refused(submitter, unlinked)).status == 409


# --- bulk statements and erasure ----------------------------------------------------------------


async def test_bulk_statements_invalidate(
    submitter: Submitter,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    statements: Statements,
) -> None:
    other = await make_person(sessionmaker, 503)
    await send(submitter, person)
    async with sessionmaker() as session:
        await preferences.for_update(session, person.user_id)
        await preferences.for_update(session, other.user_id)
        await session.commit()
    await send(submitter, person)

    async with sessionmaker() as session:  # someone else's row only: ours stays warm
        await session.execute(
            update(UserPreferences)
            .where(UserPreferences.user_id == other.user_id)
            .values(default_retention_seconds=120)
        )
        await session.commit()
    await assert_warm(submitter, person, statements)

    async with sessionmaker() as session:  # everyone's
        await session.execute(update(UserPreferences).values(default_retention_seconds=60))
        await session.commit()
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(seconds=60)

    async with sessionmaker() as session:  # textual SQL
        await session.execute(text("UPDATE user_preferences SET default_retention_seconds = 30"))
        await session.commit()
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(seconds=30)

    async with sessionmaker() as session:  # bulk, then rolled back: nothing happened
        await session.execute(update(UserPreferences).values(default_retention_seconds=10))
        await session.rollback()
    await assert_warm(submitter, person, statements)


async def test_an_erased_person_is_not_served_from_the_cache(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await send(submitter, person)
    async with sessionmaker() as session:
        assert await person_data.erase(session, person.user_id)
        await session.commit()
    # Read afresh: no log, no channel, and the token gone with the person.
    refusal = await refused(submitter, person)
    assert (refusal.status, refusal.code) == (401, "unauthorized")


async def test_writes_to_other_tables_stop_no_read_in_flight(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await send(submitter, person)  # a message row, committed
    cache = submitter.recipients
    ticket = cache.ticket()
    async with sessionmaker() as session:  # what the worker does to messages all the time
        await session.execute(update(Message).values(attempt_count=Message.attempt_count + 1))
        user = await session.get(User, person.user_id)
        assert user is not None
        await session.commit()
    await send(submitter, person)
    assert cache.ticket() == ticket


# --- the cache itself -----------------------------------------------------------------------------


async def test_a_read_overtaken_by_a_change_is_not_stored(
    submitter: Submitter,
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def read_then_change(session: AsyncSession, owner_id: int) -> RecipientSnapshot:
        snapshot = await read_snapshot(session, owner_id)
        async with sessionmaker() as other:  # commits after the read, before the store
            row = await preferences.for_update(other, owner_id)
            row.default_retention_seconds = 60
            await other.commit()
        return snapshot

    monkeypatch.setattr(recipient_cache_module, "read_snapshot", read_then_change)
    stale = await send(submitter, person)
    assert stale.retention_expires_at == NOW + timedelta(days=1)  # read before the change
    monkeypatch.undo()
    assert len(submitter.recipients) == 0
    assert (await send(submitter, person)).retention_expires_at == NOW + timedelta(seconds=60)


async def test_store_refuses_a_snapshot_read_before_an_invalidation(
    sessionmaker: async_sessionmaker[AsyncSession], person: Person
) -> None:
    cache = RecipientCache(sessionmaker)
    ticket = cache.ticket()
    async with sessionmaker() as session:
        snapshot = await read_snapshot(session, person.user_id)
    cache.invalidate([person.user_id + 1000])  # anyone's: the read may predate it
    assert not cache.store(person.user_id, snapshot, ticket)
    assert cache.get(person.user_id) is None
    assert cache.store(person.user_id, snapshot, cache.ticket())
    assert cache.get(person.user_id) is snapshot


def _snapshot(group_id: int | None = None) -> RecipientSnapshot:
    return RecipientSnapshot(
        group_id=group_id,
        topics={},
        verified_channels=frozenset(),
        stored_preferences=Preferences(),
        default_retention_seconds=None,
        default_ephemeral=False,
    )


async def test_the_cache_is_bounded_least_recently_used_first(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cache = RecipientCache(sessionmaker, max_entries=2)
    for owner_id in (1, 2):
        assert cache.store(owner_id, _snapshot(group_id=owner_id * 10), cache.ticket())
    assert cache.get(1) is not None  # 2 is now the least recently used
    cache.store(3, _snapshot(), cache.ticket())
    assert len(cache) == 2
    assert cache.get(2) is None
    assert cache.get(1) is not None
    assert cache.get(3) is not None
    for owner_id in range(100, 200):
        cache.store(owner_id, _snapshot(group_id=owner_id), cache.ticket())
    assert len(cache) == 2
    assert len(cache._owner_of_group) <= 2  # evicted entries leave no group behind


async def test_entries_expire(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    now = [0.0]
    cache = RecipientCache(sessionmaker, ttl_seconds=10, clock=lambda: now[0])
    cache.store(1, _snapshot(), cache.ticket())
    now[0] = 9.9
    assert cache.get(1) is not None
    now[0] = 10.0
    assert cache.get(1) is None
    assert len(cache) == 0


async def test_every_cache_on_a_sessionmaker_hears_its_writes(
    sessionmaker: async_sessionmaker[AsyncSession], person: Person, cipher: ContentCipher
) -> None:
    caches = [RecipientCache(sessionmaker), RecipientCache(sessionmaker)]
    for cache in caches:
        await cache.load(person.user_id)
        assert len(cache) == 1
    async with sessionmaker() as session:
        row = await preferences.for_update(session, person.user_id)
        row.default_ephemeral = True
        await session.commit()
    assert [len(cache) for cache in caches] == [0, 0]
    assert (await caches[0].load(person.user_id)).default_ephemeral


async def test_a_submitter_takes_only_a_cache_of_its_own_sessionmaker(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, cipher: ContentCipher
) -> None:
    elsewhere = RecipientCache(create_sessionmaker(engine))
    with pytest.raises(ValueError, match="sessionmaker"):
        Submitter(
            sessionmaker, cipher, clock=lambda: NOW, on_queued=lambda: None, recipients=elsewhere
        )
    shared = RecipientCache(sessionmaker)
    built = Submitter(
        sessionmaker, cipher, clock=lambda: NOW, on_queued=lambda: None, recipients=shared
    )
    assert built.recipients is shared


async def test_a_deleted_log_group_row_invalidates_its_owner(
    submitter: Submitter, person: Person, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await send(submitter, person)
    async with sessionmaker() as session:
        group = await session.scalar(select(LogGroup).where(LogGroup.owner_id == person.user_id))
        assert group is not None
        await session.delete(group)
        await session.commit()
    assert (await refused(submitter, person)).status == 409


# --- misses in flight together ----------------------------------------------------------------


async def _loads_waiting(
    cache: RecipientCache, owner_id: int, count: int
) -> list[asyncio.Task[RecipientSnapshot]]:
    loads = [asyncio.create_task(cache.load(owner_id)) for _ in range(count)]
    await asyncio.sleep(0)  # each has run to its first wait
    return loads


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldCalls:
    """read_snapshot, held (tests.held_calls)."""
    return HeldCalls(monkeypatch, recipient_cache_module, "read_snapshot")


@pytest.fixture
def cache(sessionmaker: async_sessionmaker[AsyncSession]) -> RecipientCache:
    return RecipientCache(sessionmaker)


async def test_misses_in_flight_together_share_one_read(
    cache: RecipientCache, held: HeldCalls, person: Person
) -> None:
    loads = await _loads_waiting(cache, person.user_id, 20)
    held.release.set()
    snapshots = await asyncio.gather(*loads)
    assert held.begun == 1
    assert (cache.reads.reads, cache.reads.shared) == (1, 19)
    assert all(s is snapshots[0] for s in snapshots)
    assert cache.get(person.user_id) is snapshots[0]
    assert len(cache.reads) == 0  # nothing left behind


async def test_a_miss_after_an_invalidation_does_not_share_an_older_read(
    cache: RecipientCache, held: HeldCalls, person: Person
) -> None:
    (first,) = await _loads_waiting(cache, person.user_id, 1)
    cache.invalidate([person.user_id])  # the read in flight may predate this change
    (second,) = await _loads_waiting(cache, person.user_id, 1)
    held.release.set()
    await asyncio.gather(first, second)
    assert held.begun == 2
    assert (cache.reads.reads, cache.reads.shared) == (2, 0)
    assert len(cache.reads) == 0


async def test_a_cancelled_caller_does_not_cancel_the_read_it_shares(
    cache: RecipientCache, held: HeldCalls, person: Person
) -> None:
    first, second = await _loads_waiting(cache, person.user_id, 2)
    first.cancel()
    held.release.set()
    snapshot = await second
    assert first.cancelled()
    assert snapshot.group_id is not None  # the person linked a log
    assert cache.get(person.user_id) is snapshot


async def test_a_change_during_a_shared_read_keeps_its_snapshot_out_of_the_cache(
    cache: RecipientCache, held: HeldCalls, person: Person
) -> None:
    loads = await _loads_waiting(cache, person.user_id, 3)
    cache.invalidate([person.user_id])  # after the read began, before it ended
    held.release.set()
    await asyncio.gather(*loads)
    assert held.begun == 1
    assert cache.get(person.user_id) is None


async def test_when_a_shared_read_fails_the_others_read_for_themselves(
    cache: RecipientCache, held: HeldCalls, person: Person
) -> None:
    held.failing = 1
    first, *others = await _loads_waiting(cache, person.user_id, 4)
    held.release.set()
    with pytest.raises(OSError, match="busy"):
        await first  # the request that began it hears why
    snapshots = await asyncio.gather(*others)
    # The three that had joined it read again, together: one read more.
    assert held.begun == 2
    assert all(s is snapshots[0] for s in snapshots)
    assert cache.get(person.user_id) is snapshots[0]
    assert len(cache.reads) == 0
