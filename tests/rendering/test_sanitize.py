from __future__ import annotations

import pytest

from gateway.rendering import render_body
from tests.rendering import telegram_text

CASES = [
    # allowed tags pass through
    (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em>",
        "<b>b</b><strong>s</strong><i>i</i><em>e</em>",
    ),
    (
        "<u>u</u><ins>i</ins><s>s</s><strike>k</strike><del>d</del>",
        "<u>u</u><ins>i</ins><s>s</s><strike>k</strike><del>d</del>",
    ),
    (
        '<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>',
        '<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>',
    ),
    ("<B>upper</B>", "<b>upper</b>"),
    ('<a href="https://x.org/?a=1&amp;b=2">l</a>', '<a href="https://x.org/?a=1&amp;b=2">l</a>'),
    ('<a href="tg://user?id=1">u</a>', '<a href="tg://user?id=1">u</a>'),
    ('<a href="mailto:a@b.org">m</a>', '<a href="mailto:a@b.org">m</a>'),
    ("<code>x &lt; y</code>", "<code>x &lt; y</code>"),
    (
        '<pre><code class="language-python">x</code></pre>',
        '<pre><code class="language-python">x</code></pre>',
    ),
    ("<pre>block</pre>", "<pre>block</pre>"),
    ("<blockquote>q</blockquote>", "<blockquote>q</blockquote>"),
    ("<blockquote expandable>q</blockquote>", "<blockquote expandable>q</blockquote>"),
    (
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
    ),
    # scripts and styles vanish with their content
    ("<script>alert(1)</script>hi", "hi"),
    ("a<style>b{color:red}</style>c", "ac"),
    ("<SCRIPT>x</SCRIPT>y", "y"),
    ("ok<script>never closed", "ok"),
    # unsafe or unknown links keep their text only
    ('<a href="javascript:alert(1)">x</a>', "x"),
    ('<a href=" JAVASCRIPT:alert(1)">x</a>', "x"),
    ('<a href="data:text/html,hi">x</a>', "x"),
    ("<a>no href</a>", "no href"),
    ('<a href="/relative">r</a>', "r"),
    # attributes other than the allowed ones are removed
    ('<b onclick="evil()" style="x">b</b>', "<b>b</b>"),
    (
        '<a href="https://x.org" onclick="evil()" target="_blank">l</a>',
        '<a href="https://x.org">l</a>',
    ),
    ('<span class="other">x</span>', "x"),
    ('<code class="language-py">inline</code>', "<code>inline</code>"),
    ('<pre><code class="evil">x</code></pre>', "<pre><code>x</code></pre>"),
    ('<tg-emoji emoji-id="abc">x</tg-emoji>', "x"),
    ("<blockquote cite='x'>q</blockquote>", "<blockquote>q</blockquote>"),
    # disallowed tags dropped, text kept; blocks become line breaks
    ("<font color=red>red</font> <img src=x alt=y>text", "red text"),
    ("a<br>b<br/>c", "a\nb\nc"),
    ("<p>one</p><p>two</p>", "one\ntwo"),
    ("<div>a</div>\n  <div>b</div>", "a\nb"),
    ("<ul>\n  <li>one</li>\n  <li><b>two</b></li>\n</ul>", "• one\n• <b>two</b>"),
    ("<h1>Title</h1>body", "Title\nbody"),
    ("<table><tr><td>a</td></tr><tr><td>b</td></tr></table>", "a\nb"),
    ("x<hr>y", "x\ny"),
    ("<!-- comment -->text<!DOCTYPE html>", "text"),
    # text is re-escaped
    ("5 &lt; 6 &amp;&amp; 7 &gt; 6", "5 &lt; 6 &amp;&amp; 7 &gt; 6"),
    ("&quot;q&quot; &#39;a&#39; &eacute; &#x1F510;", "&quot;q&quot; 'a' é 🔐"),
    ("a < b & c", "a &lt; b &amp; c"),
    ("<Firefox> is a tag here", " is a tag here"),
    # broken structure is repaired
    ("<b>unclosed", "<b>unclosed</b>"),
    ("<b><i>two unclosed", "<b><i>two unclosed</i></b>"),
    ("</b>stray", "stray"),
    ("x</i></b>", "x"),
    ("<b>a<i>b</b>c</i>", "<b>a<i>b</i></b>c"),
    ("<b", "&lt;b"),
    ('<a href="https://x.org', "&lt;a href=&quot;https://x.org"),
    # Telegram's nesting rules
    ("<pre>a<b>b</b></pre>", "<pre>ab</pre>"),
    ("<code><i>x</i></code>", "<code>x</code>"),
    ('<a href="https://x.org"><code>c</code></a>', '<a href="https://x.org">c</a>'),
    (
        '<a href="https://a.org">x<a href="https://b.org">y</a></a>',
        '<a href="https://a.org">xy</a>',
    ),
    ("<blockquote>a<blockquote>b</blockquote></blockquote>", "<blockquote>ab</blockquote>"),
    ("<blockquote><pre>x</pre></blockquote>", "<blockquote><pre>x</pre></blockquote>"),
    ("<b><i><u>deep</u></i></b>", "<b><i><u>deep</u></i></b>"),
    # a tag whose entity is already open is redundant
    ("<b>a<strong>b</strong>c</b>", "<b>abc</b>"),
    ("<i><b><em>x</em></b></i>", "<i><b>x</b></i>"),
    ('<tg-spoiler><span class="tg-spoiler">x</span></tg-spoiler>', "<tg-spoiler>x</tg-spoiler>"),
    # markup that never completes is text
    ("a <b c", "a &lt;b c"),
    ("x <!-- never closed", "x &lt;!-- never closed"),
    ("<!---->ok", "ok"),
    (
        '<pre><code class="language-js">a</code><code>b</code></pre>',
        '<pre><code class="language-js">a</code><code>b</code></pre>',
    ),
    ("", ""),
]


@pytest.mark.parametrize(("source", "html"), CASES)
def test_sanitize(source: str, html: str) -> None:
    assert render_body("html", source) == html


@pytest.mark.parametrize(
    "source",
    [s for s, _ in CASES if s.strip()]
    + [
        "<b><i>x</b></i>",
        "<<b>>",
        "<p><p><p>deep",
        "<pre><pre><code><code>x",
        "</p></div></li>",
        "<b>\n<ul><li>x</li></ul>\n</b>",
        '<a href="https://x.org"><b>x</a></b>',
        "<svg><script>x</script></svg>y",
    ],
)
def test_sanitized_html_always_parses(source: str) -> None:
    html = render_body("html", source)
    if html.strip():
        telegram_text(html)
