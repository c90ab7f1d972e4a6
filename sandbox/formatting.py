"""Telegram text formatting: parse_mode HTML / MarkdownV2 / Markdown into text + entities.

Pure functions. The parsers follow TDLib's (the library behind telegram-bot-api) parse_html,
parse_markdown_v2 and parse_markdown closely, including their error messages, so a bot that
sends a malformed text gets the same 400 from the sandbox as from Telegram. Offsets and
lengths of entities are in UTF-16 code units, byte offsets in errors are in UTF-8 bytes of the
original text, both as Telegram reports them.

Deliberate simplifications (documented where they happen):
* tg://user?id= links become text_link entities, not text_mention (we have no User object);
* URLs are checked loosely: an http(s)/tg/ton URL, or a host-like string that gets "http://";
* auto-detected entities (mentions, hashtags, bare URLs) are not added;
* entities inside code/pre are kept (Telegram drops them);
* unknown HTML entities such as "&foo;" stay literal text, as in TDLib (no error).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import BotAPIError, bad_request

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MESSAGE_TOO_LONG = "message is too long"
CAPTION_TOO_LONG = "message caption is too long"

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)


@dataclass(frozen=True)
class FormattedText:
    text: str
    # Bot API MessageEntity dicts: {type, offset, length, url?, language?, user?, ...}.
    entities: tuple[dict[str, Any], ...] = ()


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units: characters outside the BMP (most emoji) count twice."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in s)


def parse_formatted(
    text: str,
    parse_mode: str | None,
    entities: list[dict[str, Any]] | None = None,
    *,
    allow_empty: bool = False,
) -> FormattedText:
    """Apply `parse_mode` (or validate explicit `entities` when there is none).

    As in telegram-bot-api, `entities` are ignored when a parse mode is given, and the mode
    name is case-insensitive ("none" means no mode). The result is trimmed of surrounding
    whitespace; an empty result is "message text is empty" unless `allow_empty` (captions
    may be empty).
    """
    mode = (parse_mode or "").lower()
    if not text or mode in ("", "none"):
        result = FormattedText(text, _check_entities(text, entities or []))
    elif mode == "html":
        result = _HtmlParser(text).parse()
    elif mode == "markdownv2":
        result = _MarkdownV2Parser(text).parse()
    elif mode == "markdown":
        result = _MarkdownParser(text).parse()
    else:
        raise bad_request("unsupported parse_mode")
    result = _trim(result)
    if not allow_empty and not result.text:
        raise bad_request("message text is empty")
    return result


def check_message_length(
    ft: FormattedText, limit: int = MAX_MESSAGE_LENGTH, too_long: str = MESSAGE_TOO_LONG
) -> None:
    """400 if the parsed text is longer than `limit` UTF-16 units (markup does not count).

    Captions: check_message_length(ft, MAX_CAPTION_LENGTH, CAPTION_TOO_LONG).
    """
    if utf16_len(ft.text) > limit:
        raise bad_request(too_long)


# --------------------------------------------------------------------------- shared helpers

# TDLib's is_space: the characters trimmed from both ends of every message text.
_TRIM_CHARS = " \t\r\n\v\f"


def _trim(ft: FormattedText) -> FormattedText:
    """Strip leading/trailing whitespace as Telegram does, clipping entities to match.

    Telegram never stores a text starting or ending with spaces or newlines ("hi\n" is
    answered as "hi"), so "```\ncode\n```" yields a pre entity over "code", not "code\n".
    """
    stripped = ft.text.strip(_TRIM_CHARS)
    if stripped == ft.text:
        return ft
    lead = utf16_len(ft.text[: len(ft.text) - len(ft.text.lstrip(_TRIM_CHARS))])
    end_limit = lead + utf16_len(stripped)
    entities: list[dict[str, Any]] = []
    for entity in ft.entities:
        start = max(entity["offset"], lead)
        end = min(entity["offset"] + entity["length"], end_limit)
        if end > start:
            entities.append({**entity, "offset": start - lead, "length": end - start})
    return FormattedText(stripped, tuple(entities))


def _entities_error(detail: str) -> BotAPIError:
    return bad_request(f"can't parse entities: {detail}")


_URL_SCHEMES = ("http://", "https://", "tg://", "ton://", "tonsite://")
_HOST_LIKE = re.compile(r"[\w.-]+\.[\w-]+(?:[:/?#]\S*)?", re.UNICODE)


def _check_url(url: str) -> str | None:
    """The URL Telegram would store for a link, or None if the link is dropped.

    TDLib's check_link is far stricter; this keeps its visible effects on common input: a
    missing scheme becomes "http://", and an http(s) URL without a path gets "/" (Telegram
    answers "https://example.com/" for href="https://example.com").
    """
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    lower = url.lower()
    if not lower.startswith(_URL_SCHEMES):
        if "://" in url or not _HOST_LIKE.fullmatch(url):
            return None
        url, lower = "http://" + url, "http://" + lower
    if lower.startswith(("http://", "https://")):
        scheme_end = url.index("://") + 3
        rest = url[scheme_end:]
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        if not rest[:cut]:
            return None
        if cut == len(rest) or rest[cut] != "/":
            url = url[:scheme_end] + rest[:cut] + "/" + rest[cut:]
    return url


@dataclass
class _Open:
    """An entity whose start has been seen and whose end has not, yet."""

    kind: str  # tag name (HTML) or entity type (Markdown)
    offset: int  # UTF-16 offset in the output text
    byte_offset: int  # UTF-8 offset in the input, for error messages
    out_pos: int  # index into the output character list, to recover the entity text
    seq: int  # opening order, to keep outer-before-inner for equal ranges
    attrs: dict[str, str] = field(default_factory=dict)


class _Builder:
    """Accumulates output text and entities while a parser walks its input."""

    def __init__(self, text: str) -> None:
        self.src = text
        self.byte_at = list(
            itertools.accumulate(
                (len(ch.encode("utf-8", "surrogatepass")) for ch in text), initial=0
            )
        )
        self.out: list[str] = []
        self.utf16 = 0
        self.entities: list[tuple[int, int, int, dict[str, Any]]] = []
        self._seq = itertools.count()

    def emit(self, ch: str) -> None:
        self.out.append(ch)
        self.utf16 += 2 if ord(ch) > 0xFFFF else 1

    def open(self, kind: str, index: int, **attrs: str) -> _Open:
        return _Open(kind, self.utf16, self.byte_at[index], len(self.out), next(self._seq), attrs)

    def text_since(self, opened: _Open) -> str:
        return "".join(self.out[opened.out_pos :])

    def add(self, opened: _Open, entity_type: str, **extra: Any) -> None:
        length = self.utf16 - opened.offset
        if length <= 0:
            return  # Telegram drops empty entities
        entity: dict[str, Any] = {"type": entity_type, "offset": opened.offset, "length": length}
        entity.update(extra)
        self.entities.append((opened.offset, -length, opened.seq, entity))

    def result(self) -> FormattedText:
        ordered = sorted(self.entities, key=lambda item: item[:3])
        return FormattedText("".join(self.out), tuple(item[3] for item in ordered))


def _link_entity(url: str) -> dict[str, Any] | None:
    checked = _check_url(url)
    if checked is None:
        return None
    return {"url": checked}


# --------------------------------------------------------------------------- explicit entities


def _check_entities(text: str, entities: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    total = utf16_len(text)
    out: list[dict[str, Any]] = []
    for raw in entities:
        problem, entity = _check_entity(raw, total)
        if problem is not None:
            raise bad_request(f"can't parse MessageEntity: {problem}")
        if entity is not None:
            out.append(entity)
    out.sort(key=lambda e: (e["offset"], -e["length"]))
    return tuple(out)


def _check_entity(raw: Any, total: int) -> tuple[str | None, dict[str, Any] | None]:
    if not isinstance(raw, Mapping):
        return "expected an Object", None
    for key in ("offset", "length"):
        value = raw.get(key)
        if value is None:
            return f'Can\'t find field "{key}"', None
        if not isinstance(value, int) or isinstance(value, bool):
            return f'Field "{key}" must be of type Number', None
    entity_type = raw.get("type")
    if not isinstance(entity_type, str) or not entity_type:
        return "Type is not specified", None
    if entity_type not in ENTITY_TYPES:
        return "Unsupported type specified", None
    offset, length = raw["offset"], raw["length"]
    if offset < 0 or length < 0 or offset + length > total:
        return "entity is out of the text bounds", None
    if length == 0:
        return None, None  # Telegram drops empty entities
    entity: dict[str, Any] = {"type": entity_type, "offset": offset, "length": length}
    # The extra field each type needs, and whether it is required.
    extras = {
        "text_link": ("url", True),
        "pre": ("language", False),
        "custom_emoji": ("custom_emoji_id", True),
        "text_mention": ("user", True),
    }
    if entity_type in extras:
        key, required = extras[entity_type]
        value = raw.get(key)
        if value is None or value == "":
            if required:
                return f'Can\'t find field "{key}"', None
        elif key == "user":
            if not isinstance(value, Mapping) or not isinstance(value.get("id"), int):
                return 'Field "user" must be a User with an "id"', None
            entity[key] = dict(value)
        elif not isinstance(value, str):
            return f'Field "{key}" must be of type String', None
        else:
            entity[key] = value
    if entity_type == "date_time":
        unix_time = raw.get("unix_time")
        if not isinstance(unix_time, int) or isinstance(unix_time, bool):
            return 'Can\'t find field "unix_time"', None
        entity["unix_time"] = unix_time
        if isinstance(raw.get("date_time_format"), str):
            entity["date_time_format"] = raw["date_time_format"]
    return None, entity


# --------------------------------------------------------------------------- HTML

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",  # only class="tg-spoiler" is accepted, checked at the start tag
    "code": "code",
}
# Only these named entities are decoded; any other "&name;" stays as literal text, which is
# what TDLib does (it does not fail on unknown entities).
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_SPACE = " \t\r\n\f\v"


class _HtmlParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.b = _Builder(text)
        self.stack: list[_Open] = []

    def _char(self, i: int) -> str:
        return self.text[i] if i < len(self.text) else ""

    def _byte(self, i: int) -> int:
        return self.b.byte_at[i]

    def parse(self) -> FormattedText:
        i, n = 0, len(self.text)
        while i < n:
            ch = self.text[i]
            if ch == "&":
                decoded, end = self._decode_entity(i)
                if decoded is not None:
                    self.b.emit(decoded)
                    i = end
                    continue
            if ch != "<":
                self.b.emit(ch)
                i += 1
                continue
            i = self._end_tag(i) if self._char(i + 1) == "/" else self._start_tag(i)
        if self.stack:
            raise _entities_error(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].kind}"'
            )
        # A language only means something on a pre; a lone <code class="language-x"> is code.
        for _, _, _, entity in self.b.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        return self.b.result()

    def _decode_entity(self, i: int) -> tuple[str | None, int]:
        """(character, index after ';') for a known entity at `i`, else (None, i)."""
        end = self.text.find(";", i + 1)
        if end < 0:
            return None, i
        body = self.text[i + 1 : end]
        if body.startswith("#"):
            digits = body[1:]
            base = 10
            if digits[:1] in ("x", "X"):
                digits, base = digits[1:], 16
            allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
            if not digits or len(digits) > 8 or any(c not in allowed for c in digits):
                return None, i
            code = int(digits, base)
            if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return None, i
            return chr(code), end + 1
        if body in _NAMED_ENTITIES:
            return _NAMED_ENTITIES[body], end + 1
        return None, i

    def _start_tag(self, begin: int) -> int:
        text, n = self.text, len(self.text)
        i = begin + 1
        while i < n and text[i] not in _HTML_SPACE and text[i] != ">":
            i += 1
        if i >= n:
            raise _entities_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        tag = text[begin + 1 : i].lower()
        if tag not in _HTML_TAGS:
            raise _entities_error(
                f'Unsupported start tag "{tag}" at byte offset {self._byte(begin)}'
            )
        attrs: dict[str, str] = {}
        while True:
            while i < n and text[i] in _HTML_SPACE:
                i += 1
            if i >= n:
                raise _entities_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
            if text[i] == ">":
                break
            i = self._attribute(tag, begin, i, attrs)
        opened = self.b.open(tag, begin, **attrs)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise _entities_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self._byte(begin)}'
            )
        self.stack.append(opened)
        return i + 1

    def _attribute(self, tag: str, begin: int, i: int, attrs: dict[str, str]) -> int:
        text, n = self.text, len(self.text)
        name_start = i
        while i < n and text[i] not in _HTML_SPACE and text[i] not in "=>":
            i += 1
        name = text[name_start:i].lower()
        if not name:
            raise _entities_error(
                f'Empty attribute name in the tag "{tag}" at byte offset {self._byte(begin)}'
            )
        while i < n and text[i] in _HTML_SPACE:
            i += 1
        if i < n and text[i] != "=":
            # A bare attribute; only <blockquote expandable> gives one a meaning.
            attrs[name] = ""
            return i
        i += 1
        while i < n and text[i] in _HTML_SPACE:
            i += 1
        if i >= n:
            raise _entities_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        if text[i] in "'\"":
            quote = text[i]
            i += 1
            value: list[str] = []
            while i < n and text[i] != quote:
                if text[i] == "&":
                    decoded, end = self._decode_entity(i)
                    if decoded is not None:
                        value.append(decoded)
                        i = end
                        continue
                value.append(text[i])
                i += 1
            if i >= n:
                raise _entities_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
            attrs[name] = "".join(value)
            return i + 1
        # An unquoted name token: letters, digits, periods and hyphens, case-insensitive.
        token_start = i
        while i < n and (text[i].isalnum() or text[i] in ".-"):
            i += 1
        if i < n and text[i] not in _HTML_SPACE and text[i] != ">":
            raise _entities_error(
                f"Unexpected end of name token at byte offset {self._byte(token_start)}"
            )
        attrs[name] = text[token_start:i].lower()
        return i

    def _end_tag(self, begin: int) -> int:
        text, n = self.text, len(self.text)
        if not self.stack:
            raise _entities_error(f"Unexpected end tag at byte offset {self._byte(begin)}")
        i = begin + 2
        while i < n and text[i] not in _HTML_SPACE and text[i] != ">":
            i += 1
        name = text[begin + 2 : i].lower()
        while i < n and text[i] in _HTML_SPACE:
            i += 1
        if i >= n or text[i] != ">":
            raise _entities_error(f"Unclosed end tag at byte offset {self._byte(begin)}")
        opened = self.stack[-1]
        if name and name != opened.kind:
            raise _entities_error(
                f"Unmatched end tag at byte offset {self._byte(begin)}, "
                f'expected "</{opened.kind}>", found "</{name}>"'
            )
        self.stack.pop()
        self._close(opened)
        return i + 1

    def _close(self, opened: _Open) -> None:
        tag, attrs = opened.kind, opened.attrs
        if tag in _HTML_SIMPLE:
            if tag == "code" and attrs.get("class", "").startswith("language-"):
                # Only meaningful inside <pre>: remembered, merged into the pre on close.
                self.b.add(opened, "code", language=attrs["class"].removeprefix("language-"))
            else:
                self.b.add(opened, _HTML_SIMPLE[tag])
        elif tag == "a":
            # No href: the link text is the URL. Links that do not check out are dropped.
            extra = _link_entity(attrs.get("href") or self.b.text_since(opened))
            if extra is not None:
                self.b.add(opened, "text_link", **extra)
        elif tag == "pre":
            self._close_pre(opened)
        elif tag == "blockquote":
            kind = "expandable_blockquote" if "expandable" in attrs else "blockquote"
            self.b.add(opened, kind)
        elif tag == "tg-emoji":
            emoji_id = attrs.get("emoji-id", "")
            if not emoji_id.isdigit():
                raise _entities_error(
                    f"Invalid custom emoji identifier specified at byte offset {opened.byte_offset}"
                )
            self.b.add(opened, "custom_emoji", custom_emoji_id=emoji_id)

    def _close_pre(self, opened: _Open) -> None:
        # <pre><code class="language-x">...</code></pre> is one pre entity with a language:
        # the inner code entity, if it spans the whole pre, is folded into it.
        length = self.b.utf16 - opened.offset
        entities = self.b.entities
        if entities:
            last = entities[-1][3]
            same_range = last["offset"] == opened.offset and last["length"] == length
            if same_range and last["type"] == "code" and "language" in last:
                entities.pop()
                self.b.add(opened, "pre", language=last["language"])
                return
        self.b.add(opened, "pre")


# --------------------------------------------------------------------------- MarkdownV2

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}
_CUSTOM_EMOJI_URL = re.compile(r"tg://emoji\?id=(\d+)")


def _reserved_error(ch: str) -> BotAPIError:
    return _entities_error(
        f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
    )


class _MarkdownV2Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.b = _Builder(text)
        self.stack: list[_Open] = []
        self.quote: _Open | None = None  # blockquotes are line-based, kept outside the stack

    def _char(self, i: int) -> str:
        return self.text[i] if i < len(self.text) else ""

    def parse(self) -> FormattedText:
        text, n = self.text, len(self.text)
        i = 0
        while i < n:
            if i == 0 or text[i - 1] == "\n":
                i = self._line_start(i)
                if i >= n:
                    break
            ch = text[i]
            if self.quote is not None and not self.stack:
                if ch == "\n" and self._char(i + 1) != ">":
                    self._finish_quote()  # the quote ends before its terminating newline
                    continue
                if self._expandable_end(i):
                    i += 2
                    continue
            if ch == "\\" and 0 < ord(self._char(i + 1) or "\0") <= 126:
                self.b.emit(text[i + 1])
                i += 2
                continue
            in_code = bool(self.stack) and self.stack[-1].kind in ("code", "pre")
            reserved = "`" if in_code else _MDV2_RESERVED
            if ch not in reserved:
                self.b.emit(ch)
                i += 1
                continue
            if self.stack and self._ends_entity(self.stack[-1], i):
                i = self._close(i)
            else:
                i = self._open(i)
        if self.stack:
            opened = self.stack[-1]
            raise _entities_error(
                f"Can't find end of {_MDV2_NAMES[opened.kind]} entity at byte offset "
                f"{opened.byte_offset}"
            )
        if self.quote is not None:
            self._finish_quote()
        return self.b.result()

    # ----- blockquotes: ">" at the start of a line; "**>" starts an expandable one whose last
    # line ends with "||".

    def _line_start(self, i: int) -> int:
        text = self.text
        if self.stack:
            return i  # a ">" inside an open entity is an ordinary reserved character
        expandable = text.startswith("**>", i)
        if not expandable and self._char(i) != ">":
            return i
        if self.quote is None:
            self.quote = self.b.open("blockquote", i)
            if expandable:
                self.quote.attrs["expandable"] = "1"
        return i + (3 if expandable else 1)

    def _expandable_end(self, i: int) -> bool:
        # "||" closing the last line of an expandable quote is markup, not a spoiler start.
        quote = self.quote
        return (
            quote is not None
            and "expandable" in quote.attrs
            and self.text.startswith("||", i)
            and self._char(i + 2) in ("", "\n")
        )

    def _finish_quote(self) -> None:
        quote = self.quote
        assert quote is not None
        self.quote = None
        expandable = "expandable" in quote.attrs
        self.b.add(quote, "expandable_blockquote" if expandable else "blockquote")

    # ----- inline entities

    def _ends_entity(self, opened: _Open, i: int) -> bool:
        ch, nxt = self.text[i], self._char(i + 1)
        kind = opened.kind
        if kind == "bold":
            return ch == "*"
        if kind == "italic":
            return ch == "_" and nxt != "_"
        if kind == "underline":
            return ch == "_" and nxt == "_"
        if kind == "strikethrough":
            return ch == "~"
        if kind == "spoiler":
            return ch == "|" and nxt == "|"
        if kind == "code":
            return ch == "`"
        if kind == "pre":
            return self.text.startswith("```", i)
        return ch == "]"  # text_link, custom_emoji

    def _open(self, i: int) -> int:
        text, ch, nxt = self.text, self.text[i], self._char(i + 1)
        start = i
        attrs: dict[str, str] = {}
        if ch == "_" and nxt == "_":
            kind, i = "underline", i + 2
        elif ch == "_":
            kind, i = "italic", i + 1
        elif ch == "*":
            kind, i = "bold", i + 1
        elif ch == "~":
            kind, i = "strikethrough", i + 1
        elif ch == "|" and nxt == "|":
            kind, i = "spoiler", i + 2
        elif ch == "[":
            kind, i = "text_link", i + 1
        elif ch == "!" and nxt == "[":
            kind, i = "custom_emoji", i + 2
        elif ch == "`" and text.startswith("```", i):
            kind, i = "pre", i + 3
            end = i
            while end < len(text) and text[end] not in _HTML_SPACE and text[end] != "`":
                end += 1
            if end != i and end < len(text) and text[end] != "`":
                attrs["language"] = text[i:end]
                i = end
            i = _skip_one_newline(text, i)
        elif ch == "`":
            kind, i = "code", i + 1
        else:
            raise _reserved_error(ch)
        opened = self.b.open(kind, start, **attrs)
        self.stack.append(opened)
        return i

    def _close(self, i: int) -> int:
        opened = self.stack.pop()
        kind = opened.kind
        if kind in ("underline", "spoiler"):
            self.b.add(opened, kind)
            return i + 2
        if kind == "pre":
            if "language" in opened.attrs:
                self.b.add(opened, "pre", language=opened.attrs["language"])
            else:
                self.b.add(opened, "pre")
            return i + 3
        if kind == "text_link":
            return self._close_link(opened, i)
        if kind == "custom_emoji":
            return self._close_custom_emoji(opened, i)
        self.b.add(opened, kind)
        return i + 1

    def _read_url(self, i: int, what: str) -> tuple[str, int]:
        """The "(url)" after "]" at i: (url, index after ')')."""
        text, n = self.text, len(self.text)
        i += 2
        begin = i
        url: list[str] = []
        while i < n and text[i] != ")":
            if text[i] == "\\" and 0 < ord(self._char(i + 1) or "\0") <= 126:
                url.append(text[i + 1])
                i += 2
                continue
            url.append(text[i])
            i += 1
        if i >= n:
            raise _entities_error(
                f"Can't find end of {what} at byte offset {self.b.byte_at[begin]}"
            )
        return "".join(url), i + 1

    def _close_link(self, opened: _Open, i: int) -> int:
        if self._char(i + 1) == "(":
            url, after = self._read_url(i, "a URL")
        else:
            url, after = self.b.text_since(opened), i + 1  # [https://x.y] links to itself
        extra = _link_entity(url)
        if extra is not None:
            self.b.add(opened, "text_link", **extra)
        return after

    def _close_custom_emoji(self, opened: _Open, i: int) -> int:
        if self._char(i + 1) != "(":
            raise _entities_error("Custom emoji entity must contain a tg://emoji URL")
        url, after = self._read_url(i, "a custom emoji URL")
        match = _CUSTOM_EMOJI_URL.fullmatch(url)
        if match is None:
            raise _entities_error("Custom emoji URL must have an emoji identifier")
        self.b.add(opened, "custom_emoji", custom_emoji_id=match.group(1))
        return after


def _skip_one_newline(text: str, i: int) -> int:
    # After ```lang, one line break (\n, \r, \r\n or \n\r) is not part of the pre text.
    if i < len(text) and text[i] in "\r\n":
        if i + 1 < len(text) and text[i + 1] in "\r\n" and text[i] != text[i + 1]:
            return i + 2
        return i + 1
    return i


# --------------------------------------------------------------------------- legacy Markdown


class _MarkdownParser:
    """Legacy "Markdown": *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.b = _Builder(text)

    def parse(self) -> FormattedText:
        text, n = self.text, len(self.text)
        i = 0
        while i < n:
            ch = text[i]
            if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
                self.b.emit(text[i + 1])
                i += 2
                continue
            if ch not in "_*`[":
                self.b.emit(ch)
                i += 1
                continue
            i = self._entity(i)
        return self.b.result()

    def _entity(self, begin: int) -> int:
        text, n = self.text, len(self.text)
        ch = text[begin]
        end_char = "]" if ch == "[" else ch
        i = begin + 1
        is_pre = False
        language = ""
        if ch == "`" and text.startswith("``", i):
            i += 2
            is_pre = True
            end = i
            while end < n and text[end] not in _HTML_SPACE and text[end] != "`":
                end += 1
            if end != i and end < n and text[end] != "`":
                language, i = text[i:end], end
            i = _skip_one_newline(text, i)
        opened = self.b.open(ch, begin)
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("```", i))):
            self.b.emit(text[i])
            i += 1
        if i >= n:
            raise _entities_error(
                f"Can't find end of the entity starting at byte offset {self.b.byte_at[begin]}"
            )
        if ch == "_":
            self.b.add(opened, "italic")
        elif ch == "*":
            self.b.add(opened, "bold")
        elif ch == "[":
            if i + 1 < n and text[i + 1] == "(":
                close = text.find(")", i + 2)
                close = n if close < 0 else close
                url = text[i + 2 : close]
                i = close
            else:
                url = self.b.text_since(opened)
            extra = _link_entity(url)
            if extra is not None:
                self.b.add(opened, "text_link", **extra)
        elif is_pre:
            if language:
                self.b.add(opened, "pre", language=language)
            else:
                self.b.add(opened, "pre")
            i += 2
        else:
            self.b.add(opened, "code")
        return i + 1
