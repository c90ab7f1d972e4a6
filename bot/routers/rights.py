"""The person's rights: /retention shows and sets their default retention, /export sends what
is stored about them as a JSON document, /erase deletes it all after a confirmation button.

Erasure deletes the person's `users` row; every row about them goes with it by cascade
(storage.repositories.person_data). Presses by someone else, or after the person is gone,
get an alert, never an error.
"""

from __future__ import annotations

import json
import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards, texts
from bot.callbacks import EraseCancel, EraseConfirm
from gateway.ephemeral import DELETE_WINDOW
from gateway.export import export_person
from gateway.retention_period import DEFAULT_PERIOD_SECONDS, format_period, parse_period
from gateway.telegram_deletion import delete_messages
from gateway.token_cache import TokenCache
from storage.models import User
from storage.repositories import person_data, preferences
from storage.types import utcnow

log = logging.getLogger(__name__)

BACK_TO_DEFAULT = ("default", "reset")


async def outside_private(message: Message) -> None:
    await message.answer(texts.RIGHTS_PRIVATE_ONLY)


# --- /retention -------------------------------------------------------------------------------


def _shown(seconds: int | None) -> str:
    return format_period(DEFAULT_PERIOD_SECONDS if seconds is None else seconds)


async def retention(
    message: Message, command: CommandObject, session: AsyncSession, user: User | None
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    arg = (command.args or "").strip()
    if not arg:
        row = await person_data.preferences_of(session, user.id)  # showing creates no row
        stored = None if row is None else row.default_retention_seconds
        await message.answer(
            f"{texts.retention(_shown(stored), own=stored is not None)}\n\n{texts.RETENTION_USAGE}"
        )
        return
    seconds: int | None
    if arg.lower() in BACK_TO_DEFAULT:
        seconds = None
    else:
        try:
            seconds = parse_period(arg)
        except ValueError as exc:
            await message.answer(texts.retention_refused(str(exc)))
            return
    row = await preferences.for_update(session, user.id)
    row.default_retention_seconds = seconds
    await session.commit()  # saved before the reply says so
    log.info("default retention changed by user %s", user.id)
    await message.answer(texts.retention_saved(_shown(seconds), own=seconds is not None))


# --- /export ----------------------------------------------------------------------------------


async def export(message: Message, session: AsyncSession, user: User | None) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    document = await export_person(session, user.id)
    data = json.dumps(document, indent=2, ensure_ascii=False).encode()
    name = f"libral-export-{document['exported_at'][:10]}.json"
    await message.answer_document(
        BufferedInputFile(data, filename=name), caption=texts.EXPORT_CAPTION
    )
    log.info("export sent to user %s (%d bytes)", user.id, len(data))


# --- /erase -----------------------------------------------------------------------------------


async def erase(message: Message, user: User | None) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    await message.answer(
        texts.ERASE_WARNING, reply_markup=keyboards.erase_confirmation(user.telegram_id)
    )


async def _answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramBadRequest as error:  # e.g. the query is too old: nobody waits any more
        log.info("could not answer an erase button: %s", error.message)


async def _conclude(query: CallbackQuery, bot: Bot, text: str) -> None:
    """Replace the confirmation (and its buttons) with `text`; a new message if it can't be."""
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text)
            return
        except TelegramAPIError as error:
            log.warning("could not edit the erase confirmation: %s", type(error).__name__)
    try:
        await bot.send_message(query.from_user.id, text)
    except TelegramAPIError as error:
        log.warning("could not report the erasure: %s", type(error).__name__)


