"""Measure Telegram HTML the way Telegram does, and split it into messages that fit.

Telegram limits a message to 4096 characters *after entity parsing*: tags do not count, `&lt;`
is one character, and characters are UTF-16 code units (an emoji outside the BMP is two).

Splitting works on "atoms": a tag, or one visible character with the source that spells it
(`&amp;` is one atom), so a cut can never fall inside a tag or an entity. A cut prefers, in this
order, the last paragraph break, line break, then space that fits; only a run with none of them
is cut mid-word (never inside a grapheme such as an emoji with a skin tone). The whitespace at a
cut is dropped, except the indentation after a line break, which matters in code. Elements open
at a cut are closed at the end of the part and reopened, with the same attributes, at the start
of the next.

Parts are numbered with a prefix: `(1/3) `, `(2/3) `, `(3/3) `. A prefix, unlike a suffix, is
seen first and keeps the hashtags, which go after the body of the last part, at the very end.
The prefix and the suffix are counted in each part's budget. A message that fits is returned as
one part without numbering.
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

TELEGRAM_LIMIT = 4096


class _Kind(Enum):
    CHAR = 0
    OPEN = 1
    CLOSE = 2
    EMPTY = 3  # a self-closing tag: no width, no nesting


@dataclass(frozen=True, slots=True)
class _Atom:
    kind: _Kind
    source: str
    text: str = ""  # the visible character(s), for CHAR
    name: str = ""  # the tag name, for OPEN/CLOSE
    width: int = 0  # UTF-16 units of `text`
    space: bool = False  # a CHAR that is whitespace


def _char(source: str, text: str) -> _Atom:
    return _Atom(_Kind.CHAR, source, text, width=_utf16(text), space=text.isspace())


class _Chars(dict[str, _Atom]):
    """The atom of each plain character, made once: atoms are immutable, so one instance can
    stand for every occurrence (a 64 KiB digest is 64 Ki atoms; building each anew was most of
    the time of splitting it)."""

    def __missing__(self, ch: str) -> _Atom:
        if len(self) >= _CHARS_KEPT:  # bounded, whatever alphabets come through
            self.clear()
        atom = self[ch] = _char(ch, ch)
        return atom


_CHARS = _Chars()
_CHARS_KEPT = 4096  # distinct characters remembered; beyond that the cache starts afresh


_TOKEN = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*+)(?:\s[^<>]*+|/)?>"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
    r"|[^<&]+"
    r"|[<&]"
)
# A lone `<` or `&` is not valid Telegram HTML; re-spell it rather than pass it on.
_LONE = {"<": "&lt;", "&": "&amp;"}


def _utf16(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _atoms(source: str) -> list[_Atom]:
    atoms: list[_Atom] = []
    for match in _TOKEN.finditer(source):
        token = match.group(0)
        if match.group(2):
            name = match.group(2).lower()
            if match.group(1):
                atoms.append(_Atom(_Kind.CLOSE, token, name=name))
            elif token.endswith("/>"):
                atoms.append(_Atom(_Kind.EMPTY, token, name=name))
            else:
                atoms.append(_Atom(_Kind.OPEN, token, name=name))
        elif token in _LONE:
            atoms.append(_char(_LONE[token], token))
        elif token.startswith("&"):
            atoms.append(_char(token, html.unescape(token)))
        else:
            atoms.extend(map(_CHARS.__getitem__, token))
    return atoms


def visible_text(source: str) -> str:
    """The text Telegram shows for `source`: tags removed, entities decoded."""
    return "".join(a.text for a in _atoms(source))


def visible_length(source: str) -> int:
    """Length of `source` as Telegram counts it: UTF-16 code units after entity parsing."""
    return _utf16(visible_text(source))


# --- splitting ------------------------------------------------------------------------------------


def _strip(atoms: list[_Atom]) -> list[_Atom]:
    """Drop whitespace before the first and after the last visible character (Telegram does)."""
    visible = [i for i, a in enumerate(atoms) if a.kind is _Kind.CHAR and not a.space]
    if not visible:
        return [a for a in atoms if a.kind is not _Kind.CHAR]
    first, last = visible[0], visible[-1]
    return [a for i, a in enumerate(atoms) if first <= i <= last or a.kind is not _Kind.CHAR]


def _glued(before: str, after: str) -> bool:
    """Would a cut between these two characters break a grapheme (emoji sequence, accent)?"""
    before, after = before[-1], after[0]  # an entity may decode to more than one character
    code = ord(after)
    return (
        before == "\u200d"
        or after in "\u200d\ufe0e\ufe0f"
        or unicodedata.category(after) in ("Mn", "Mc", "Me")
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


@dataclass(frozen=True)
class _Cut:
    """A part holds atoms[start:end] plus the tags (not the spaces) in atoms[end:resume].

    The next part starts at `resume`; the whitespace between is the break that was cut at.
    """

    end: int
    resume: int


class _Splitter:
    def __init__(self, atoms: list[_Atom]) -> None:
        self.atoms = atoms
        # widths[k]: UTF-16 width of atoms[:k]
        self.widths = list(itertools.accumulate((a.width for a in atoms), initial=0))

    def cuts(self, budget: int, last_budget: int) -> list[_Cut]:
        widths, total = self.widths, len(self.atoms)
        cuts: list[_Cut] = []
        start = 0
        while True:
            remaining = widths[total] - widths[start]
            if remaining <= last_budget:
                cuts.append(_Cut(total, total))
                return cuts
            # What is left fits a part but not with the suffix: cut so that something is left.
            cap = budget if remaining > budget else remaining - 1
            fits = bisect.bisect_right(widths, widths[start] + cap) - 1  # atoms[start:fits] fit
            cut = self._boundary(start, fits) or self._hard_cut(start, fits)
            cuts.append(cut)
            start = cut.resume

    def _boundary(self, start: int, fits: int) -> _Cut | None:
        """The best paragraph/line/word break whose text before it fits, or None."""
        atoms = self.atoms
        best: list[_Cut | None] = [None, None, None]  # by rank: space, line, paragraph
        seen_text = False
        i = start
        while i <= fits and i < len(atoms):
            atom = atoms[i]
            if not atom.space:
                seen_text = seen_text or atom.kind is _Kind.CHAR
                i += 1
                continue
            gap_start, newlines, after_newline, last_space = i, 0, -1, i
            while i < len(atoms) and (atoms[i].space or atoms[i].kind is not _Kind.CHAR):
                if atoms[i].space:
                    last_space = i
                    if atoms[i].text == "\n":
                        newlines += 1
                        after_newline = i + 1
                i += 1
            if seen_text and last_space + 1 < len(atoms):
                rank = min(newlines, 2)
                # After a line break keep the next line's indentation; after a space drop all.
                resume = after_newline if rank else last_space + 1
                best[rank] = _Cut(gap_start, resume)
        return best[2] or best[1] or best[0]

    def _hard_cut(self, start: int, fits: int) -> _Cut:
        """Cut mid-word, as late as fits, but not inside a grapheme."""
        atoms = self.atoms
        chars = [i for i in range(start, min(fits, len(atoms))) if atoms[i].kind is _Kind.CHAR]
        if not chars:
            raise ValueError("limit too small to hold a single character")
        following = self._next_char(chars[-1] + 1)
        for index in range(len(chars) - 1, 0, -1):
            if following is None or not _glued(atoms[chars[index]].text, following):
                return _Cut(chars[index] + 1, chars[index] + 1)
            following = atoms[chars[index]].text
        # One grapheme longer than a whole part: nothing to do but break it.
        return _Cut(chars[-1] + 1, chars[-1] + 1)

    def _next_char(self, index: int) -> str | None:
        for atom in self.atoms[index : index + 64]:  # only tags can come between; few of them
            if atom.kind is _Kind.CHAR:
                return atom.text
        return None


def _emit(atoms: list[_Atom], stack: list[_Atom], cut_from: int, cut: _Cut) -> list[_Atom]:
    """One part's atoms: reopened tags, its content, closing tags. Updates `stack` in place."""
    out = list(stack)
    for index in range(cut_from, cut.resume):
        atom = atoms[index]
        if atom.kind is _Kind.CHAR:
            if index < cut.end:
                out.append(atom)
        elif atom.kind is _Kind.OPEN:
            stack.append(atom)
            out.append(atom)
        elif atom.kind is _Kind.CLOSE:
            names = [a.name for a in stack]
            if atom.name not in names:
                continue  # stray closing tag: dropping it keeps the part valid
            depth = len(names) - 1 - names[::-1].index(atom.name)
            while len(stack) > depth:
                out.append(_close(stack.pop()))
        else:
            out.append(atom)
    out.extend(_close(a) for a in reversed(stack))
    return _drop_empty(out)


