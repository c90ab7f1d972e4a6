"""Last resort for buttons no router understood (an older bot version's callback data...).

Without it such a press would be left spinning until Telegram gives up. Must be included after
every other router: it matches any callback query.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from bot import texts


async def unknown_button(query: CallbackQuery) -> None:
    await query.answer(texts.UNKNOWN_BUTTON, show_alert=True)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="fallback")
    router.callback_query.register(unknown_button)
    return router
