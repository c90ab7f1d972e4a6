"""Linking a person's forum supergroup as their personal log, and creating its topics.

No aiogram handler code lives here: the bot's setup flow and the delivery worker (which re-creates
a topic when Telegram answers "message thread not found") share these functions. Like the
repositories, nothing here commits; the caller owns the unit of work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.topics import TOPICS
from storage.enums import Category
from storage.models import LogGroup, Topic, User
from storage.repositories import groups
from storage.types import utcnow

log = logging.getLogger(__name__)

_ADMIN_STATUSES = frozenset({ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR})


class Problem(StrEnum):
    """Something the person has to change before the group can be their log."""

    BOT_NOT_IN_GROUP = "bot_not_in_group"
    SENDER_NOT_ADMIN = "sender_not_admin"
    NOT_FORUM = "not_forum"
    BOT_CANNOT_MANAGE_TOPICS = "bot_cannot_manage_topics"
    TAKEN = "taken"  # another person's linked log


class LinkOutcome(StrEnum):
    LINKED = "linked"  # a new personal log
    RELINKED = "relinked"  # the bot was added back to the person's unlinked group
    MOVED = "moved"  # the log moved here from another group
    UNCHANGED = "unchanged"  # already this person's log (missing topics may have been created)
    NEEDS_CHANGES = "needs_changes"  # see `problems`; nothing was stored
    NEEDS_CONFIRMATION = "needs_confirmation"  # the person has another group; moving deletes it


@dataclass(frozen=True)
class LinkResult:
    outcome: LinkOutcome
    group: LogGroup | None = None
    problems: tuple[Problem, ...] = ()
    created: tuple[Category, ...] = ()
    # Topics Telegram refused to create (e.g. flood control); running setup again retries them.
    failed: tuple[Category, ...] = ()
    previous_chat_id: int | None = None
    title: str | None = None

    @property
    def linked(self) -> bool:
        return self.group is not None


async def check_group(
    bot: Bot, owner: User, chat_id: int
) -> tuple[tuple[Problem, ...], str | None]:
    """What is missing for `owner` to link `chat_id`, and the group's title (if reachable)."""
    try:
        chat = await bot.get_chat(chat_id)
        me = await bot.get_chat_member(chat_id, bot.id)
    except TelegramAPIError:
        return (Problem.BOT_NOT_IN_GROUP,), None
    if me.status in (ChatMemberStatus.LEFT, ChatMemberStatus.KICKED):
        return (Problem.BOT_NOT_IN_GROUP,), chat.title
    problems: list[Problem] = []
    try:
        sender_status = (await bot.get_chat_member(chat_id, owner.telegram_id)).status
    except TelegramAPIError:
        sender_status = ChatMemberStatus.LEFT
    if sender_status not in _ADMIN_STATUSES:
        problems.append(Problem.SENDER_NOT_ADMIN)
    if not chat.is_forum:
        problems.append(Problem.NOT_FORUM)
    if not (isinstance(me, ChatMemberAdministrator) and me.can_manage_topics):
        problems.append(Problem.BOT_CANNOT_MANAGE_TOPICS)
    return tuple(problems), chat.title