async def _delete_log_messages(
    session: AsyncSession, bot: Bot, user_id: int, *, scheduled_only: bool = False
) -> tuple[int, int]:
    """Delete the bot's messages in the person's log that Telegram still allows deleting (with
    `scheduled_only`: those due to go anyway); (deleted, not deleted) counts, the too old ones
    among the latter."""
    sent_after = utcnow() - DELETE_WINDOW
    by_chat = await person_data.deletable_copies(
        session, user_id, sent_after, scheduled_only=scheduled_only
    )
    if scheduled_only:
        recorded = sum(len(ids) for ids in by_chat.values())
    else:
        recorded = await person_data.count_copies(session, user_id)
    deleted = failed = 0
    for chat_id, ids in by_chat.items():
        result = await delete_messages(bot, chat_id, ids)
        deleted += len(result.done)
        failed += len(result.failed)
    too_old = recorded - sum(len(ids) for ids in by_chat.values())
    return deleted, failed + too_old


async def confirm_erase(
    query: CallbackQuery,
    callback_data: EraseConfirm,
    session: AsyncSession,
    bot: Bot,
    user: User | None,
    token_cache: TokenCache | None = None,
) -> None:
    if query.from_user.id != callback_data.owner_id:
        await _answer(query, texts.ERASE_NOT_YOURS, alert=True)
        return
    if user is None:  # erased already (a second press), or never registered
        await _answer(query, texts.ERASE_NOTHING_LEFT, alert=True)
        return
    user_id = user.id
    # Taken before the check: a message sent after it was claimed after it, or it would have
    # been seen being sent. Not the time of the listing below, which misses a message sent just
    # before it but recorded (in its commit) just after it. This holds while each read sees
    # what was committed before it (SQLite outside a write transaction, PostgreSQL's READ
    # COMMITTED), not a snapshot from the start of the update's session.
    checked = utcnow()
    if await person_data.being_sent(session, user_id, checked):
        await _answer(query, texts.ERASE_BUSY, alert=True)
        return
    # Deletions already promised (self-destruct, unread ephemeral) happen now, whichever button:
    # erasing their schedule must not leave those messages in the log for good.
    deleted, not_deleted = await _delete_log_messages(
        session, bot, user_id, scheduled_only=not callback_data.delete_log
    )
    erased = await person_data.erase(
        session, user_id, unless_being_sent_at=utcnow(), unless_sent_since=checked
    )
    if not erased:
        # A message to them was claimed or sent meanwhile (or a second press erased them
        # first): the next press deletes it too.
        await session.rollback()
        present = await session.scalar(select(User.id).where(User.id == user_id))
        await _answer(query, texts.ERASE_BUSY if present else texts.ERASE_NOTHING_LEFT, alert=True)
        return
    await session.commit()  # gone for real before the person is told so
    if token_cache is not None:  # their tokens stop working at once
        token_cache.forget_owner(user_id)
    log.info(
        "user %s erased their data (log messages: %d deleted, %d not)",
        user_id,
        deleted,
        not_deleted,
    )
    await _answer(query, texts.ERASED_NOTICE)
    text = texts.erased(
        log_requested=callback_data.delete_log,
        deleted=deleted,
        not_deleted=not_deleted,
        scheduled_failed=0 if callback_data.delete_log else not_deleted,
    )
    await _conclude(query, bot, text)


async def cancel_erase(
    query: CallbackQuery, callback_data: EraseCancel, bot: Bot, user: User | None
) -> None:
    if query.from_user.id != callback_data.owner_id:
        await _answer(query, texts.ERASE_NOT_YOURS, alert=True)
        return
    if user is None:  # erased meanwhile (from another confirmation): "nothing erased" is wrong
        await _answer(query, texts.ERASE_NOTHING_LEFT, alert=True)
        return
    await _answer(query)
    await _conclude(query, bot, texts.ERASE_CANCELLED)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="rights")
    private = F.chat.type == ChatType.PRIVATE
    router.message.register(
        outside_private, Command("retention", "export", "erase"), F.chat.type != ChatType.PRIVATE
    )
    router.message.register(retention, Command("retention"), private)
    router.message.register(export, Command("export"), private)
    router.message.register(erase, Command("erase"), private)
    router.callback_query.register(confirm_erase, EraseConfirm.filter())
    router.callback_query.register(cancel_erase, EraseCancel.filter())
    return router
