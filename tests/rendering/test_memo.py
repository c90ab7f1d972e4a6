"""Rendered parts of long messages: kept by content, bounded in number and in time."""

from __future__ import annotations

import pytest
from aiogram import Bot

from gateway.channels import telegram
from gateway.channels.telegram import TelegramChannel
from gateway.outbox_payload import OutboxPayload
from gateway.rendering.memo import PartsMemo, render_key
from storage.enums import Category


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Renderer:
    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return list(self.parts)


def test_a_long_message_is_rendered_once_until_it_expires() -> None:
    clock = Clock()
    memo = PartsMemo(ttl_seconds=120, clock=clock)
    render = Renderer(["(1/2) a", "(2/2) b"])
    assert memo.parts(b"k", render) == ["(1/2) a", "(2/2) b"]
    clock.now += 119
    assert memo.parts(b"k", render) == ["(1/2) a", "(2/2) b"]
    assert render.calls == 1
    clock.now += 2  # 121 s after it was rendered
    assert memo.parts(b"k", render) == ["(1/2) a", "(2/2) b"]
    assert render.calls == 2


def test_a_message_of_one_part_is_not_kept() -> None:
    memo = PartsMemo(clock=Clock())
    render = Renderer(["short"])
    memo.parts(b"k", render)
    memo.parts(b"k", render)
    assert render.calls == 2
    assert len(memo) == 0


def test_the_oldest_entry_goes_beyond_the_bound() -> None:
    memo = PartsMemo(max_entries=2, clock=Clock())
    renders = {key: Renderer([f"{key!r} 1", f"{key!r} 2"]) for key in (b"a", b"b", b"c")}
    for key, render in renders.items():
        memo.parts(key, render)
    assert len(memo) == 2
    for key in (b"c", b"b", b"a"):  # the newest first: looking up a kept one evicts nothing
        memo.parts(key, renders[key])
    assert {key: r.calls for key, r in renders.items()} == {b"a": 2, b"b": 1, b"c": 1}


def test_what_the_caller_does_with_the_parts_does_not_change_what_is_kept() -> None:
    memo = PartsMemo(clock=Clock())
    memo.parts(b"k", Renderer(["1", "2"])).append("3")
    assert memo.parts(b"k", Renderer(["other"])) == ["1", "2"]


@pytest.mark.parametrize(
    "other",
    [
        ("html", "body", "system", ("#a",)),
        ("text", "body!", "system", ("#a",)),
        ("text", "body", "auth", ("#a",)),
        ("text", "body", "system", ("#b",)),
        ("text", "body", "system", ()),
        ("json_data", {"text": "body"}, "system", ("#a",)),
    ],
)
def test_the_key_tells_every_input_apart(other: tuple[str, object, str, tuple[str, ...]]) -> None:
    base = render_key("text", "body", "system", ("#a",))
    assert render_key("text", "body", "system", ["#a"]) == base
    assert render_key(*other) != base


@pytest.fixture
def calls() -> list[str]:
    """One entry per call of the renderer the Telegram channel uses."""
    return []


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> TelegramChannel:
    real = telegram.render_message

    def counting(*args: object, **kwargs: object) -> list[str]:
        calls.append("render")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(telegram, "render_message", counting)
    return TelegramChannel(Bot("123456:" + "A" * 35))


def test_the_telegram_channel_renders_a_long_message_once(
    channel: TelegramChannel, calls: list[str]
) -> None:
    long = OutboxPayload(kind="text", value="word " * 2000, hashtags=("#a",))
    first = channel.render(long, Category.SYSTEM)
    assert len(first) > 1
    assert channel.render(long, Category.SYSTEM) == first
    short = OutboxPayload(kind="text", value="word", hashtags=("#a",))
    channel.render(short, Category.SYSTEM)
    channel.render(short, Category.SYSTEM)
    assert calls == ["render"] * 3  # the long one once, the short one each time


def test_json_objects_with_their_keys_in_another_order_are_told_apart() -> None:
    # The renderer keeps an object's key order, so the parts differ and so must the keys.
    first = render_key("json_data", {"b": "x", "a": 1}, "system", ())
    assert render_key("json_data", {"a": 1, "b": "x"}, "system", ()) != first
    assert render_key("json_data", {"b": "x", "a": 1}, "system", ()) == first


def test_a_forgotten_message_is_rendered_anew() -> None:
    memo = PartsMemo(clock=Clock())
    render = Renderer(["1", "2"])
    memo.parts(b"k", render)
    memo.forget(b"k")
    memo.forget(b"never kept")
    memo.parts(b"k", render)
    assert render.calls == 2


def test_the_telegram_channel_forgets_a_settled_message(
    channel: TelegramChannel, calls: list[str]
) -> None:
    long = OutboxPayload(kind="text", value="word " * 2000)
    channel.render(long, Category.SYSTEM)
    channel.forget_rendered(long, Category.SYSTEM)
    channel.render(long, Category.SYSTEM)
    assert calls == ["render", "render"]


def test_expired_entries_go_when_swept_without_another_render() -> None:
    clock = Clock()
    memo = PartsMemo(ttl_seconds=120, clock=clock)
    memo.parts(b"old", Renderer(["1", "2"]))
    clock.now += 60
    memo.parts(b"new", Renderer(["3", "4"]))
    memo.forget_expired()
    assert len(memo) == 2
    clock.now += 61  # the first is 121 s old, the second 61 s
    memo.forget_expired()
    assert len(memo) == 1
    render = Renderer(["3", "4"])
    memo.parts(b"new", render)
    assert render.calls == 0


def test_clear_forgets_every_entry() -> None:
    memo = PartsMemo(clock=Clock())
    for key in (b"a", b"b"):
        memo.parts(key, Renderer(["1", "2"]))
    memo.clear()
    assert len(memo) == 0


def test_the_telegram_channel_forgets_all_it_rendered_on_request(
    channel: TelegramChannel, calls: list[str]
) -> None:
    long = OutboxPayload(kind="text", value="word " * 2000, hashtags=("#a",))
    channel.render(long, Category.SYSTEM)
    channel.forget_expired_renders()  # nothing is past its time yet
    channel.render(long, Category.SYSTEM)
    assert calls == ["render"]
    channel.forget_all_rendered()  # a message was erased
    channel.render(long, Category.SYSTEM)
    assert calls == ["render"] * 2


def test_parts_are_forgotten_with_any_message_they_were_rendered_for() -> None:
    memo = PartsMemo(clock=Clock())
    two = Renderer(["(1/2) a", "(2/2) b"])
    memo.parts(b"shared", two, "m1")
    memo.parts(b"shared", two, "m2")  # the same content for another message
    memo.parts(b"other", Renderer(["(1/2) c", "(2/2) d"]), "m3")
    memo.parts(b"short", Renderer(["short"]), "m4")  # one part: not kept
    assert two.calls == 1
    assert memo.owners() == {"m1", "m2", "m3"}

    memo.forget_owners({"m2", "unknown"})

    assert memo.owners() == {"m3"}
    memo.parts(b"shared", two, "m1")
    assert two.calls == 2  # rendered anew
