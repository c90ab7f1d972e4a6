"""A small Markdown dialect rendered as Telegram HTML.

It covers what people put in notifications: emphasis, strike, inline code, fenced code, links,
headings, lists and quotes. It is not CommonMark: lines keep their line breaks (a newline in a
notification is meant), raw HTML is shown as text, and a marker without a partner renders
literally. The result is passed through the sanitiser so it always parses, whatever the input.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from gateway.rendering.escape import escape_text, safe_href
from gateway.rendering.sanitize import sanitize_html

# Possessive quantifiers (*+, ++) wherever a pattern could otherwise backtrack quadratically on
# a long hostile line: every regex here runs on sender-controlled text.
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*+([^\s`]*+)[^`]*+")
_HEADING = re.compile(r" {0,3}(#{1,6})[ \t]++(\S.*)")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*+\1){2,}+[ \t]*+")
_BULLET = re.compile(r"([ \t]*)[-*+][ \t]+(\S.*)")
_NUMBERED = re.compile(r"([ \t]*\d{1,9}[.)])[ \t]+(\S.*)")
# All the `>` markers of a line at once: Telegram quotes do not nest, so neither do ours.
_QUOTE = re.compile(r"(?: {0,3}> ?)++(.*)")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,64}")
_AUTOLINK = re.compile(r"<((?:https?|tg|mailto):[^\s<>]++)>", re.IGNORECASE)
# `url` or `url "title"` up to the closing parenthesis; parentheses in the URL must balance.
_DESTINATION = re.compile(
    r"[ \t]*+((?:[^\s()]|\([^\s()]*+\))++)[ \t\n]*+(?:\"[^\"]*+\"|'[^']*+')?[ \t\n]*+\)"
)
_PUNCTUATION = frozenset(string.punctuation)
# A link destination longer than this is not treated as one: it bounds the work a malicious
# `[a](xxxx…` can cause, and no notification link needs more.
_MAX_URL = 2048
# Delimiter runs that mean something: (char, run length) -> tags, outermost first.
_EMPHASIS = {
    ("*", 1): ("i",),
    ("_", 1): ("i",),
    ("*", 2): ("b",),
    ("_", 2): ("b",),
    ("*", 3): ("b", "i"),
    ("_", 3): ("b", "i"),
    ("~", 2): ("s",),
}


def markdown_to_html(source: str) -> str:
    """Telegram HTML for a Markdown message."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return sanitize_html("\n".join(_render_blocks(lines, in_quote=False)))


# --- blocks -------------------------------------------------------------------------------------


def _is_block_start(line: str) -> bool:
    return any(
        p.fullmatch(line)
        for p in (_FENCE_OPEN, _HEADING, _THEMATIC_BREAK, _BULLET, _NUMBERED, _QUOTE)
    )


def _render_blocks(lines: list[str], *, in_quote: bool) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if fence := _FENCE_OPEN.fullmatch(line):
            i = _render_fence(lines, i, fence, out)
        elif not in_quote and _QUOTE.fullmatch(line):
            inner: list[str] = []
            while i < len(lines) and (quoted := _QUOTE.fullmatch(lines[i])):
                inner.append(quoted.group(1))
                i += 1
            body = "\n".join(_render_blocks(inner, in_quote=True))
            out.append(f"<blockquote>{body}</blockquote>")
        elif heading := _HEADING.fullmatch(line):
            out.append(f"<b>{_inline(_heading_title(heading.group(2)))}</b>")
            i += 1
        elif _THEMATIC_BREAK.fullmatch(line):
            out.append(escape_text(line))
            i += 1
        elif bullet := _BULLET.fullmatch(line):
            out.append(f"{escape_text(bullet.group(1))}• {_inline(bullet.group(2))}")
            i += 1
        elif numbered := _NUMBERED.fullmatch(line):
            out.append(f"{escape_text(numbered.group(1))} {_inline(numbered.group(2))}")
            i += 1
        elif not line.strip():
            out.append("")
            i += 1
        else:
            # A paragraph is rendered as one piece so that emphasis may span its lines.
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() and not _is_block_start(lines[i]):
                i += 1
            out.append(_inline("\n".join(lines[start:i])))
    return out


def _heading_title(title: str) -> str:
    """The title without the optional closing `###` (string methods: no regex backtracking)."""
    title = title.rstrip(" \t")
    bare = title.rstrip("#")
    if bare != title and (not bare or bare[-1] in " \t"):
        title = bare.rstrip(" \t")
    return title


def _render_fence(lines: list[str], i: int, fence: re.Match[str], out: list[str]) -> int:
    """Render the fenced block opening at line i; returns the index after it.

    As in CommonMark, a fence that is never closed runs to the end of the message.
    """
    marker = fence.group(1)
    indent = len(fence.group(0)) - len(fence.group(0).lstrip(" "))
    closing = re.compile(rf" {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*")
    body: list[str] = []
    i += 1
    while i < len(lines) and not closing.fullmatch(lines[i]):
        # Content is indented like the fence; remove that much (and no more) from each line.
        line = lines[i]
        body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
        i += 1
    code = escape_text("\n".join(body))
    language = fence.group(2)
    if _LANGUAGE.fullmatch(language):
        out.append(f'<pre><code class="language-{language}">{code}</code></pre>')
    else:
        out.append(f"<pre>{code}</pre>")
    return i + 1


