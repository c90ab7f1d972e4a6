from __future__ import annotations

import random
import re

import pytest

from gateway.rendering import render_message, split, split_html, visible_length, visible_text
from tests.rendering import telegram_text, utf16_len

PREFIX = re.compile(r"\((\d+)/(\d+)\) ")


def body_texts(parts: list[str], suffix: str) -> list[str]:
    """Check what every part must satisfy; return each part's visible text, minus the
    numbering and the suffix."""
    assert parts
    assert parts[-1].endswith(suffix)
    texts: list[str] = []
    for number, part in enumerate(parts, 1):
        if len(parts) > 1:
            match = PREFIX.match(part)
            assert match, part[:40]
            assert (int(match.group(1)), int(match.group(2))) == (number, len(parts))
            part = part[match.end() :]
        else:
            assert not PREFIX.match(part)
        if number == len(parts) and suffix:
            part = part.removesuffix(suffix)
        texts.append(visible_text(part))
    return texts


def check_split(source: str, limit: int, suffix: str = "") -> list[str]:
    parts = split_html(source, limit, suffix=suffix)
    for part in parts:
        # Parses as Telegram HTML (tags balanced, nothing cut in half) and fits the limit.
        telegram_text(part, limit)
        assert visible_length(part) <= limit
    texts = body_texts(parts, suffix)
    # Nothing lost, duplicated or reordered; only whitespace at the cuts may go.
    assert re.sub(r"\s", "", "".join(texts)) == re.sub(r"\s", "", visible_text(source))
    return parts


@pytest.mark.parametrize(
    ("source", "length"),
    [
        ("", 0),
        ("abc", 3),
        ("&lt;Firefox&gt;", 9),
        ("&amp;&quot;", 2),
        ("<b>bold</b> <i>it</i>", 7),
        ('<a href="https://example.com/very/long/url">link</a>', 4),
        ('<pre><code class="language-python">x = 1</code></pre>', 5),
        ("é", 1),
        ("🔐", 2),
        ("&#x1F510;&#128272;", 4),
        ("👨\u200d👩\u200d👧", 8),
        ("日本語", 3),
        ("&unknown; stays", 15),
    ],
)
def test_visible_length(source: str, length: int) -> None:
    assert visible_length(source) == length
    if source:
        assert utf16_len(telegram_text(source)) == length


@pytest.mark.parametrize(
    ("source", "limit", "parts"),
    [
        # fits: one part, no numbering
        ("short", 20, ["short"]),
        ("  padded\n\n", 20, ["padded"]),
        ("x" * 20, 20, ["x" * 20]),
        # a paragraph break wins over a line break, which wins over a space
        (
            "aaaa bbbb\ncccc dddd\n\neeee ffff",
            26,
            ["(1/2) aaaa bbbb\ncccc dddd", "(2/2) eeee ffff"],
        ),
        (
            "aaaa bbbb\ncccc dddd\n\neeee ffff",
            20,
            ["(1/3) aaaa bbbb", "(2/3) cccc dddd", "(3/3) eeee ffff"],
        ),
        ("aaaa bbbb cccc dddd", 16, ["(1/2) aaaa bbbb", "(2/2) cccc dddd"]),
        # no break at all: cut mid-word, as late as fits
        (
            "abcdefghijklmnopqrstuvwxyz",
            16,
            ["(1/3) abcdefghij", "(2/3) klmnopqrst", "(3/3) uvwxyz"],
        ),
        # entities are never cut
        ("&amp;" * 20, 16, ["(1/2) " + "&amp;" * 10, "(2/2) " + "&amp;" * 10]),
        # open elements are closed at the cut and reopened after it
        (
            "<b>bold <i>it words here</i> tail</b>",
            16,
            ["(1/3) <b>bold <i>it</i></b>", "(2/3) <b><i>words here</i></b>", "(3/3) <b>tail</b>"],
        ),
        (
            '<a href="https://x.org/?a=1&amp;b=2">link text here more</a>',
            16,
            [
                '(1/2) <a href="https://x.org/?a=1&amp;b=2">link text</a>',
                '(2/2) <a href="https://x.org/?a=1&amp;b=2">here more</a>',
            ],
        ),
        # code keeps the indentation after a line break
        (
            '<pre><code class="language-py">if x:\n    y()\nz()</code></pre>',
            16,
            [
                '(1/3) <pre><code class="language-py">if x:</code></pre>',
                '(2/3) <pre><code class="language-py">    y()</code></pre>',
                '(3/3) <pre><code class="language-py">z()</code></pre>',
            ],
        ),
        # a cut next to a tag leaves no empty element behind
        (
            "<b>aaaaaaaa</b>\n\n<i>bbbbbbbb</i>",
            16,
            ["(1/2) <b>aaaaaaaa</b>", "(2/2) <i>bbbbbbbb</i>"],
        ),
        # an emoji sequence is one grapheme: never split inside it
        ("👨\u200d👩\u200d👧" * 3, 20, [f"({i}/3) 👨\u200d👩\u200d👧" for i in (1, 2, 3)]),
    ],
)
def test_split_table(source: str, limit: int, parts: list[str]) -> None:
    assert check_split(source, limit) == parts


