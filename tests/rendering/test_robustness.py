"""Hostile input: every renderer stays fast (no quadratic blow-up) and its output parses."""

from __future__ import annotations

import time

import pytest

from gateway.rendering import ContentKind, render_message
from tests.rendering import telegram_text

N = 50_000

HOSTILE: list[tuple[ContentKind, str]] = [
    ("markdown", "[" * N),
    ("markdown", "[a](" * (N // 4)),
    ("markdown", ("[a](x" + "y" * 100) * (N // 100)),
    ("markdown", "*a " * (N // 3)),
    ("markdown", "_a_" * (N // 3)),
    ("markdown", "".join("`" * (i % 50 + 1) + "a" for i in range(N // 25))),
    ("markdown", "# a" + " " * N + "b"),
    ("markdown", "```" + "a" * N + "`"),
    ("markdown", "<https://" * (N // 9)),
    ("markdown", "> " * N),
    ("markdown", "> x\n>> y\n" * (N // 8)),
    ("markdown", "- x\n" * (N // 4)),
    ("html", "<b>" * (N // 3)),
    ("html", "<a " * (N // 3)),
    ("html", "<!--" * (N // 4)),
    ("html", "<b><i><u>x" * (N // 10)),
    ("html", "</b>" * (N // 4)),
    ("html", "<div>" * (N // 5) + "</span>" * (N // 7)),
    ("text", "x" * N),
    ("text", "👨\u200d👩\u200d👧" * (N // 8)),
    ("text", "e\u0301" * N),
]


@pytest.mark.parametrize(("kind", "value"), HOSTILE, ids=lambda v: repr(v)[:24])
def test_hostile_input_is_fast_and_valid(kind: ContentKind, value: str) -> None:
    started = time.perf_counter()
    parts = render_message(kind, value, "general", ["x"])
    # Generous: it takes well under a second; quadratic behaviour would take minutes.
    assert time.perf_counter() - started < 10
    for part in parts:
        telegram_text(part)
    assert parts[-1].endswith("#general #x")
