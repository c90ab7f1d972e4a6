"""Escaping and URL checks shared by every renderer.

Telegram's HTML parse mode understands only four named entities (&lt; &gt; &amp; &quot;) plus
numeric ones, so we escape exactly those four characters and nothing else: `'` stays readable
instead of turning into `&#x27;` as `html.escape` would make it.
"""

from __future__ import annotations

import re

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})

# Schemes Telegram accepts for links that we are willing to forward. Everything else (javascript:,
# data:, file:, relative paths) is refused: the link text is kept, the link is not.
ALLOWED_SCHEMES = ("http", "https", "tg", "mailto")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# Whitespace or control characters inside a URL are how `java\tscript:` style tricks hide; a real
# notification link never needs them, so such a URL is refused outright.
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


def escape_text(text: str) -> str:
    """Escape text for Telegram HTML (text nodes and attribute values alike)."""
    return text.translate(_ESCAPES)


def safe_href(url: str) -> str | None:
    """The URL if its scheme is one we allow, else None. Returned unescaped."""
    url = url.strip()
    if not url or _BAD_URL_CHARS.search(url):
        return None
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() not in ALLOWED_SCHEMES:
        return None
    return url
