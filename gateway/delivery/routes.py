"""Where in the personal log a message goes: a chat and, for most categories, a forum topic.

Creating or recreating a category's topic belongs to the personal log service
(`gateway.personal_log.create_topic`); the worker takes it as a dependency so tests can
substitute it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.channels.base import Rejected
from gateway.channels.telegram import TelegramAddress, translate
from storage.enums import Category
from storage.models import LogGroup, Topic
from storage.repositories import groups
from storage.repositories.groups import LogView

CreateTopic = Callable[[AsyncSession, Bot, LogGroup, Category], Awaitable[Topic]]


@dataclass(frozen=True)
class Route:
    address: TelegramAddress
    # The category whose topic this is: what to recreate if Telegram lost the thread.
    topic_category: Category


async def resolve(
    session: AsyncSession,
    bot: Bot,
    create_topic: CreateTopic,
    log_view: LogView,
    category: Category,
    thread_id: int | None,
) -> Route:
    """The route for a message of `category`, or into `thread_id` if the sender named a topic.

    A named thread that is no longer one of the group's topics (it was recreated after the
    message was accepted) falls back to the category's topic. A category without a topic yet
    gets one created. Telegram errors while creating come out as ChannelErrors.
    """
    chat_id = log_view.chat_id
    if thread_id is not None:
        named = log_view.category_of_thread(thread_id)
        if named is not None:
            return Route(TelegramAddress(chat_id, thread_id), named)
    if category == Category.GENERAL:
        return Route(TelegramAddress(chat_id, None), Category.GENERAL)
    thread = log_view.threads.get(category)
    if thread is None:
        thread = await _create(session, bot, create_topic, log_view, category, replacing=None)
    return Route(TelegramAddress(chat_id, thread), category)


async def recreate(
    session: AsyncSession,
    bot: Bot,
    create_topic: CreateTopic,
    log_view: LogView,
    route: Route,
) -> Route:
    """A fresh topic in place of the one Telegram no longer knows."""
    if route.topic_category == Category.GENERAL:
        # General cannot be deleted in a forum; if Telegram says it is gone, nothing to rebuild.
        raise Rejected("TelegramBadRequest", "message thread not found")
    thread = await _create(
        session,
        bot,
        create_topic,
        log_view,
        route.topic_category,
        replacing=route.address.message_thread_id,
    )
    return Route(TelegramAddress(log_view.chat_id, thread), route.topic_category)


async def _create(
    session: AsyncSession,
    bot: Bot,
    create_topic: CreateTopic,
    log_view: LogView,
    category: Category,
    *,
    replacing: int | None,
) -> int | None:
    """The thread of a topic made for `category` (in place of thread `replacing`, which
    Telegram no longer knows), or of one stored meanwhile."""
    # Read afresh (populate_existing): after a first topic was made in this session, its
    # LogGroup is in the identity map as it was then.
    group = await session.get(LogGroup, log_view.id, populate_existing=True)
    if group is None or group.unlinked_at is not None:
        raise Rejected("NoPersonalLog", "no personal log linked")  # unlinked meanwhile
    # `log_view` may be older than the topics (the worker takes it from the cache of recipient
    # state, which another process's writes reach only when the entry expires; /setup may have
    # made the topic a moment ago): a topic stored since is used, not made a second time.
    stored = await groups.stored_thread(session, group.id, category)
    if stored is not None and stored != replacing:
        return stored
    try:
        topic = await create_topic(session, bot, group, category)
    except TelegramAPIError as exc:
        raise translate(exc) from None
    # The new thread id is worth keeping whatever happens to this message.
    await session.commit()
    return topic.message_thread_id
