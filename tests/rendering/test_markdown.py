from __future__ import annotations

import pytest

from gateway.rendering import render_body
from tests.rendering import telegram_text

CASES = [
    # inline formatting
    ("**bold** and __bold__", "<b>bold</b> and <b>bold</b>"),
    ("*italic* and _italic_", "<i>italic</i> and <i>italic</i>"),
    ("***both***", "<b><i>both</i></b>"),
    ("~~gone~~", "<s>gone</s>"),
    ("*a **b** c*", "<i>a <b>b</b> c</i>"),
    ("**a *b* c**", "<b>a <i>b</i> c</b>"),
    ("run `rm -rf <dir>` now", "run <code>rm -rf &lt;dir&gt;</code> now"),
    ("``a ` b``", "<code>a ` b</code>"),
    ("`**not bold**`", "<code>**not bold**</code>"),
    ("**bold\nacross lines**", "<b>bold\nacross lines</b>"),
    # links
    (
        "[docs](https://example.com/a?b=1&c=2)",
        '<a href="https://example.com/a?b=1&amp;c=2">docs</a>',
    ),
    ("[me](tg://user?id=42)", '<a href="tg://user?id=42">me</a>'),
    ("[mail](mailto:ops@example.com)", '<a href="mailto:ops@example.com">mail</a>'),
    ("[wiki](https://w.org/A_(b))", '<a href="https://w.org/A_(b)">wiki</a>'),
    ('[t](https://x.org "title")', '<a href="https://x.org">t</a>'),
    ("[**bold link**](https://x.org)", '<a href="https://x.org"><b>bold link</b></a>'),
    ("![logo](https://x.org/l.png)", '<a href="https://x.org/l.png">logo</a>'),
    ("<https://x.org>", '<a href="https://x.org">https://x.org</a>'),
    ("[evil](javascript:alert(1))", "evil"),
    ("[file](file:///etc/passwd)", "file"),
    ("[rel](/path)", "rel"),
    # blocks
    ("# Title", "<b>Title</b>"),
    ("### Deep title ###", "<b>Deep title</b>"),
    ("#hashtag stays", "#hashtag stays"),
    ("- one\n* two\n+ three", "• one\n• two\n• three"),
    ("- **bold** item", "• <b>bold</b> item"),
    ("  - nested", "  • nested"),
    ("1. first\n2) second", "1. first\n2) second"),
    ("> quoted\n> **twice**", "<blockquote>quoted\n<b>twice</b></blockquote>"),
    ("> outer\n>> inner", "<blockquote>outer\ninner</blockquote>"),
    ("```\nplain <code>\n```", "<pre>plain &lt;code&gt;</pre>"),
    (
        "```python\nif a < b:\n    print('*x*')\n```",
        "<pre><code class=\"language-python\">if a &lt; b:\n    print('*x*')</code></pre>",
    ),
    ("~~~sh\nls\n~~~", '<pre><code class="language-sh">ls</code></pre>'),
    ("para 1\n\npara 2", "para 1\n\npara 2"),
    ("---", "---"),
    # everything else is text, escaped
    ("<b>raw html</b> & co", "&lt;b&gt;raw html&lt;/b&gt; &amp; co"),
    ('say "hi"', "say &quot;hi&quot;"),
    # malformed: markers without a partner are literal
    ("**unclosed bold", "**unclosed bold"),
    ("*unclosed italic", "*unclosed italic"),
    ("**mismatched*", "**mismatched*"),
    ("~single~", "~single~"),
    ("`unclosed code", "`unclosed code"),
    ("[no url]", "[no url]"),
    ("[broken](https://x.org", "[broken](https://x.org"),
    ("2 * 3 * 4", "2 * 3 * 4"),
    ("snake_case_name and __init__.py", "snake_case_name and <b>init</b>.py"),
    ("file_a_b.txt", "file_a_b.txt"),
    (r"\*escaped\* \_too\_", "*escaped* _too_"),
    ("** spaced **", "** spaced **"),
    ("```\nnever closed\n**x**", "<pre>never closed\n**x**</pre>"),
    ("- ", "- "),
    ("", ""),
]


@pytest.mark.parametrize(("markdown", "html"), CASES)
def test_markdown(markdown: str, html: str) -> None:
    assert render_body("markdown", markdown) == html


@pytest.mark.parametrize(
    "markdown",
    [md for md, _ in CASES if md.strip()]
    + [
        "*a _b* c_",
        "**a [b** c](https://x.org)",
        "`a **b` c**",
        "[a `b](https://x.org)` c",
        "> ```\n> code\n> ```",
        "```\n> not a quote\n```",
        "***",
        "_*_*_*",
        "[[[[x]]]]((((",
        "**[x](https://x.org)**[y](javascript:z)**",
        "a\r\nb\rc",
    ],
)
def test_markdown_output_always_parses(markdown: str) -> None:
    telegram_text(render_body("markdown", markdown))
