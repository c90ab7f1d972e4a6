"""/test: one sample message per enabled category, through the same path the HTTP API uses, so
a person sees in their own group what their preferences do (topics, quiet hours, suppression)."""

from __future__ import annotations

import logging
from html import escape
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from gateway.message_request import MessageContent, MessageRequest
from gateway.preferences import to_preferences, zone_or_utc
from gateway.submission import Sender, SubmissionError, Submitted, Submitter
from gateway.topics import TOPICS
from storage.enums import Category, MessageStatus
from storage.models import User, UserPreferences
from storage.repositories import groups

log = logging.getLogger(__name__)

SAMPLE_HASHTAG = "test"


def sample_request(category: Category) -> MessageRequest:
    name = TOPICS[category].name
    return MessageRequest(
        category=category,
        content=MessageContent(
            text=f"This is a test message for “{name}”, sent because you asked with /test."
        ),
        hashtags=[SAMPLE_HASHTAG],
        retention_seconds=3600,
    )


def outcome_line(category: Category, result: Submitted | SubmissionError, zone: ZoneInfo) -> str:
    name = escape(TOPICS[category].name)
    if isinstance(result, SubmissionError):
        return f"⚠️ {name}: not sent ({escape(result.message)})"
    if result.status is MessageStatus.DEFERRED and result.deferred_until is not None:
        when = result.deferred_until.astimezone(zone).strftime("%H:%M (%Z)")
        return f"🌙 {name}: held for your quiet hours until {when}"
    if result.status is MessageStatus.SUPPRESSED:
        return f"🚫 {name}: suppressed ({escape(result.reason or 'by your settings')})"
    return f"✅ {name}: on its way"


async def send_samples(
    message: Message,
    session: AsyncSession,
    user: User | None,
    submitter: Submitter | None = None,
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    if submitter is None:  # a dispatcher built without the gateway (e.g. some tests)
        await message.answer("Test messages are not available here.")
        return
    if await groups.linked_group_of(session, user.id) is None:
        await message.answer(texts.NO_LOG)
        return
    stored = await session.get(UserPreferences, user.id)
    prefs = to_preferences(stored)
    zone = zone_or_utc(stored.timezone if stored is not None else None)
    enabled = [c for c in TOPICS if prefs.categories.get(c, True)]
    if not enabled:
        await message.answer("Every category is turned off in /prefs, so there is nothing to send.")
        return
    lines = []
    for category in enabled:
        try:
            result: Submitted | SubmissionError = await submitter.submit(
                Sender(None, user.id), sample_request(category)
            )
        except SubmissionError as exc:
            result = exc
        lines.append(outcome_line(category, result, zone))
    log.info("user %s sent %d test message(s)", user.id, len(enabled))
    await message.answer("🧪 <b>Test messages</b>\n" + "\n".join(lines))


def create_router() -> Router:
    router = Router(name="sample")
    router.message.register(send_samples, Command("test"), F.chat.type == ChatType.PRIVATE)
    return router
