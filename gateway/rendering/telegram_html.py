"""From a message's content to the Telegram HTML messages that carry it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, get_args

from gateway.rendering.escape import escape_text
from gateway.rendering.hashtags import hashtag_line
from gateway.rendering.markdown import markdown_to_html
from gateway.rendering.sanitize import sanitize_html
from gateway.rendering.split import TELEGRAM_LIMIT, split_html

ContentKind = Literal["text", "markdown", "html", "json_data"]
CONTENT_KINDS: tuple[ContentKind, ...] = get_args(ContentKind)


def render_body(kind: ContentKind, value: object) -> str:
    """The message body as Telegram HTML (parse_mode=HTML).

    `text`, `markdown` and `html` take a str; `json_data` takes any JSON value and shows it
    pretty-printed in a json code block, keys in the order given. Raises TypeError for a value
    of the wrong type (or not JSON-serialisable) and ValueError for an unknown kind.
    """
    if kind == "json_data":
        # allow_nan=False: NaN/Infinity are not JSON, so refuse them rather than print them.
        try:
            pretty = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
        except ValueError as exc:
            raise TypeError(f"json_data is not valid JSON: {exc}") from None
        return f'<pre><code class="language-json">{escape_text(pretty)}</code></pre>'
    if kind not in CONTENT_KINDS:
        raise ValueError(f"unknown content kind {kind!r}")
    if not isinstance(value, str):
        raise TypeError(f"{kind} content must be a string, not {type(value).__name__}")
    if kind == "text":
        return escape_text(value)
    if kind == "markdown":
        return markdown_to_html(value)
    return sanitize_html(value)


def render_message(
    kind: ContentKind,
    value: object,
    category: str,
    hashtags: Sequence[str] = (),
    limit: int = TELEGRAM_LIMIT,
) -> list[str]:
    """The Telegram HTML messages to send, in order: body, a blank line, then the hashtags.

    A long body is split into numbered parts (`(1/3) ` ...) and the hashtags go on the last one.
    The hashtag line is kept to a quarter of `limit` (requested tags beyond that are dropped).
    """
    line = hashtag_line(category, hashtags, max_length=limit // 4)
    return split_html(render_body(kind, value), limit, suffix="\n\n" + line)