@pytest.mark.parametrize(
    ("source", "limit", "suffix", "parts"),
    [
        ("body", 30, "\n\n#auth #security", ["body\n\n#auth #security"]),
        # the suffix goes on the last part only, and counts in its budget
        (
            "aaaa bbbb cccc dddd",
            30,
            "\n\n#tag #tag2",
            ["(1/2) aaaa bbbb cccc", "(2/2) dddd\n\n#tag #tag2"],
        ),
        # the body alone would fit, the hashtags not: a second part
        ("aaaa bbbb ccccc", 20, "\n\n#tag", ["(1/2) aaaa bbbb", "(2/2) ccccc\n\n#tag"]),
        # empty body: just the hashtags
        ("", 30, "\n\n#general", ["#general"]),
        ("  <b> </b> ", 30, "\n\n#general", ["#general"]),
        ("", 30, "", []),
    ],
)
def test_split_with_suffix(source: str, limit: int, suffix: str, parts: list[str]) -> None:
    assert split_html(source, limit, suffix=suffix) == parts


def test_limit_too_small_for_the_suffix() -> None:
    with pytest.raises(ValueError, match="no room"):
        split_html("some text that is long", 12, suffix="\n\n#averylonghashtag")


def test_single_huge_word_is_hard_split() -> None:
    parts = check_split("x" * 10_000, 4096, suffix="\n\n#general")
    assert [visible_length(p) for p in parts] == [4096, 4096, 6 + 10_000 - 2 * 4090 + 10]
    assert parts[-1].endswith("x\n\n#general")


def test_long_bold_and_pre_blocks_are_reopened() -> None:
    bold = "<b>" + "word " * 2000 + "</b>"
    parts = check_split(bold, 4096)
    assert len(parts) == 3
    assert all(p.split(") ", 1)[1].startswith("<b>") and p.endswith("</b>") for p in parts)
    code = '<pre><code class="language-json">' + "{\n" * 5000 + "</code></pre>"
    parts = check_split(code, 4096)
    assert len(parts) == 3
    assert all('<pre><code class="language-json">' in p for p in parts)


def test_emoji_count_as_two_units() -> None:
    parts = check_split("🔐" * 3000, 4096)
    # 4090 units of budget after "(1/2) " hold 2045 emoji.
    assert [visible_text(p).count("🔐") for p in parts] == [2045, 955]
    assert [visible_length(p) for p in parts] == [4096, 6 + 2 * 955]


def test_many_parts_widen_the_numbering() -> None:
    parts = check_split("word " * 3000, 100, suffix="\n\n#tag")
    assert len(parts) >= 100
    assert parts[0].startswith(f"(1/{len(parts)}) ")
    assert parts[-1].startswith(f"({len(parts)}/{len(parts)}) ")
    assert all("#tag" not in p for p in parts[:-1])


