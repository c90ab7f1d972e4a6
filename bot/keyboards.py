"""Inline keyboards, built from the CallbackData factories in bot.callbacks."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import (
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import texts
from bot.callbacks import EraseCancel, EraseConfirm, MoveLog, RevokeToken
from storage.models import ApiToken


def confirm_move(chat_id: int, owner_telegram_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.MOVE_BUTTON, callback_data=MoveLog(chat_id=chat_id, owner_id=owner_telegram_id)
    )
    return builder.as_markup()


def token_list(tokens: Sequence[ApiToken]) -> InlineKeyboardMarkup | None:
    """One revoke button per token, one per row; None when there is nothing to revoke."""
    if not tokens:
        return None
    builder = InlineKeyboardBuilder()
    for token in tokens:
        builder.button(
            text=texts.revoke_button(token.prefix), callback_data=RevokeToken(token_id=token.id)
        )
    builder.adjust(1)
    return builder.as_markup()


def erase_confirmation(owner_telegram_id: int) -> InlineKeyboardMarkup:
    """/erase's choices, one per row: erase, erase and delete the log messages, cancel."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.ERASE_BUTTON,
        callback_data=EraseConfirm(owner_id=owner_telegram_id, delete_log=False),
    )
    builder.button(
        text=texts.ERASE_WITH_LOG_BUTTON,
        callback_data=EraseConfirm(owner_id=owner_telegram_id, delete_log=True),
    )
    builder.button(
        text=texts.ERASE_CANCEL_BUTTON, callback_data=EraseCancel(owner_id=owner_telegram_id)
    )
    builder.adjust(1)
    return builder.as_markup()


def phone_request() -> ReplyKeyboardMarkup:
    """/phone's reply keyboard: one button that shares the person's own contact."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=texts.PHONE_BUTTON, request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def remove_reply_keyboard() -> ReplyKeyboardRemove:
    return ReplyKeyboardRemove(remove_keyboard=True)
