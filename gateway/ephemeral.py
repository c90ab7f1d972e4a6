"""Ephemeral messages: the "Read, delete" button and when an unread one goes.

The button needs no data of its own: the pressed Telegram message identifies the copy (and
through it the other parts of the same message) in telegram_copies.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

READ_DELETE_TEXT = "✅ Read, delete"
# Telegram lets a bot delete its messages for this long after sending them.
DELETE_WINDOW = timedelta(hours=48)
# Scheduled deletions run this much before that limit, to leave time to retry.
DELETION_MARGIN = timedelta(minutes=10)
LAST_CHANCE = DELETE_WINDOW - DELETION_MARGIN


class ReadDelete(CallbackData, prefix="readdel"):
    """Pressed by the owner of the personal log: delete this message now."""


def read_delete_markup() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=READ_DELETE_TEXT, callback_data=ReadDelete())
    return builder.as_markup()


def deletion_due(
    sent_at: datetime, *, self_destruct_seconds: int | None, ephemeral: bool
) -> datetime | None:
    """When the Telegram copy of a message must go: its self-destruct time, and for an
    ephemeral one at the latest just before Telegram stops allowing it; None to keep it."""
    times = []
    if self_destruct_seconds is not None:
        times.append(sent_at + timedelta(seconds=self_destruct_seconds))
    if self_destruct_seconds is not None or ephemeral:
        times.append(sent_at + LAST_CHANCE)
    return min(times) if times else None
