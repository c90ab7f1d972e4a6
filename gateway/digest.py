"""Composing a digest: several messages for one topic folded into one Telegram message.

Pure (no I/O, no clock): the releaser of quiet-hours messages decides what goes together and
delivers the result as an ordinary outbox payload, which the usual rendering splits at 4096.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.outbox_payload import OutboxPayload
from gateway.rendering import category_hashtags, render_body, visible_text
from storage.enums import Category

PREVIEW_LINES = 3  # of each message, after blank lines are dropped
PREVIEW_LINE_CHARS = 200
UNREADABLE = "(this message could not be shown)"


@dataclass(frozen=True)
class DigestItem:
    created_at: datetime  # aware
    category: Category
    payload: OutboxPayload


def preview(payload: OutboxPayload) -> str:
    """The first lines of a message as plain text, shortened with an ellipsis."""
    try:
        text = visible_text(render_body(payload.kind, payload.value))
    except (TypeError, ValueError):
        return UNREADABLE
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    shown = [
        line if len(line) <= PREVIEW_LINE_CHARS else line[: PREVIEW_LINE_CHARS - 1] + "…"
        for line in lines[:PREVIEW_LINES]
    ]
    if len(lines) > PREVIEW_LINES:
        shown.append("…")
    return "\n".join(shown) or "(empty)"


def full_entry(payload: OutboxPayload) -> str:
    """A message's whole body as Telegram HTML, for digests that must not shorten anything."""
    try:
        return render_body(payload.kind, payload.value)
    except (TypeError, ValueError):
        return html.escape(UNREADABLE)


def place(
    recipient_id: int,
    category: Category,
    thread_id: int | None,
    threads: Mapping[Category, int | None] | None,
) -> tuple[int, str]:
    """Where a message lands, as a key for grouping into digests: an explicit topic and the
    category's own topic are the same place when their thread ids agree. `threads` maps the
    person's categories to their topics (None: no personal log; a None thread: General)."""
    if thread_id is None and threads is not None and category in threads:
        thread_id = threads[category]
        if thread_id is None:
            return recipient_id, "general"
    if thread_id is not None:
        return recipient_id, f"thread:{thread_id}"
    return recipient_id, f"category:{category.value}"


def _span(first: datetime, last: datetime, zone: ZoneInfo) -> str:
    start, end = first.astimezone(zone), last.astimezone(zone)
    if start.date() == end.date():
        return f"{start:%H:%M}–{end:%H:%M}" if start != end else f"{start:%H:%M}"
    return f"{start:%d %b %H:%M} – {end:%d %b %H:%M}"


def merged_hashtags(items: Sequence[DigestItem], category: Category) -> tuple[str, ...]:
    """Every item's hashtags in first-seen order, with the category tags of items from other
    categories (the digest's own category adds its tags when rendered)."""
    tags: list[str] = []
    for item in items:
        if item.category is not category:
            tags.extend(category_hashtags(item.category.value))
        tags.extend(item.payload.hashtags)
    return tuple(dict.fromkeys(tags))


def compose_digest(
    items: Sequence[DigestItem],
    zone: ZoneInfo,
    *,
    why: str = "held during quiet hours",
    full: bool = False,
    silent: bool = False,
) -> OutboxPayload:
    """One HTML payload: a header with the count and time span, then each message's first
    lines with its local time, oldest first. All items go to the first item's topic.

    `full`: each message whole (with formatting) and its time to the second, for digests
    whose members are not shown anywhere else in full (bursts); rendering splits it at 4096.
    """
    if not items:
        raise ValueError("a digest needs at least one message")
    ordered = sorted(items, key=lambda item: item.created_at)
    first = ordered[0]
    header = (
        f"🗞 <b>Digest: {len(ordered)} messages</b> {html.escape(why)}, "
        f"{_span(first.created_at, ordered[-1].created_at, zone)} ({html.escape(zone.key)})"
    )
    clock = "%H:%M:%S" if full else "%H:%M"
    entries = [
        f"<b>{item.created_at.astimezone(zone).strftime(clock)}</b> "
        + (full_entry(item.payload) if full else html.escape(preview(item.payload)))
        for item in ordered
    ]
    return OutboxPayload(
        kind="html",
        value="\n\n".join([header, *entries]),
        hashtags=merged_hashtags(ordered, first.category),
        thread_id=first.payload.thread_id,
        disable_preview=True,
        silent=silent,
    )
