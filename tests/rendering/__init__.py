"""Tests of gateway.rendering; helpers shared by the modules below."""

from __future__ import annotations

from sandbox.formatting import check_message_length, parse_formatted, utf16_len


def telegram_text(html: str, limit: int = 4096) -> str:
    """The text the sandbox's Bot API would store for `html` sent with parse_mode=HTML.

    Raises sandbox.errors.BotAPIError, as the Bot API would answer 400, when the HTML does not
    parse or the text is longer than `limit` UTF-16 units.
    """
    parsed = parse_formatted(html, "HTML")
    check_message_length(parsed, limit)
    return parsed.text


__all__ = ["telegram_text", "utf16_len"]
