from __future__ import annotations

import pytest

from gateway.rendering import render_body, safe_href
from tests.rendering import telegram_text


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("plain", "plain"),
        ("<Firefox>", "&lt;Firefox&gt;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ('say "hi"', "say &quot;hi&quot;"),
        ("it's", "it's"),
        ("&amp; stays literal", "&amp;amp; stays literal"),
        ("<b>not bold</b>", "&lt;b&gt;not bold&lt;/b&gt;"),
        ("**not markdown**", "**not markdown**"),
        ("line 1\nline 2", "line 1\nline 2"),
        ("emoji 🔐 ok", "emoji 🔐 ok"),
    ],
)
def test_text_is_escaped(text: str, html: str) -> None:
    assert render_body("text", text) == html
    assert telegram_text(html) == text.strip()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2"),
        ("http://example.com", "http://example.com"),
        ("  https://example.com  ", "https://example.com"),
        ("HTTPS://EXAMPLE.COM", "HTTPS://EXAMPLE.COM"),
        ("tg://user?id=42", "tg://user?id=42"),
        ("mailto:ops@example.com", "mailto:ops@example.com"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("file:///etc/passwd", None),
        ("ftp://example.com", None),
        ("/relative/path", None),
        ("example.com", None),
        ("https://exa mple.com", None),
        ("", None),
    ],
)
def test_safe_href(url: str, expected: str | None) -> None:
    assert safe_href(url) == expected


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("text", 42, TypeError),
        ("markdown", None, TypeError),
        ("html", b"<b>x</b>", TypeError),
        ("json_data", {1, 2}, TypeError),
        ("json_data", float("nan"), TypeError),
        ("xml", "<x/>", ValueError),
    ],
)
def test_render_body_rejects_bad_input(kind: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        render_body(kind, value)  # type: ignore[arg-type]
