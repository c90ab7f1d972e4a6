from __future__ import annotations

import pytest

from gateway.rendering import render_body
from tests.rendering import telegram_text

OPEN, CLOSE = '<pre><code class="language-json">', "</code></pre>"


@pytest.mark.parametrize(
    ("value", "inner"),
    [
        ({"b": 1, "a": 2}, "{\n  &quot;b&quot;: 1,\n  &quot;a&quot;: 2\n}"),
        ([1, "two", None, True], "[\n  1,\n  &quot;two&quot;,\n  null,\n  true\n]"),
        ({"nested": {"k": []}}, "{\n  &quot;nested&quot;: {\n    &quot;k&quot;: []\n  }\n}"),
        (
            {"html": "<script>&</script>"},
            "{\n  &quot;html&quot;: &quot;&lt;script&gt;&amp;&lt;/script&gt;&quot;\n}",
        ),
        ({"ключ": "значение 🔐"}, "{\n  &quot;ключ&quot;: &quot;значение 🔐&quot;\n}"),
        ("just a string", "&quot;just a string&quot;"),
        (42, "42"),
        (1.5, "1.5"),
        (None, "null"),
        ({}, "{}"),
    ],
)
def test_json_data(value: object, inner: str) -> None:
    html = render_body("json_data", value)
    assert html == OPEN + inner + CLOSE
    telegram_text(html)