async def link_group(
    session: AsyncSession,
    bot: Bot,
    owner: User,
    chat_id: int,
    *,
    replace_existing: bool = False,
) -> LinkResult:
    """Make `chat_id` the owner's personal log; idempotent (only missing topics are created).

    A person has one log. If they already have another group, nothing changes unless
    `replace_existing` (the person confirmed): then the old row and its topics are deleted first.
    """
    problems, title = await check_group(bot, owner, chat_id)
    if problems:
        return LinkResult(LinkOutcome.NEEDS_CHANGES, problems=problems, title=title)

    here = await groups.by_chat_id(session, chat_id)
    if here is not None and here.owner_id != owner.id:
        if here.unlinked_at is None:
            return LinkResult(LinkOutcome.NEEDS_CHANGES, problems=(Problem.TAKEN,), title=title)
        # The previous owner removed the bot; their dead row must not block a new owner.
        await session.delete(here)
        await session.flush()

    group = await groups.group_of(session, owner.id)
    previous_chat_id: int | None = None
    if group is not None and group.chat_id != chat_id:
        if not replace_existing:
            return LinkResult(
                LinkOutcome.NEEDS_CONFIRMATION, previous_chat_id=group.chat_id, title=title
            )
        previous_chat_id = group.chat_id
        await session.delete(group)
        # Flushed now: owner_id is unique and the unit of work would insert before deleting.
        await session.flush()
        group = None

    if group is None:
        group = LogGroup(chat_id=chat_id, owner_id=owner.id, is_forum=True, topics=[])
        session.add(group)
        await session.flush()
        outcome = LinkOutcome.LINKED if previous_chat_id is None else LinkOutcome.MOVED
    elif group.unlinked_at is not None:
        group.unlinked_at = None
        group.linked_at = utcnow()
        group.is_forum = True
        outcome = LinkOutcome.RELINKED
    else:
        outcome = LinkOutcome.UNCHANGED

    created, failed = await _ensure_topics(session, bot, group)
    log.info(
        "personal log %s: group=%s chat=%s owner=%s created=%d failed=%d",
        outcome,
        group.id,
        chat_id,
        owner.id,
        len(created),
        len(failed),
    )
    return LinkResult(
        outcome,
        group=group,
        created=created,
        failed=failed,
        previous_chat_id=previous_chat_id,
        title=title,
    )


async def _ensure_topics(
    session: AsyncSession, bot: Bot, group: LogGroup
) -> tuple[tuple[Category, ...], tuple[Category, ...]]:
    created: list[Category] = []
    failed: list[Category] = []
    # Commit before and after each Telegram call: SQLite has one writer, and holding the write
    # lock across five createForumTopic round trips would stall /send and the worker. Each
    # committed topic also matches one that now exists in Telegram.
    await session.commit()
    for category in TOPICS:
        if groups.topic_for(group, category) is not None:
            continue
        try:
            await create_topic(session, bot, group, category)
            await session.commit()
        except TelegramAPIError as error:
            # Keep the topics made so far (they exist in Telegram now) instead of failing the
            # whole update and rolling back rows whose topics would then be duplicated.
            log.warning(
                "topic %s not created in chat %s: %s", category, group.chat_id, type(error).__name__
            )
            failed.append(category)
        else:
            created.append(category)
    return tuple(created), tuple(failed)


async def create_topic(
    session: AsyncSession,
    bot: Bot,
    group: LogGroup,
    category: Category,
    *,
    request_timeout: int | None = None,
) -> Topic:
    """Create (or re-create, replacing the stored thread id) the topic of one category.

    `general` makes no API call: it is the group's built-in General topic (no thread id).
    Raises aiogram's TelegramAPIError if Telegram refuses. `request_timeout` bounds the Bot API
    call (seconds; aiogram's default otherwise, a minute).
    """
    spec = TOPICS[category]
    thread_id: int | None = None
    if spec.icon_color is not None:
        forum_topic = await bot.create_forum_topic(
            group.chat_id, spec.name, icon_color=spec.icon_color, request_timeout=request_timeout
        )
        thread_id = forum_topic.message_thread_id
    # Queried, not read from group.topics: the worker may pass a group without topics loaded.
    topic = await session.scalar(
        select(Topic).where(Topic.group_id == group.id, Topic.category == category)
    )
    if topic is None:
        topic = Topic(group=group, category=category, name=spec.name, message_thread_id=thread_id)
        session.add(topic)
    else:
        topic.message_thread_id = thread_id
        topic.name = spec.name
    await session.flush()
    log.info("topic %s of group %s -> thread %s", category, group.id, thread_id)
    return topic


async def unlink_chat(session: AsyncSession, chat_id: int) -> LogGroup | None:
    """Mark the group unlinked (the bot was removed); topics are kept for a later relink.

    Returns the group if it was linked, None if it was not a personal log or already unlinked.
    """
    group = await groups.by_chat_id(session, chat_id)
    if group is None or group.unlinked_at is not None:
        return None
    group.unlinked_at = utcnow()
    log.info("personal log unlinked: group=%s chat=%s", group.id, chat_id)
    return group
