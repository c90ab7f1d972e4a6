"""Reduce arbitrary HTML to the subset Telegram's HTML parse mode accepts.

The output always parses: only allowed tags with allowed attributes, every tag closed in the
right order, text re-escaped. It also respects Telegram's nesting rules (pre/code hold plain
text; links, code, pre and custom emoji do not contain one another; blockquotes do not nest),
because Telegram silently drops entities that break them and a stricter parser may refuse them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser

from gateway.rendering.escape import escape_text, safe_href

# Formatting tags and the entity each makes. A tag whose entity is already open is redundant
# (<b> in <b>) and dropped; this also bounds the nesting depth whatever the input.
_ENTITY = {
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
    "span": "spoiler",
}
_FORMATTING = frozenset(_ENTITY) - {"span"}
# Entities that may not contain one another (Telegram: "all other entities can't contain each
# other"); code directly inside pre is the one sanctioned exception.
_EXCLUSIVE = frozenset({"a", "code", "pre", "tg-emoji"})
_PLAIN_TEXT = frozenset({"code", "pre"})
# Their content is never shown: a <script> body in a notification is an attack or a mistake.
_DROP_CONTENT = frozenset({"script", "style"})
# Dropped tags that still end a line where they start and stop.
_BLOCK = frozenset(
    {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section"}
    | {"article", "header", "footer", "nav", "aside", "main", "dl", "dt", "dd", "figure"}
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
    | {"track", "param"}
)
_LANGUAGE = re.compile(r"language-[A-Za-z0-9_+#.-]{1,64}")
_EMOJI_ID = re.compile(r"[0-9]{1,32}")

Attrs = list[tuple[str, str | None]]


@dataclass
class _Open:
    name: str
    kept: bool


def _attr(attrs: Attrs, name: str) -> str | None:
    for key, value in attrs:
        if key == name:
            return value if value is not None else ""
    return None


def _opening_tag(name: str, attrs: Attrs, kept: list[str]) -> str | None:
    """The tag to emit for `<name attrs>` given the kept tags open around it, or None to drop."""
    inside = set(kept)
    parent = kept[-1] if kept else None
    if inside & _PLAIN_TEXT and not (name == "code" and parent == "pre"):
        return None
    if name in _ENTITY and _ENTITY[name] in {_ENTITY.get(k) for k in kept}:
        return None
    if name in _FORMATTING:
        return f"<{name}>"
    if name == "span":
        classes = (_attr(attrs, "class") or "").split()
        return '<span class="tg-spoiler">' if "tg-spoiler" in classes else None
    if name == "blockquote":
        if "blockquote" in inside or inside & _EXCLUSIVE:
            return None
        return (
            "<blockquote expandable>" if _attr(attrs, "expandable") is not None else "<blockquote>"
        )
    if name not in _EXCLUSIVE or (inside & _EXCLUSIVE and parent != "pre"):
        return None
    if name == "a":
        href = safe_href(_attr(attrs, "href") or "")
        return None if href is None else f'<a href="{escape_text(href)}">'
    if name == "tg-emoji":
        emoji_id = _attr(attrs, "emoji-id") or ""
        return f'<tg-emoji emoji-id="{emoji_id}">' if _EMOJI_ID.fullmatch(emoji_id) else None
    if name == "code" and parent == "pre":
        language = next(
            (c for c in (_attr(attrs, "class") or "").split() if _LANGUAGE.fullmatch(c)), None
        )
        return f'<code class="{language}">' if language else "<code>"
    return f"<{name}>"


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[_Open] = []  # every open element, kept or dropped
        self.kept: list[str] = []  # names of the kept ones: a few at most (see _ENTITY)
        self.open_names: Counter[str] = Counter()  # of self.stack, to spot stray end tags fast
        self.skipping: str | None = None  # inside script/style: the tag that ends the skip
        # Line breaks from block tags are emitted lazily, before the next visible text, so that
        # nested or adjacent blocks give one break and none lands at the start or the end.
        self.pending_break = False
        self.pending_bullet = False
        self.has_text = False
        self.last_is_data = False  # is out[-1] escaped source text (safe to rstrip)?

    def _in_plain_text(self) -> bool:
        return any(name in _PLAIN_TEXT for name in self.kept)

    def _push(self, name: str, *, kept: bool) -> None:
        self.stack.append(_Open(name, kept))
        self.open_names[name] += 1
        if kept:
            self.kept.append(name)

    def _pop(self) -> _Open:
        element = self.stack.pop()
        self.open_names[element.name] -= 1
        if element.kept:
            self.kept.pop()
        return element

    def _block_boundary(self, *, bullet: bool = False) -> None:
        # Whitespace before a block boundary is source indentation, not content.
        if self.last_is_data and not self._in_plain_text():
            self.out[-1] = self.out[-1].rstrip()
        self.pending_break = True
        self.pending_bullet = self.pending_bullet or bullet

    def _emit(self, html: str, *, data: bool = False) -> None:
        self.out.append(html)
        self.last_is_data = data

    def _flush_pending(self) -> None:
        if self.has_text and self.pending_break:
            self._emit("\n")
        if self.pending_bullet:
            self._emit("• ")
            self.has_text = True
        self.pending_break = self.pending_bullet = False

    def handle_starttag(self, tag: str, attrs: Attrs) -> None:
        if self.skipping:
            return
        if tag in _DROP_CONTENT:
            self.skipping = tag
            return
        if tag == "br":
            self._flush_pending()
            self._emit("\n")
            self.has_text = True
            return
        if tag in _VOID:
            if tag == "hr":
                self._block_boundary()
            return
        if tag in _BLOCK:
            self._block_boundary(bullet=tag == "li")
            self._push(tag, kept=False)
            return
        opening = _opening_tag(tag, attrs, self.kept)
        if opening is not None:
            self._flush_pending()
            self._emit(opening)
        self._push(tag, kept=opening is not None)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping:
                self.skipping = None
            return
        if tag in _VOID or not self.open_names[tag]:
            return  # stray closing tag: nothing open to close
        # Closing an outer tag closes everything opened inside it (mis-nested input).
        while (element := self._pop()).name != tag:
            self._close(element)
        self._close(element)

    def _close(self, element: _Open) -> None:
        if element.kept:
            self._emit(f"</{element.name}>")
        elif element.name in _BLOCK:
            self._block_boundary()

    def handle_data(self, data: str) -> None:
        if self.skipping or not data:
            return
        if self.pending_break or self.pending_bullet:
            if not self._in_plain_text():
                data = data.lstrip()
            if not data:
                return
            self._flush_pending()
        self._emit(escape_text(data), data=True)
        self.has_text = True

    def result(self) -> str:
        self.close()
        while self.stack:
            element = self._pop()
            if element.kept:
                self._emit(f"</{element.name}>")
        return "".join(self.out)


# What html.parser may see as markup: a complete tag, declaration or processing instruction.
# Markup-like text that is never completed (`a <b c`, `<!-- no end`) would make html.parser rescan
# the rest of the input at every `<`, quadratic on hostile input; it is text, so we escape it
# first. `[^<>]` also keeps each match from running past the next `<`.
_MARKUP = re.compile(r"</?[A-Za-z][^<>]*+>|<![^<>-][^<>]*+>|<\?[^<>]*+>")


def _escape_unfinished_markup(source: str) -> str:
    out: list[str] = []
    position = 0
    comments_end = True  # False once a comment without `-->` is seen: none can end after it
    while (lt := source.find("<", position)) >= 0:
        out.append(source[position:lt])
        if source.startswith("<!--", lt) and comments_end:
            end = source.find("-->", lt + 4)
            if end >= 0:
                out.append(source[lt : end + 3])
                position = end + 3
                continue
            comments_end = False
        if (match := _MARKUP.match(source, lt)) is not None:
            out.append(match.group(0))
            position = match.end()
        else:
            out.append("&lt;")
            position = lt + 1
    out.append(source[position:])
    return "".join(out)


def sanitize_html(source: str) -> str:
    """Telegram-safe HTML from arbitrary HTML (see the module docstring for the rules)."""
    parser = _Sanitizer()
    parser.feed(_escape_unfinished_markup(source))
    return parser.result()
