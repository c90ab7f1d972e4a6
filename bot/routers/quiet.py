"""/quiet and /timezone: quick commands for quiet hours (the /prefs menu is the long way)."""

from __future__ import annotations

import html
import logging

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from gateway.preferences import check_timezone, parse_hhmm
from storage.models import User, UserPreferences
from storage.repositories import preferences

log = logging.getLogger(__name__)

QUIET_HINT = (
    "Usage: /quiet 22:00 07:30, /quiet off, /quiet on, /quiet defer or /quiet silent "
    "(for example <code>/quiet 22:00 07:30</code>)"
)
TIMEZONE_HINT = (
    "Usage: /timezone followed by a zone name, for example <code>/timezone Europe/Berlin</code>"
)


def describe(row: UserPreferences) -> str:
    if not row.quiet_enabled:
        window = "off"
    else:
        window = f"{row.quiet_start}–{row.quiet_end} ({row.quiet_mode})"
    return f"🌙 Quiet hours: {window}\n🕰 Time zone: {html.escape(row.timezone)}"


def _apply(row: UserPreferences, args: list[str]) -> str | None:
    """Change `row` as /quiet's arguments say; an error hint if they make no sense."""
    if len(args) == 1 and args[0].lower() in ("off", "on"):
        row.quiet_enabled = args[0].lower() == "on"
        return None
    if len(args) == 1 and args[0].lower() in ("defer", "silent"):
        row.quiet_mode = args[0].lower()
        return None
    if len(args) == 2:
        try:
            start, end = parse_hhmm(args[0]), parse_hhmm(args[1])
        except ValueError as exc:
            return f"{html.escape(str(exc))}. {QUIET_HINT}"
        row.quiet_start, row.quiet_end = start.strftime("%H:%M"), end.strftime("%H:%M")
        row.quiet_enabled = True
        return None
    return QUIET_HINT


async def quiet(
    message: Message, command: CommandObject, session: AsyncSession, user: User | None
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    row = await preferences.for_update(session, user.id)
    args = (command.args or "").split()
    if not args:
        await message.answer(f"{describe(row)}\n\n{QUIET_HINT}")
        return
    problem = _apply(row, args)
    if problem is not None:
        await session.rollback()
        await message.answer(problem)
        return
    await session.commit()  # saved before the reply says so
    log.info("quiet hours changed by user %s", user.id)
    await message.answer(f"Saved.\n{describe(row)}")


async def timezone(
    message: Message, command: CommandObject, session: AsyncSession, user: User | None
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    row = await preferences.for_update(session, user.id)
    name = (command.args or "").strip()
    if not name:
        await message.answer(f"{describe(row)}\n\n{TIMEZONE_HINT}")
        return
    try:
        row.timezone = check_timezone(name)
    except ValueError as exc:
        await session.rollback()
        await message.answer(f"{html.escape(str(exc))}. {TIMEZONE_HINT}")
        return
    await session.commit()
    log.info("time zone changed by user %s", user.id)
    await message.answer(f"Saved.\n{describe(row)}")


def create_router() -> Router:
    router = Router(name="quiet")
    private = F.chat.type == ChatType.PRIVATE
    router.message.register(quiet, Command("quiet"), private)
    router.message.register(timezone, Command("timezone"), private)
    return router
