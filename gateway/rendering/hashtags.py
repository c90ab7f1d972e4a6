"""Hashtags: the category's fixed tags first, then the sender's, normalised to Telegram's rules.

Telegram only turns `#word` into a searchable hashtag when the word is made of letters, decimal
digits and `_` and holds at least one letter (TDLib's `match_hashtags`). A tag that breaks those
rules would show as plain text and never be found by search, so we repair what we can (strip
the offending characters) and drop what is left if it still could not be a hashtag.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from gateway.topics import TOPICS
from storage.enums import Category

# Longest tag body we send (the text after `#`), in characters. Longer tags are truncated.
MAX_HASHTAG_LENGTH = 64


def _is_letter(ch: str) -> bool:
    # Combining marks (M*) count as letters: Devanagari, Thai and other scripts write vowels as
    # marks, and stripping them would mangle the word. TDLib treats them as hashtag letters too.
    return unicodedata.category(ch)[0] in "LM"


def _is_tag_char(ch: str) -> bool:
    return ch == "_" or _is_letter(ch) or unicodedata.category(ch) == "Nd"


def _is_plain_tag(body: str) -> bool:
    """ASCII letters, digits and `_` only, at most 64 of them, one a letter: most tags senders
    send, already Telegram hashtags as they are (every message's tags pass through here)."""
    return (
        len(body) <= MAX_HASHTAG_LENGTH
        and body.isascii()
        and body.replace("_", "a").isalnum()  # false when empty
        and not body.replace("_", "0").isdigit()  # some letter
    )


def normalise_hashtag(raw: str) -> str | None:
    """`raw` as a Telegram hashtag (`#word`), or None when nothing usable is left.

    The leading `#` is optional; characters other than letters, decimal digits and `_` are
    removed (so `#CI/CD` becomes `#CICD`); the body is cut to 64 characters; a body without a
    single letter (empty, all digits, only underscores) is dropped.
    """
    plain = raw.removeprefix("#")
    if _is_plain_tag(plain):
        return "#" + plain  # what the general path below makes of it, without its cost
    # NFC first so that "é" typed as e + accent and as one code point are the same tag.
    body = "".join(ch for ch in unicodedata.normalize("NFC", raw) if _is_tag_char(ch))
    body = body[:MAX_HASHTAG_LENGTH]
    if not any(_is_letter(ch) for ch in body):
        return None
    return "#" + body


def category_hashtags(category: str) -> tuple[str, ...]:
    """The fixed tags of a category (DESIGN.md). Raises ValueError for an unknown category."""
    try:
        return TOPICS[Category(category)].hashtags
    except ValueError:
        raise ValueError(f"unknown category {category!r}") from None


def hashtags_for(category: str, requested: Sequence[str]) -> list[str]:
    """Category tags, then the requested ones normalised; case-insensitive duplicates dropped."""
    tags: list[str] = []
    seen: set[str] = set()
    candidates = [*category_hashtags(category), *(normalise_hashtag(r) for r in requested)]
    for tag in candidates:
        if tag is None:
            continue
        # casefold, not lower: "#Straße" and "#STRASSE" are the same search to a reader.
        key = tag.casefold()
        if key not in seen:
            seen.add(key)
            tags.append(tag)
    return tags


def hashtag_line(category: str, requested: Sequence[str], *, max_length: int | None = None) -> str:
    """The hashtag line of a message, e.g. `#auth #security #login`.

    With `max_length` (UTF-16 units), requested tags are dropped from the end until the line
    fits, so that a sender's hundred tags cannot crowd out the message; the category's own
    tags are always kept.
    """
    tags = hashtags_for(category, requested)
    if max_length is not None:
        fixed = len(category_hashtags(category))
        while len(tags) > fixed and _utf16(" ".join(tags)) > max_length:
            tags.pop()
    return " ".join(tags)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