# --- inline -------------------------------------------------------------------------------------


@dataclass
class _Delim:
    char: str
    length: int
    can_open: bool
    can_close: bool


# A token is escaped-ready text (str with kind "text"), finished HTML, or a delimiter run.
_Token = tuple[str, str] | _Delim


def _inline(source: str, *, links: bool = True) -> str:
    tokens = _tokenize(source, links=links)
    return _render_tokens(tokens, _next_closers(tokens), 0, len(tokens))


def _tokenize(s: str, *, links: bool) -> list[_Token]:
    tokens: list[_Token] = []
    text: list[str] = []

    def push(token: _Token) -> None:
        if text:
            tokens.append(("text", "".join(text)))
            text.clear()
        tokens.append(token)

    next_bracket = _next_unescaped(s, "]")
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in _PUNCTUATION:
            text.append(s[i + 1])
            i += 2
        elif c == "`":
            run = _run_length(s, i)
            end = _closing_backticks(s, i + run, run)
            if end is None:
                text.append("`" * run)
            else:
                push(("html", _code_span(s[i + run : end])))
                run += end - i
            i += run
        elif links and (link := _link(s, i, next_bracket)) is not None:
            html, i = link
            push(("html", html))
        elif c in "*_~":
            run = _run_length(s, i)
            before = s[i - 1] if i else " "
            after = s[i + run] if i + run < n else " "
            if (c, run) in _EMPHASIS:
                opens, closes = not after.isspace(), not before.isspace()
                if c == "_":  # snake_case_names are not emphasis
                    opens, closes = opens and not before.isalnum(), closes and not after.isalnum()
                push(_Delim(c, run, opens, closes))
            else:
                text.append(c * run)
            i += run
        else:
            text.append(c)
            i += 1
    if text:
        tokens.append(("text", "".join(text)))
    return tokens


def _run_length(s: str, i: int) -> int:
    j = i
    while j < len(s) and s[j] == s[i]:
        j += 1
    return j - i


def _closing_backticks(s: str, start: int, run: int) -> int | None:
    match = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(s, start)
    return match.start() if match else None


def _code_span(content: str) -> str:
    content = content.replace("\n", " ")
    if len(content) > 2 and content[0] == " " == content[-1] and content.strip():
        content = content[1:-1]
    return f"<code>{escape_text(content)}</code>"


def _next_unescaped(s: str, char: str) -> list[int]:
    """For each index, where the next unescaped `char` is (len(s) if none): O(1) look-ups later."""
    result = [len(s)] * (len(s) + 1)
    for i in range(len(s) - 1, -1, -1):
        escaped = i > 0 and s[i - 1] == "\\"
        result[i] = i if s[i] == char and not escaped else result[i + 1]
    return result


def _link(s: str, i: int, next_bracket: list[int]) -> tuple[str, int] | None:
    """`[text](url)`, `![alt](url)` or `<url>` at i: (html, index after it), or None."""
    if s[i] == "<":
        auto = _AUTOLINK.match(s, i)
        if auto is None:
            return None
        url = auto.group(1)
        return f'<a href="{escape_text(url)}">{escape_text(url)}</a>', auto.end()
    start = i + 1 if s.startswith("![", i) else i
    if s[start] != "[":
        return None
    close = next_bracket[start + 1]
    if close + 1 >= len(s) or s[close + 1] != "(":
        return None
    parsed = _destination(s, close + 2)
    if parsed is None:
        return None
    url, end = parsed
    label = _inline(s[start + 1 : close], links=False)
    href = safe_href(url)
    if href is None:
        return label, end  # unsupported scheme: keep the words, drop the link
    return f'<a href="{escape_text(href)}">{label or escape_text(href)}</a>', end


def _destination(s: str, i: int) -> tuple[str, int] | None:
    """Parse `url "title")` starting at i: (url, index after the `)`), or None."""
    match = _DESTINATION.match(s, i, min(len(s), i + _MAX_URL))
    return None if match is None else (match.group(1), match.end())


def _next_closers(tokens: list[_Token]) -> list[int | None]:
    """For each delimiter token, the index of the nearest later run that can close it."""
    result: list[int | None] = [None] * len(tokens)
    nearest: dict[tuple[str, int], int] = {}
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        if isinstance(token, _Delim):
            key = (token.char, token.length)
            result[index] = nearest.get(key)
            if token.can_close:
                nearest[key] = index
    return result


def _render_tokens(tokens: list[_Token], closers: list[int | None], start: int, end: int) -> str:
    out: list[str] = []
    i = start
    while i < end:
        token = tokens[i]
        if isinstance(token, _Delim):
            closer = closers[i]
            if token.can_open and closer is not None and i + 1 < closer < end:
                tags = _EMPHASIS[token.char, token.length]
                inner = _render_tokens(tokens, closers, i + 1, closer)
                out.append("".join(f"<{t}>" for t in tags))
                out.append(inner)
                out.append("".join(f"</{t}>" for t in reversed(tags)))
                i = closer + 1
                continue
            out.append(escape_text(token.char * token.length))
        elif token[0] == "text":
            out.append(escape_text(token[1]))
        else:
            out.append(token[1])
        i += 1
    return "".join(out)
