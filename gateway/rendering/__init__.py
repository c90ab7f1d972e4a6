"""Rendering of message content for Telegram: pure functions, no I/O.

`render_message` is the one call the delivery path needs; the rest is exposed for tests and for
channels that need a piece of it (e.g. the hashtags alone).
"""

from __future__ import annotations

from gateway.rendering.escape import escape_text, safe_href
from gateway.rendering.hashtags import (
    category_hashtags,
    hashtag_line,
    hashtags_for,
    normalise_hashtag,
)
from gateway.rendering.markdown import markdown_to_html
from gateway.rendering.sanitize import sanitize_html
from gateway.rendering.split import TELEGRAM_LIMIT, split_html, visible_length, visible_text
from gateway.rendering.telegram_html import (
    CONTENT_KINDS,
    ContentKind,
    render_body,
    render_message,
)

__all__ = [
    "CONTENT_KINDS",
    "TELEGRAM_LIMIT",
    "ContentKind",
    "category_hashtags",
    "escape_text",
    "hashtag_line",
    "hashtags_for",
    "markdown_to_html",
    "normalise_hashtag",
    "render_body",
    "render_message",
    "safe_href",
    "sanitize_html",
    "split_html",
    "visible_length",
    "visible_text",
]