def _close(opening: _Atom) -> _Atom:
    return _Atom(_Kind.CLOSE, f"</{opening.name}>", name=opening.name)


def _drop_empty(atoms: list[_Atom]) -> list[_Atom]:
    """Remove elements with nothing inside (`<b></b>`), which cuts between tags leave behind."""
    out: list[_Atom] = []
    for atom in atoms:
        if atom.kind is _Kind.CLOSE and out and out[-1].kind is _Kind.OPEN:
            out.pop()
        else:
            out.append(atom)
    return out


def _source(atoms: list[_Atom]) -> str:
    return "".join(a.source for a in atoms)


def split_html(source: str, limit: int = TELEGRAM_LIMIT, *, suffix: str = "") -> list[str]:
    """Split Telegram HTML into messages of at most `limit` visible UTF-16 units each.

    `suffix` (HTML, e.g. the hashtag block) is appended to the last part. Leading and trailing
    whitespace is dropped, as Telegram would. An empty body gives just the stripped suffix (or
    no part at all). See the module docstring for where cuts fall and how parts are numbered.
    """
    atoms = _strip(_atoms(source))
    splitter = _Splitter(atoms)
    total = splitter.widths[-1]
    if total == 0:
        rest = _source(_drop_empty(_strip(_atoms(suffix))))
        return [rest] if rest else []
    suffix_width = visible_length(suffix)
    if total + suffix_width <= limit:
        return [_source(_drop_empty(atoms)) + suffix]
    # Start from the fewest digits the part count can need (each part holds at most `limit`).
    digits = len(str(-(-total // limit)))
    while True:
        # "(n/n) " with n as wide as the part count allows; retried if there are more parts.
        budget = limit - (2 * digits + 4)
        if budget - suffix_width < 2:
            raise ValueError(f"limit {limit} leaves no room for text next to the suffix")
        cuts = splitter.cuts(budget, budget - suffix_width)
        if len(cuts) < 10**digits:
            break
        digits += 1
    parts: list[str] = []
    stack: list[_Atom] = []
    start = 0
    for number, cut in enumerate(cuts, 1):
        content = _source(_emit(atoms, stack, start, cut))
        parts.append(f"({number}/{len(cuts)}) {content}")
        start = cut.resume
    parts[-1] += suffix
    return parts
