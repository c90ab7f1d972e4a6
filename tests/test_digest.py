"""The digest composer: header, previews, merged hashtags; and its split by the usual rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.digest import (
    PREVIEW_LINE_CHARS,
    UNREADABLE,
    DigestItem,
    compose_digest,
    merged_hashtags,
    preview,
)
from gateway.outbox_payload import OutboxPayload
from gateway.rendering import TELEGRAM_LIMIT, render_message, visible_length, visible_text
from storage.enums import Category

TOKYO = ZoneInfo("Asia/Tokyo")
NIGHT = datetime(2026, 11, 24, 13, 14, tzinfo=UTC)  # 22:14 in Tokyo


def item(
    value: object = "hello",
    *,
    kind: str = "text",
    minutes: int = 0,
    category: Category = Category.SYSTEM,
    hashtags: tuple[str, ...] = (),
    thread_id: int | None = None,
) -> DigestItem:
    payload = OutboxPayload.from_dict(
        {"kind": kind, "value": value, "hashtags": list(hashtags), "thread_id": thread_id}
    )
    return DigestItem(NIGHT + timedelta(minutes=minutes), category, payload)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("text", "one line", "one line"),
        ("text", "a\n\n\nb\nc\nd\ne", "a\nb\nc\n…"),
        ("text", "  padded  \n", "padded"),
        ("markdown", "**Build** failed\n\n- step 3", "Build failed\n• step 3"),
        ("html", "<b>Disk</b> &lt;90%&gt; full", "Disk <90%> full"),
        ("json_data", {"a": 1}, '{\n"a": 1\n}'),
        ("text", "x" * 500, "x" * (PREVIEW_LINE_CHARS - 1) + "…"),
        ("text", 42, UNREADABLE),  # a text payload that is not a string
        ("text", "   \n  ", "(empty)"),
    ],
)
def test_preview_shows_the_first_lines_as_plain_text(
    kind: str, value: object, expected: str
) -> None:
    assert preview(item(value, kind=kind).payload) == expected


@pytest.mark.parametrize(
    ("items", "expected_span"),
    [
        ([item(minutes=0), item(minutes=90)], "22:14–23:44 (Asia/Tokyo)"),
        ([item(minutes=0), item(minutes=0)], "22:14 (Asia/Tokyo)"),
        ([item(minutes=0), item(minutes=600)], "24 Nov 22:14 – 25 Nov 08:14 (Asia/Tokyo)"),
    ],
)
def test_header_gives_count_and_local_time_span(
    items: list[DigestItem], expected_span: str
) -> None:
    digest = compose_digest(items, TOKYO)
    header = str(digest.value).split("\n\n")[0]
    assert f"Digest: {len(items)} messages</b> held during quiet hours, {expected_span}" in header


def test_entries_are_oldest_first_with_local_times_and_escaped() -> None:
    digest = compose_digest(
        [item("second <b>", minutes=30), item("first & foremost", minutes=0)], TOKYO
    )
    entries = str(digest.value).split("\n\n")[1:]
    assert entries == ["<b>22:14</b> first &amp; foremost", "<b>22:44</b> second &lt;b&gt;"]
    assert digest.kind == "html"
    assert digest.silent is False
    assert digest.disable_preview is True


@pytest.mark.parametrize(
    ("items", "category", "expected"),
    [
        (
            [item(hashtags=("deploy",)), item(hashtags=("deploy", "ci"))],
            Category.SYSTEM,
            ("deploy", "ci"),
        ),
        ([item(), item()], Category.SYSTEM, ()),
        # Another category's message in the same topic brings its category tags along.
        (
            [item(), item(category=Category.AUTH, hashtags=("login",))],
            Category.SYSTEM,
            ("#auth", "#security", "login"),
        ),
    ],
)
def test_hashtags_are_merged_in_first_seen_order(
    items: list[DigestItem], category: Category, expected: tuple[str, ...]
) -> None:
    assert merged_hashtags(items, category) == expected


def test_digest_goes_to_the_first_messages_topic() -> None:
    digest = compose_digest([item(thread_id=7), item(thread_id=7, minutes=1)], TOKYO)
    assert digest.thread_id == 7


def test_empty_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        compose_digest([], TOKYO)


def test_a_large_digest_splits_by_the_4096_rule_with_hashtags_on_the_last_part() -> None:
    items = [item(f"alert {n}: " + "y" * 150, minutes=n, hashtags=(f"host{n}",)) for n in range(80)]
    digest = compose_digest(items, TOKYO)
    parts = render_message(digest.kind, digest.value, "system", digest.hashtags)
    assert len(parts) > 1
    assert all(visible_length(part) <= TELEGRAM_LIMIT for part in parts)
    shown = "".join(visible_text(part) for part in parts)
    assert all(f"alert {n}:" in shown for n in range(80))
    assert "#system" in visible_text(parts[-1])
    assert "#host79" in visible_text(parts[-1])
    assert "#system" not in visible_text(parts[0])
