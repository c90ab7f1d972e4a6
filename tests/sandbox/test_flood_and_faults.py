"""Flood control (429 with retry_after, deterministic clock) and fault injection."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter, TelegramServerError

from sandbox.client import SandboxClient
from tests.sandbox.conftest import FakeClock, Scene


async def test_flood_control_is_off_by_default(bot: Bot, scene: Scene) -> None:
    for i in range(5):
        await bot.send_message(scene.user_id, f"#{i}")


async def test_private_chat_limit_answers_429_with_retry_after(
    bot: Bot, control: SandboxClient, scene: Scene, fake_clock: FakeClock
) -> None:
    settings = await control.set_flood(enabled=True, private_chat_per_second=1)
    assert settings.enabled
    assert settings.private_chat_per_second == 1
    await bot.send_message(scene.user_id, "first")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(scene.user_id, "second")
    assert raised.value.retry_after >= 1
    assert "Too Many Requests: retry after" in raised.value.message
    fake_clock.advance(raised.value.retry_after)
    await bot.send_message(scene.user_id, "second, later")
    calls = [c for c in await control.get_calls() if c.method == "sendMessage"]
    assert [c.status for c in calls] == [200, 429, 200]


async def test_group_limit_per_minute(
    bot: Bot, control: SandboxClient, scene: Scene, fake_clock: FakeClock
) -> None:
    await control.set_flood(enabled=True, group_per_minute=2)
    await bot.send_message(scene.group_id, "1")
    fake_clock.advance(10)
    await bot.send_message(scene.group_id, "2")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(scene.group_id, "3")
    assert raised.value.retry_after == 50
    await bot.send_message(scene.user_id, "private chats have their own limit")
    await control.advance_clock(50)
    await bot.send_message(scene.group_id, "3")
    await control.set_flood(enabled=False)
    await bot.send_message(scene.group_id, "4")


async def test_fault_fails_a_method_n_times(bot: Bot, control: SandboxClient, scene: Scene) -> None:
    rules = await control.add_fault(
        "sendMessage", error_code=502, description="Bad Gateway", times=2
    )
    assert rules[0].times == 2
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Bad Gateway"):
            await bot.send_message(scene.user_id, "x")
    await bot.send_message(scene.user_id, "third time lucky")
    await bot.get_me()  # other methods were never affected


async def test_fault_with_retry_after_and_clear(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.add_fault(
        "*", error_code=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.get_me()
    assert raised.value.retry_after == 7
    await control.clear_faults()
    await bot.get_me()


async def test_fractional_faults_are_deterministic(bot: Bot, control: SandboxClient) -> None:
    async def outcomes() -> list[bool]:
        results = []
        for _ in range(20):
            try:
                await bot.get_me()
                results.append(True)
            except TelegramServerError:
                results.append(False)
        return results

    await control.add_fault(
        "getMe", error_code=500, description="Internal Server Error", probability=0.5, seed=7
    )
    first = await outcomes()
    await control.clear_faults()
    await control.add_fault(
        "getMe", error_code=500, description="Internal Server Error", probability=0.5, seed=7
    )
    assert await outcomes() == first
    assert 0 < first.count(False) < 20


async def test_global_limit_spans_chats(
    bot: Bot, control: SandboxClient, scene: Scene, fake_clock: FakeClock
) -> None:
    await control.set_flood(enabled=True, global_per_second=2, private_chat_per_second=10)
    await bot.send_message(scene.user_id, "1")
    await bot.send_message(scene.group_id, "2")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(scene.user_id, "3")
    assert raised.value.retry_after == 1
    fake_clock.advance(1)
    await bot.send_message(scene.user_id, "3")
