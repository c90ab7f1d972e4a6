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