def test_render_message_end_to_end() -> None:
    text = "\n\n".join(f"Line {i} <ok> & fine" for i in range(400))
    parts = render_message("text", text, "auth", ["login", "#Login"])
    assert len(parts) == 3
    for part in parts:
        telegram_text(part)
    assert parts[-1].endswith("\n\n#auth #security #login")
    assert all("#auth" not in p for p in parts[:-1])
    one = render_message("markdown", "**Login** from `1.2.3.4`", "auth", ["login"])
    assert one == ["<b>Login</b> from <code>1.2.3.4</code>\n\n#auth #security #login"]


def test_render_message_caps_the_hashtag_line() -> None:
    requested = [f"tag{i:03d}" for i in range(500)]
    [message] = render_message("text", "hi", "system", requested)
    line = message.split("\n\n", 1)[1]
    assert line.startswith("#system #tag000 #tag001")
    assert len(line) <= 4096 // 4
    telegram_text(message)


# --- generated inputs -----------------------------------------------------------------------------

WORDS = ["alpha", "beta", "x", "&amp;", "&lt;tag&gt;", "&quot;q&quot;", "🔐", "é", "naïve"]
WORDS += ["👨\u200d👩\u200d👧", "日本語", "a" * 40, "long" * 30]
SEPARATORS = [" "] * 6 + ["\n", "\n\n", "\n    "]
PLAIN = ["b", "i", "u", "s", "tg-spoiler", 'span class="tg-spoiler"']
LEAVES = ['a href="https://x.org/?a=1&amp;b=2"', "code", 'pre><code class="language-py"']


def _words(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(count))


def _close(tag: str) -> str:
    names = re.findall(r"(?:^|<)([\w-]+)", tag)
    return "".join(f"</{name}>" for name in reversed(names))


def random_html(rng: random.Random, depth: int = 0) -> str:
    out: list[str] = []
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.4 or depth >= 3:
            out.append(_words(rng, rng.randint(1, 40)))
        elif roll < 0.75:
            tag = rng.choice(PLAIN)
            out.append(f"<{tag}>{random_html(rng, depth + 1)}{_close(tag)}")
        elif roll < 0.9:
            tag = rng.choice(LEAVES)  # these hold plain text only
            out.append(f"<{tag}>{_words(rng, rng.randint(1, 60))}{_close(tag)}")
        else:
            out.append(f"<blockquote>{_words(rng, rng.randint(1, 30))}</blockquote>")
    return "".join(out)


@pytest.mark.parametrize("seed", range(60))
def test_generated_html_splits_cleanly(seed: int) -> None:
    rng = random.Random(seed)
    source = random_html(rng)
    telegram_text(source, limit=10**9)  # the generator itself makes valid HTML
    limit = rng.choice([64, 100, 257, 1000, 4096])
    suffix = rng.choice(["", "\n\n#general", "\n\n#auth #security #zzq_login"])
    check_split(source, limit, suffix)


@pytest.mark.parametrize("seed", range(20))
def test_generated_markdown_renders_and_splits(seed: int) -> None:
    rng = random.Random(1000 + seed)
    tokens = ["**", "*", "_", "__", "~~", "`", "```", "[", "](https://x.org)", "# ", "- ", "> "]
    tokens += ["<b>", "&", "word", " ", "\n", "\n\n", "🔐", "snake_case"]
    source = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 3000)))
    parts = render_message("markdown", source, "plugin", ["build"], limit=rng.choice([100, 4096]))
    for part in parts:
        telegram_text(part, 4096)
    assert parts[-1].endswith("#plugin #build")


def test_many_distinct_characters_keep_the_character_cache_bounded() -> None:
    # Every code point of a few scripts, more than the splitter remembers atoms for: the text
    # still splits whole, and what it remembers stays within its bound.
    source = " ".join(chr(c) for c in range(0x4E00, 0x4E00 + 3 * split._CHARS_KEPT))
    parts = split_html(source, 1000)
    assert len(split._CHARS) <= split._CHARS_KEPT
    assert "".join(body_texts(parts, "")).replace(" ", "") == source.replace(" ", "")
