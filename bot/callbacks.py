"""Inline button payloads. Every callback_data is built and parsed through these factories.

Postponed annotations are safe here: pydantic resolves the string annotations of these fields
(builtins only) when the model is built; tests/bot/test_callbacks.py checks the round trip.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class MoveLog(CallbackData, prefix="move"):
    """Confirm moving the personal log to `chat_id`; only `owner_id` (Telegram id) may press."""

    chat_id: int
    owner_id: int


class RevokeToken(CallbackData, prefix="revoke"):
    """Revoke one API token; the repository checks that the presser owns it."""

    token_id: int


# --- the /prefs menu --------------------------------------------------------------------------
# Every menu button carries `owner_id`, the Telegram id of the person whose menu it is: a press
# by anyone else is refused. Values are plain strings, checked by the handler (bot.prefs_menu),
# so that a value from an older menu gets an alert instead of silently matching nothing.


class PrefsNav(CallbackData, prefix="pfn"):
    """Show another screen of the menu (bot.prefs_menu.Screen), or `close` it."""

    owner_id: int
    screen: str


class PrefsSet(CallbackData, prefix="pfs"):
    """Set one setting to `on`; `key` names the category or channel ("" for the others)."""

    owner_id: int
    setting: str
    key: str
    on: bool


class PrefsMove(CallbackData, prefix="pfm"):
    """Move `channel` one place up (earlier) or down in the order of channels."""

    owner_id: int
    channel: str
    up: bool


class PrefsZone(CallbackData, prefix="pfz"):
    """Use `zone` (an IANA name from the menu's list) as the time zone."""

    owner_id: int
    zone: str


# --- /erase -----------------------------------------------------------------------------------
# Both carry `owner_id`, the Telegram id of the person who sent /erase: a press by anyone else,
# or after that person is gone, gets an alert.


class EraseConfirm(CallbackData, prefix="erase"):
    """Erase the owner's data; with `delete_log`, first the bot's messages in their log too."""

    owner_id: int
    delete_log: bool


class EraseCancel(CallbackData, prefix="erase_keep"):
    """Keep everything."""

    owner_id: int
