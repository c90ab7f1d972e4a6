"""Text and captions as Telegram stores them: entities parsed, lengths checked."""

from __future__ import annotations

from typing import Any

from sandbox.errors import bad_request
from sandbox.formatting import (
    CAPTION_TOO_LONG,
    MAX_CAPTION_LENGTH,
    check_message_length,
    parse_formatted,
)


def _entities(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request("can't parse entities JSON object")
    return value


def formatted_text(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    """(text, entities) of a message body; 400 on parse errors, empty or over-long text."""
    if not isinstance(text, str):
        raise bad_request("message text is empty")
    ft = parse_formatted(text, parse_mode or None, _entities(entities))
    check_message_length(ft)
    return ft.text, [dict(e) for e in ft.entities]


def formatted_caption(
    caption: Any, parse_mode: Any, entities: Any
) -> tuple[str | None, list[dict[str, Any]]]:
    """(caption, caption_entities); a missing or empty caption is None."""
    if caption is None or caption == "":
        return None, []
    if not isinstance(caption, str):
        raise bad_request("can't parse caption")
    ft = parse_formatted(caption, parse_mode or None, _entities(entities), allow_empty=True)
    check_message_length(ft, MAX_CAPTION_LENGTH, CAPTION_TOO_LONG)
    return (ft.text or None), [dict(e) for e in ft.entities]
