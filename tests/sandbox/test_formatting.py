"""parse_mode HTML / MarkdownV2 / Markdown, explicit entities and the length limit."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.errors import BotAPIError
from sandbox.formatting import (
    CAPTION_TOO_LONG,
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    FormattedText,
    check_message_length,
    parse_formatted,
    utf16_len,
)

PARSE = "Bad Request: can't parse entities: "


def ent(type_: str, offset: int, length: int, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "offset": offset, "length": length, **extra}


def fails(text: str, mode: str | None, entities: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(BotAPIError) as caught:
        parse_formatted(text, mode, entities)
    assert caught.value.error_code == 400
    return caught.value.description


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("abc", 3), ("é", 1), ("😀", 2), ("a😀b", 4), ("👍🏽", 4), ("日本", 2)],
)
def test_utf16_len(text: str, expected: int) -> None:
    assert utf16_len(text) == expected


# --------------------------------------------------------------------------- HTML

HTML_OK: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("plain", "plain", []),
    ("<b>bold</b>", "bold", [ent("bold", 0, 4)]),
    # The emoji is two UTF-16 units: bold starts at 3, not 2.
    ("😀 <b>bold</b>", "😀 bold", [ent("bold", 3, 4)]),
    (
        "<strong>s</strong><i>i</i><em>e</em>",
        "sie",
        [ent("bold", 0, 1), ent("italic", 1, 1), ent("italic", 2, 1)],
    ),
    ("<u>u</u><ins>n</ins>", "un", [ent("underline", 0, 1), ent("underline", 1, 1)]),
    (
        "<s>a</s><strike>b</strike><del>c</del>",
        "abc",
        [ent("strikethrough", 0, 1), ent("strikethrough", 1, 1), ent("strikethrough", 2, 1)],
    ),
    (
        '<span class="tg-spoiler">a</span><tg-spoiler>b</tg-spoiler>',
        "ab",
        [ent("spoiler", 0, 1), ent("spoiler", 1, 1)],
    ),
    ("<B>case</B>", "case", [ent("bold", 0, 4)]),
    ("<b>a<i>b</i></b>", "ab", [ent("bold", 0, 2), ent("italic", 1, 1)]),
    ("<b><i>x</i></b>", "x", [ent("bold", 0, 1), ent("italic", 0, 1)]),
    (
        '<a href="https://example.com/page">link</a>',
        "link",
        [ent("text_link", 0, 4, url="https://example.com/page")],
    ),
    (
        "<a href='https://example.com'>l</a>",
        "l",
        [ent("text_link", 0, 1, url="https://example.com/")],
    ),
    ('<a href="tg://user?id=42">Ada</a>', "Ada", [ent("text_link", 0, 3, url="tg://user?id=42")]),
    ('<a href="not a url">x</a>', "x", []),
    ("<code>x = 1</code>", "x = 1", [ent("code", 0, 5)]),
    ("<pre>block</pre>", "block", [ent("pre", 0, 5)]),
    (
        '<pre><code class="language-python">print(1)</code></pre>',
        "print(1)",
        [ent("pre", 0, 8, language="python")],
    ),
    ('<code class="language-python">x</code>', "x", [ent("code", 0, 1)]),
    ("<blockquote>q</blockquote>", "q", [ent("blockquote", 0, 1)]),
    ("<blockquote expandable>q</blockquote>", "q", [ent("expandable_blockquote", 0, 1)]),
    (
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "👍",
        [ent("custom_emoji", 0, 2, custom_emoji_id="5368324170671202286")],
    ),
    ("&lt;b&gt; &amp; &quot;q&quot;", '<b> & "q"', []),
    ("&#65;&#x42;&#x1F600;", "AB😀", []),
    # TDLib leaves unknown or malformed entities as literal text rather than failing.
    ("&foo; &amp &#xZZ;", "&foo; &amp &#xZZ;", []),
    ("a > b", "a > b", []),
    ("<b>x</>", "x", [ent("bold", 0, 1)]),
    ("<b >x</b >", "x", [ent("bold", 0, 1)]),
    ("<b></b>text", "text", []),
    # Surrounding whitespace is trimmed, entities clipped to match.
    ("\n <b> hi </b>\n", "hi", [ent("bold", 0, 2)]),
]


@pytest.mark.parametrize(("source", "text", "entities"), HTML_OK)
def test_html(source: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_formatted(source, "HTML") == FormattedText(text, tuple(entities))


@pytest.mark.parametrize("mode", ["HTML", "html", "Html"])
def test_parse_mode_is_case_insensitive(mode: str) -> None:
    assert parse_formatted("<b>x</b>", mode).entities == (ent("bold", 0, 1),)


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</i>", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        # Byte offsets are UTF-8: "é" is two bytes, "😀" four.
        ("é<b>x</i>", 'Unmatched end tag at byte offset 6, expected "</b>", found "</i>"'),
        ("😀 <b", "Unclosed start tag at byte offset 5"),
        ('<a href="x', "Unclosed start tag at byte offset 0"),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=x>y</a>", None),  # unquoted name token is fine
        ("<a href=x!>y</a>", "Unexpected end of name token at byte offset 8"),
        ("<tg-emoji>x</tg-emoji>", "Invalid custom emoji identifier specified at byte offset 0"),
    ],
)
def test_html_errors(source: str, detail: str | None) -> None:
    if detail is None:
        parse_formatted(source, "HTML")
    else:
        assert fails(source, "HTML") == PARSE + detail


# --------------------------------------------------------------------------- MarkdownV2

MDV2_OK: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("*bold*", "bold", [ent("bold", 0, 4)]),
    ("😀 *bold*", "😀 bold", [ent("bold", 3, 4)]),
    ("_it_ __u__", "it u", [ent("italic", 0, 2), ent("underline", 3, 1)]),
    ("~s~ ||sp||", "s sp", [ent("strikethrough", 0, 1), ent("spoiler", 2, 2)]),
    ("*b _i_*", "b i", [ent("bold", 0, 3), ent("italic", 2, 1)]),
    ("`x.y`", "x.y", [ent("code", 0, 3)]),
    ("```\nraw.text\n```", "raw.text", [ent("pre", 0, 8)]),
    ("```python\nprint(1)\n```", "print(1)", [ent("pre", 0, 8, language="python")]),
    (
        "[link](https://example.com/a_b)",
        "link",
        [ent("text_link", 0, 4, url="https://example.com/a_b")],
    ),
    ("[l](https://x.org/\\))", "l", [ent("text_link", 0, 1, url="https://x.org/)")]),
    (
        "![👍](tg://emoji?id=5368324170671202286)",
        "👍",
        [ent("custom_emoji", 0, 2, custom_emoji_id="5368324170671202286")],
    ),
    ("1\\. a\\-b \\*not bold\\*", "1. a-b *not bold*", []),
    ("end\\!", "end!", []),
    (">quote\n>more\nafter", "quote\nmore\nafter", [ent("blockquote", 0, 10)]),
    ("**>hidden\n>more||\nafter", "hidden\nmore\nafter", [ent("expandable_blockquote", 0, 11)]),
    ("", "", []),
]


@pytest.mark.parametrize(("source", "text", "entities"), [c for c in MDV2_OK if c[0]])
def test_markdown_v2(source: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_formatted(source, "MarkdownV2") == FormattedText(text, tuple(entities))


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("Hello.", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("a-b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("a|b", "Character '|' is reserved and must be escaped with the preceding '\\'"),
        ("wow!", "Character '!' is reserved and must be escaped with the preceding '\\'"),
        ("*b >", "Character '>' is reserved and must be escaped with the preceding '\\'"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("é _it", "Can't find end of Italic entity at byte offset 3"),
        ("__u", "Can't find end of Underline entity at byte offset 0"),
        ("~s", "Can't find end of Strikethrough entity at byte offset 0"),
        ("||s", "Can't find end of Spoiler entity at byte offset 0"),
        ("`c", "Can't find end of Code entity at byte offset 0"),
        ("```pre", "Can't find end of Pre entity at byte offset 0"),
        ("[text", "Can't find end of TextUrl entity at byte offset 0"),
        ("[x](https://x.org", "Can't find end of a URL at byte offset 4"),
        ("![x]", "Custom emoji entity must contain a tg://emoji URL"),
    ],
)
def test_markdown_v2_errors(source: str, detail: str) -> None:
    assert fails(source, "MarkdownV2") == PARSE + detail


# --------------------------------------------------------------------------- legacy Markdown


@pytest.mark.parametrize(
    ("source", "text", "entities"),
    [
        ("*bold* _it_", "bold it", [ent("bold", 0, 4), ent("italic", 5, 2)]),
        ("😀 *b*", "😀 b", [ent("bold", 3, 1)]),
        ("`code` ok.", "code ok.", [ent("code", 0, 4)]),
        ("```\nblock\n```", "block", [ent("pre", 0, 5)]),
        ("```go\nx\n```", "x", [ent("pre", 0, 1, language="go")]),
        ("[site](http://a.bc/x)", "site", [ent("text_link", 0, 4, url="http://a.bc/x")]),
        ("*no _nesting_*", "no _nesting_", [ent("bold", 0, 12)]),
        ("\\*literal\\* 1.5 - ok!", "*literal* 1.5 - ok!", []),
    ],
)
def test_markdown_legacy(source: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_formatted(source, "Markdown") == FormattedText(text, tuple(entities))


@pytest.mark.parametrize(
    ("source", "offset"),
    [("*bold", 0), ("x _it", 2), ("é `c", 3), ("[link", 0), ("```pre``", 0)],
)
def test_markdown_legacy_errors(source: str, offset: int) -> None:
    assert fails(source, "Markdown") == (
        PARSE + f"Can't find end of the entity starting at byte offset {offset}"
    )


# --------------------------------------------------------------------------- no parse mode


@pytest.mark.parametrize("mode", [None, "", "none", "None"])
def test_plain_text_keeps_entities(mode: str | None) -> None:
    given = [ent("bold", 3, 4), ent("text_link", 0, 2, url="https://x.org")]
    parsed = parse_formatted("😀 text", mode, given)
    assert parsed == FormattedText(
        "😀 text", (ent("text_link", 0, 2, url="https://x.org"), ent("bold", 3, 4))
    )


def test_entities_are_ignored_with_a_parse_mode() -> None:
    assert parse_formatted("<b>x</b>", "HTML", [ent("italic", 0, 1)]).entities == (
        ent("bold", 0, 1),
    )


@pytest.mark.parametrize(
    ("entities", "description"),
    [
        (
            [ent("bold", 0, 6)],
            "Bad Request: can't parse MessageEntity: entity is out of the text bounds",
        ),
        (
            [ent("bold", -1, 1)],
            "Bad Request: can't parse MessageEntity: entity is out of the text bounds",
        ),
        (
            [ent("shiny", 0, 1)],
            "Bad Request: can't parse MessageEntity: Unsupported type specified",
        ),
        (
            [{"type": "bold", "offset": 0}],
            "Bad Request: can't parse MessageEntity: Can't find field \"length\"",
        ),
        (
            [ent("text_link", 0, 1)],
            "Bad Request: can't parse MessageEntity: Can't find field \"url\"",
        ),
    ],
)
def test_explicit_entity_errors(entities: list[dict[str, Any]], description: str) -> None:
    assert fails("hello", None, entities) == description


# --------------------------------------------------------------------------- other errors


@pytest.mark.parametrize(
    ("text", "mode", "description"),
    [
        ("hi", "BBCode", "Bad Request: unsupported parse_mode"),
        ("", None, "Bad Request: message text is empty"),
        ("  \n ", None, "Bad Request: message text is empty"),
        ("<b> </b>", "HTML", "Bad Request: message text is empty"),
        ("*\\ *", "MarkdownV2", "Bad Request: message text is empty"),
    ],
)
def test_empty_and_unsupported(text: str, mode: str | None, description: str) -> None:
    assert fails(text, mode) == description


def test_empty_allowed_for_captions() -> None:
    assert parse_formatted("<b></b>", "HTML", allow_empty=True) == FormattedText("", ())


@pytest.mark.parametrize(
    ("source", "mode", "ok"),
    [
        ("x" * MAX_MESSAGE_LENGTH, None, True),
        ("x" * (MAX_MESSAGE_LENGTH + 1), None, False),
        # Markup does not count: 4096 characters inside <b> still fit.
        ("<b>" + "x" * MAX_MESSAGE_LENGTH + "</b>", "HTML", True),
        ("<b>" + "x" * (MAX_MESSAGE_LENGTH + 1) + "</b>", "HTML", False),
        ("*" + "x" * MAX_MESSAGE_LENGTH + "*", "MarkdownV2", True),
        # Emoji count as two UTF-16 units.
        ("😀" * (MAX_MESSAGE_LENGTH // 2), None, True),
        ("😀" * (MAX_MESSAGE_LENGTH // 2) + "x", None, False),
    ],
)
def test_message_length(source: str, mode: str | None, ok: bool) -> None:
    parsed = parse_formatted(source, mode)
    if ok:
        check_message_length(parsed)
    else:
        with pytest.raises(BotAPIError) as caught:
            check_message_length(parsed)
        assert caught.value.description == "Bad Request: message is too long"


@pytest.mark.parametrize(
    ("length", "ok"), [(MAX_CAPTION_LENGTH, True), (MAX_CAPTION_LENGTH + 1, False)]
)
def test_caption_length(length: int, ok: bool) -> None:
    parsed = parse_formatted("c" * length, None)
    if ok:
        check_message_length(parsed, MAX_CAPTION_LENGTH, CAPTION_TOO_LONG)
    else:
        with pytest.raises(BotAPIError) as caught:
            check_message_length(parsed, MAX_CAPTION_LENGTH, CAPTION_TOO_LONG)
        assert caught.value.description == "Bad Request: message caption is too long"
