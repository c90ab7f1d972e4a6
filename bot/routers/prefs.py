"""/prefs: the inline menu of a person's preferences, edited in place on every press.

bot.prefs_menu draws the screens and knows what each button changes; this module checks who
pressed, saves (committed before the menu shows the new value) and edits the same message.
A press that can't be honoured (someone else's menu, an unregistered person, a value from an
older menu, a message Telegram won't let us edit) is answered with an alert, never an error.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import prefs_menu, texts
from bot.callbacks import PrefsMove, PrefsNav, PrefsSet, PrefsZone
from bot.prefs_menu import Screen
from storage.models import User, UserPreferences
from storage.repositories import preferences

log = logging.getLogger(__name__)

# Fragments of Telegram's descriptions (after "Bad Request: ").
NOT_MODIFIED = "message is not modified"


async def prefs_outside_private(message: Message) -> None:
    await message.answer(texts.PREFS_PRIVATE_ONLY)


async def open_prefs(message: Message, session: AsyncSession, user: User | None) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    row = await preferences.for_update(session, user.id)
    view = prefs_menu.render(Screen.MAIN, row, user.telegram_id)
    await message.answer(view.text, reply_markup=view.markup)


async def _answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramBadRequest as error:  # e.g. the query is too old: nobody waits any more
        log.info("could not answer a preferences button: %s", error.message)


async def _menu_of(query: CallbackQuery, owner_id: int, user: User | None) -> Message | None:
    """The menu message if this press may change it; otherwise the press is answered here."""
    if query.from_user.id != owner_id:
        await _answer(query, texts.PREFS_NOT_YOURS, alert=True)
    elif user is None:
        await _answer(query, texts.PREFS_NOT_REGISTERED, alert=True)
    elif not isinstance(query.message, Message):  # too old for Telegram to show us
        await _answer(query, texts.PREFS_MENU_GONE, alert=True)
    else:
        return query.message
    return None


async def _show(
    query: CallbackQuery,
    menu: Message,
    text: str,
    markup: InlineKeyboardMarkup | None,
    *,
    saved: bool,
) -> None:
    """Edit the menu in place, then answer the press."""
    try:
        await menu.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if NOT_MODIFIED not in error.message:  # can't be edited, not found, too old...
            log.warning("could not edit a preferences menu: %s", error.message)
            gone = texts.PREFS_SAVED_MENU_GONE if saved else texts.PREFS_MENU_GONE
            await _answer(query, gone, alert=True)
            return
        # Not modified: the menu already shows this (a double press); nothing to tell.
    except TelegramAPIError as error:
        log.warning("could not edit a preferences menu: %s", type(error).__name__)
        failed = texts.PREFS_SAVED_MENU_GONE if saved else texts.PREFS_EDIT_FAILED
        await _answer(query, failed, alert=True)
        return
    await _answer(query, texts.PREFS_SAVED if saved else None)


async def _stale(query: CallbackQuery, session: AsyncSession) -> None:
    await session.rollback()
    await _answer(query, texts.PREFS_STALE_VALUE, alert=True)


async def _saved(
    query: CallbackQuery,
    menu: Message,
    session: AsyncSession,
    user: User,
    row: UserPreferences,
    screen: Screen,
) -> None:
    """Commit the change made to the person's `row`, then show `screen` with it."""
    await session.commit()  # stored before the menu shows it
    log.info("preferences changed by user %s", user.id)
    view = prefs_menu.render(screen, row, user.telegram_id)
    await _show(query, menu, view.text, view.markup, saved=True)


async def navigate(
    query: CallbackQuery, callback_data: PrefsNav, session: AsyncSession, user: User | None
) -> None:
    menu = await _menu_of(query, callback_data.owner_id, user)
    if menu is None or user is None:
        return
    if callback_data.screen == prefs_menu.CLOSE:
        await _show(query, menu, prefs_menu.CLOSED_TEXT, None, saved=False)
        return
    screen = prefs_menu.screen_of(callback_data.screen)
    if screen is None:
        await _stale(query, session)
        return
    row = await preferences.for_update(session, user.id)
    view = prefs_menu.render(screen, row, user.telegram_id)
    await _show(query, menu, view.text, view.markup, saved=False)


async def set_value(
    query: CallbackQuery, callback_data: PrefsSet, session: AsyncSession, user: User | None
) -> None:
    menu = await _menu_of(query, callback_data.owner_id, user)
    if menu is None or user is None:
        return
    row = await preferences.for_update(session, user.id)
    screen = prefs_menu.apply_set(row, callback_data.setting, callback_data.key, callback_data.on)
    if screen is None:
        await _stale(query, session)
        return
    await _saved(query, menu, session, user, row, screen)


async def move_channel(
    query: CallbackQuery, callback_data: PrefsMove, session: AsyncSession, user: User | None
) -> None:
    menu = await _menu_of(query, callback_data.owner_id, user)
    if menu is None or user is None:
        return
    row = await preferences.for_update(session, user.id)
    screen = prefs_menu.apply_move(row, callback_data.channel, up=callback_data.up)
    if screen is None:  # unknown channel, or already first (last) when moving up (down)
        await _stale(query, session)
        return
    await _saved(query, menu, session, user, row, screen)


async def choose_zone(
    query: CallbackQuery, callback_data: PrefsZone, session: AsyncSession, user: User | None
) -> None:
    menu = await _menu_of(query, callback_data.owner_id, user)
    if menu is None or user is None:
        return
    row = await preferences.for_update(session, user.id)
    screen = prefs_menu.apply_zone(row, callback_data.zone)
    if screen is None:
        await _stale(query, session)
        return
    await _saved(query, menu, session, user, row, screen)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="prefs")
    router.message.register(
        prefs_outside_private, Command("prefs"), F.chat.type != ChatType.PRIVATE
    )
    router.message.register(open_prefs, Command("prefs"))
    router.callback_query.register(navigate, PrefsNav.filter())
    router.callback_query.register(set_value, PrefsSet.filter())
    router.callback_query.register(move_channel, PrefsMove.filter())
    router.callback_query.register(choose_zone, PrefsZone.filter())
    return router
