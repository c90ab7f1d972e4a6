"""The personal log changing under the worker: a deleted topic, a removed bot, no group."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.base import Rejected
from gateway.channels.telegram import TelegramAddress
from gateway.delivery.routes import CreateTopic, Route, recreate, resolve
from sandbox.client import SandboxClient
from storage.enums import AttemptOutcome, Category, MessageStatus
from storage.models import LogGroup, Topic
from storage.repositories import groups
from storage.repositories.groups import LogView
from storage.types import utcnow
from tests.delivery.conftest import (
    Enqueue,
    Personal,
    UTCClock,
    WorkerFactory,
    load,
    load_group,
)
from tests.sandbox.conftest import Scene


async def _system_topic_not_made(
    sessionmaker: async_sessionmaker[AsyncSession], personal: Personal
) -> None:
    """The person's system topic as if it was never created (the worker makes it)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Topic)
            .where(Topic.group_id == personal.group_id, Topic.category == Category.SYSTEM)
            .values(message_thread_id=None)
        )


async def test_a_deleted_topic_is_recreated_once_and_the_message_delivered_there(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    bot: Bot,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    old_thread = personal.threads[Category.PAYMENT]
    assert old_thread is not None
    await bot.delete_forum_topic(personal.chat_id, old_thread)
    message_id = await enqueue("refund issued", category=Category.PAYMENT)

    assert await make_worker().run_once() == 1

    group = await load_group(sessionmaker, personal.group_id)
    [topic] = [t for t in group.topics if t.category == Category.PAYMENT]
    assert topic.message_thread_id not in (None, old_thread)
    chat = await control.get_chat(personal.chat_id)
    assert [t.name for t in chat.topics if t.deleted_at is None].count(topic.name) == 1
    sent = chat.bot_messages()[-1]
    assert sent.message_thread_id == topic.message_thread_id
    assert sent.text == "refund issued\n\n#payment #transaction"
    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.DELIVERED
    assert [(a.attempt, a.outcome) for a in message.attempts] == [
        (1, AttemptOutcome.RETRY),
        (2, AttemptOutcome.DELIVERED),
    ]
    assert "message thread not found" in (message.attempts[0].error or "")


async def test_a_thread_named_by_the_sender_that_is_gone_is_recreated_for_its_category(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    bot: Bot,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    plugin_thread = personal.threads[Category.PLUGIN]
    assert plugin_thread is not None
    await bot.delete_forum_topic(personal.chat_id, plugin_thread)
    await enqueue("plugin updated", category=Category.GENERAL, thread_id=plugin_thread)

    await make_worker().run_once()

    group = await load_group(sessionmaker, personal.group_id)
    [topic] = [t for t in group.topics if t.category == Category.PLUGIN]
    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.message_thread_id == topic.message_thread_id != plugin_thread


async def test_a_category_without_a_topic_row_gets_its_topic_created(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    await _system_topic_not_made(sessionmaker, personal)
    await enqueue("disk 91% full", category=Category.SYSTEM)

    await make_worker().run_once()

    group = await load_group(sessionmaker, personal.group_id)
    [topic] = [t for t in group.topics if t.category == Category.SYSTEM]
    assert topic.message_thread_id is not None
    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.message_thread_id == topic.message_thread_id


async def test_bot_removed_from_the_group_unlinks_it_and_fails_the_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    scene: Scene,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await control.set_bot_membership(personal.chat_id, by_id=scene.user_id, status="kicked")
    first = await enqueue("one")
    second = await enqueue("two", created_offset=1)
    clock.advance(1)

    assert await make_worker().run_once() == 2

    group = await load_group(sessionmaker, personal.group_id)
    assert group.unlinked_at == clock()
    assert len(group.topics) == 6  # kept for a later relink
    message = await load(sessionmaker, first)
    assert message.status == MessageStatus.FAILED
    assert message.failure_reason == "bot was removed from the personal log group"
    assert message.attempts[0].outcome == AttemptOutcome.FAILED
    assert (message.attempts[0].error or "").startswith("TelegramForbiddenError")
    assert message.encrypted_content is None
    # The next message finds no linked group: it fails without another call to Telegram.
    message = await load(sessionmaker, second)
    assert message.failure_reason == "no personal log linked"
    calls = [c for c in await control.get_calls() if c.method == "sendMessage"]
    assert len(calls) == 1


async def test_a_chat_that_no_longer_exists_unlinks_the_group(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(LogGroup).where(LogGroup.id == personal.group_id).values(chat_id=-100999)
        )
    message_id = await enqueue("hi")

    await make_worker().run_once()

    assert (await load_group(sessionmaker, personal.group_id)).unlinked_at is not None
    message = await load(sessionmaker, message_id)
    assert message.failure_reason == "the personal log group no longer exists"


async def test_a_recipient_without_a_linked_group_fails(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(LogGroup).where(LogGroup.id == personal.group_id).values(unlinked_at=clock())
        )
    message_id = await enqueue("hi")

    assert await make_worker().run_once() == 1

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.FAILED
    assert message.failure_reason == "no personal log linked"
    assert [a.outcome for a in message.attempts] == [AttemptOutcome.FAILED]
    assert not [c for c in await control.get_calls() if c.method == "sendMessage"]


async def test_an_unexpected_error_is_retried_within_the_bound(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await _system_topic_not_made(sessionmaker, personal)

    async def broken_create_topic(*_: object) -> Topic:
        raise RuntimeError("boom")

    message_id = await enqueue("disk full", category=Category.SYSTEM)
    worker = make_worker(create_topic=broken_create_topic, max_attempts=2)

    await worker.run_once()
    clock.advance(5)
    await worker.run_once()

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.FAILED
    assert message.failure_reason == (
        "gave up after 2 attempts: RuntimeError: unexpected error while delivering"
    )
    assert [a.outcome for a in message.attempts] == [AttemptOutcome.RETRY, AttemptOutcome.FAILED]


def _no_topic_may_be_made(created: list[Category]) -> CreateTopic:
    """A `create_topic` that records its call and fails the test."""

    async def create_topic(
        session: AsyncSession, bot: Bot, group: LogGroup, category: Category
    ) -> Topic:
        created.append(category)
        raise AssertionError("no topic may be made here")

    return create_topic


async def _without_topic(session: AsyncSession, user_id: int, category: Category) -> LogView:
    """The person's log as read now, but missing the topic of `category` (read before it was
    made, say)."""
    view = await groups.linked_view_of(session, user_id)
    assert view is not None
    assert view.threads.get(category) is not None
    return dataclasses.replace(
        view, threads={c: t for c, t in view.threads.items() if c is not category}
    )


async def test_no_topic_is_created_in_a_group_unlinked_since_it_was_read(
    sessionmaker: async_sessionmaker[AsyncSession], bot: Bot, personal: Personal
) -> None:
    created: list[Category] = []
    async with sessionmaker() as session:
        # The system topic is missing (to be created) and, meanwhile, the person unlinks.
        view = await _without_topic(session, personal.user_id, Category.SYSTEM)
        await session.execute(
            update(LogGroup).where(LogGroup.id == view.id).values(unlinked_at=utcnow())
        )
        with pytest.raises(Rejected) as caught:
            await resolve(session, bot, _no_topic_may_be_made(created), view, Category.SYSTEM, None)
    assert caught.value.error_class == "NoPersonalLog"
    assert created == []


async def test_a_topic_stored_since_the_log_was_read_is_used_not_made_again(
    sessionmaker: async_sessionmaker[AsyncSession], bot: Bot, personal: Personal
) -> None:
    """The log a delivery routes by may be older than the topics (taken from the cache of
    recipient state, which another process's writes reach only when it expires; or /setup
    made the topic a moment ago): a topic stored meanwhile is used, with no second one made,
    and a recreation that someone else already did is not done again."""
    created: list[Category] = []
    create_topic = _no_topic_may_be_made(created)
    async with sessionmaker() as session:
        older = await _without_topic(session, personal.user_id, Category.SYSTEM)
        view = await groups.linked_view_of(session, personal.user_id)
        assert view is not None
        stored = view.threads[Category.SYSTEM]
        assert stored is not None
        route = await resolve(session, bot, create_topic, older, Category.SYSTEM, None)
        assert route.address.message_thread_id == stored
        # Telegram lost thread `stored - 1` of an older view; `stored` replaced it since.
        lost = Route(TelegramAddress(view.chat_id, stored - 1), Category.SYSTEM)
        again = await recreate(session, bot, create_topic, view, lost)
        assert again.address.message_thread_id == stored
    assert created == []


async def test_a_topic_the_worker_makes_is_bounded_by_its_request_timeout(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lease covers one topic creation as long as a send; aiogram's own default is a minute.
    await _system_topic_not_made(sessionmaker, personal)
    timeouts: list[object] = []
    real = bot.create_forum_topic

    async def spy(*args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("request_timeout"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(bot, "create_forum_topic", spy)
    message_id = await enqueue("disk full", category=Category.SYSTEM)
    await make_worker(request_timeout=7, create_topic=None).run_once()
    assert timeouts == [7]
    assert (await load(sessionmaker, message_id)).status is MessageStatus.DELIVERED
