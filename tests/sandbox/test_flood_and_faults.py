"""Flood control (429 with retry_after, deterministic clock) and fault injection."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError

from sandbox.client import SandboxClient, SandboxControlError
from sandbox.state import DEFAULT_BOT_TOKEN
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


async def _get_me_outcomes(bot: Bot, failure: type[Exception]) -> list[bool]:
    """Twenty getMe calls: which succeeded (a `failure` is False; anything else propagates)."""
    results = []
    for _ in range(20):
        try:
            await bot.get_me()
            results.append(True)
        except failure:
            results.append(False)
    return results


async def test_fractional_faults_are_deterministic(bot: Bot, control: SandboxClient) -> None:
    async def outcomes() -> list[bool]:
        return await _get_me_outcomes(bot, TelegramServerError)

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


# --- a 429 binds; every refusal is recorded ---------------------------------------------------


async def test_a_chat_told_to_wait_is_refused_until_retry_after_passed(
    bot: Bot, control: SandboxClient, scene: Scene, fake_clock: FakeClock
) -> None:
    await control.set_flood(enabled=True, group_per_minute=100)
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 3",
        retry_after=3, times=1,
    )  # fmt: skip
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(scene.group_id, "1")
    assert await control.flood_refusals() == []  # the fault's 429, not flood control's
    fake_clock.advance(1)
    await bot.send_message(scene.user_id, "other chats may send")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(scene.group_id, "too early")
    assert raised.value.retry_after == 2
    [refusal] = await control.flood_refusals()
    assert (refusal.chat_id, refusal.reason, refusal.retry_after) == (
        scene.group_id,
        "retry_after",
        2,
    )
    fake_clock.advance(2)
    await bot.send_message(scene.group_id, "in time")


async def test_refusals_record_a_full_window(
    bot: Bot, control: SandboxClient, scene: Scene, fake_clock: FakeClock
) -> None:
    await control.set_flood(enabled=True, private_chat_per_second=1)
    await bot.send_message(scene.user_id, "first")
    fake_clock.advance(0.5)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(scene.user_id, "second")
    [refusal] = await control.flood_refusals()
    assert (refusal.chat_id, refusal.reason, refusal.retry_after) == (scene.user_id, "limit", 1)
    # The window frees after half a second, but Telegram's retry_after (1 s) binds.
    fake_clock.advance(0.6)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(scene.user_id, "second")
    assert [r.reason for r in await control.flood_refusals()] == ["limit", "retry_after"]


async def test_a_429_binds_only_while_flood_control_is_on(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 9",
        retry_after=9, times=1,
    )  # fmt: skip
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(scene.user_id, "refused")
    await bot.send_message(scene.user_id, "off: nothing remembers the 429")
    assert await control.flood_refusals() == []


# --- timeouts and dropped connections ----------------------------------------------------------


async def post_send(
    http: aiohttp.ClientSession, base_url: str, chat_id: int, text: str, *, wait: float
) -> tuple[int, str]:
    """sendMessage without aiogram, waiting at most `wait` s: (status, description)."""
    async with http.post(
        f"{base_url}/bot{DEFAULT_BOT_TOKEN}/sendMessage",
        json={"chat_id": chat_id, "text": text},
        timeout=aiohttp.ClientTimeout(total=wait),
    ) as response:
        body = await response.json()
        return response.status, str(body.get("description", ""))


async def texts_of(control: SandboxClient, chat_id: int) -> list[str | None]:
    return [m.text for m in (await control.get_chat(chat_id)).bot_messages()]


async def test_a_timeout_after_the_send_took_effect(
    control: SandboxClient, scene: Scene, http: aiohttp.ClientSession, base_url: str
) -> None:
    await control.add_fault("sendMessage", kind="timeout", delay=20, times=1)
    with pytest.raises(TimeoutError):
        await post_send(http, base_url, scene.user_id, "sent, unanswered", wait=0.2)
    # Telegram took it: the message is there though the client heard nothing.
    assert await texts_of(control, scene.user_id) == ["sent, unanswered"]
    call = (await control.get_calls())[-1]
    assert (call.method, call.status) == ("sendMessage", 200)
    assert call.description == "answer withheld (timeout) after the call took effect"
    [rule] = await control.get_faults()
    assert (rule.kind, rule.takes_effect, rule.delay, rule.fired) == ("timeout", True, 20.0, 1)
    await control.clear_faults()  # answers the withheld call now
    assert await post_send(http, base_url, scene.user_id, "again", wait=5) == (200, "")


async def test_a_timeout_before_the_send_took_effect_answers_late(
    control: SandboxClient, scene: Scene, http: aiohttp.ClientSession, base_url: str
) -> None:
    await control.add_fault("sendMessage", kind="timeout", takes_effect=False, delay=0.3, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # A client patient enough gets the late answer; the message was never sent.
    status, description = await post_send(http, base_url, scene.user_id, "lost", wait=10)
    assert (status, description) == (504, "Gateway Timeout")
    assert loop.time() - started >= 0.3
    assert await texts_of(control, scene.user_id) == []
    call = (await control.get_calls())[-1]
    assert call.status == 504
    assert call.description == "answer withheld (timeout); the call was not carried out"


async def test_clearing_faults_releases_a_withheld_answer(
    control: SandboxClient, scene: Scene, http: aiohttp.ClientSession, base_url: str
) -> None:
    await control.add_fault("sendMessage", kind="timeout", delay=30)
    version = (await control.get_chat(scene.user_id)).version
    pending = asyncio.create_task(post_send(http, base_url, scene.user_id, "slow", wait=20))
    await control.wait_for_change(version, wait=5)
    assert not pending.done()
    await control.clear_faults()
    async with asyncio.timeout(5):  # not the 30 s of the rule
        assert await pending == (200, "")


async def test_a_dropped_connection_after_the_send_took_effect(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.add_fault("sendMessage", kind="disconnect", times=1)
    with pytest.raises(TelegramNetworkError, match="ServerDisconnectedError"):
        await bot.send_message(scene.user_id, "sent, connection dropped")
    assert await texts_of(control, scene.user_id) == ["sent, connection dropped"]
    await bot.send_message(scene.user_id, "the next one is answered")


async def test_a_dropped_connection_before_the_send_took_effect(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.add_fault("sendMessage", kind="disconnect", takes_effect=False, times=1)
    with pytest.raises(TelegramNetworkError, match="ServerDisconnectedError"):
        await bot.send_message(scene.user_id, "lost on the way")
    assert await texts_of(control, scene.user_id) == []
    call = (await control.get_calls())[-1]
    assert call.description == "answer withheld (disconnect); the call was not carried out"


async def test_withheld_answers_follow_the_seed(bot: Bot, control: SandboxClient) -> None:
    async def outcomes() -> list[bool]:
        return await _get_me_outcomes(bot, TelegramNetworkError)

    await control.add_fault("getMe", kind="disconnect", probability=0.3, seed=11)
    first = await outcomes()
    [rule] = await control.get_faults()
    assert rule.fired == first.count(False)
    await control.clear_faults()
    await control.add_fault("getMe", kind="disconnect", probability=0.3, seed=11)
    assert await outcomes() == first
    assert 0 < first.count(False) < 20


async def test_withheld_faults_are_validated(control: SandboxClient) -> None:
    with pytest.raises(SandboxControlError, match="kind must be one of"):
        await control.add_fault("getMe", kind="explode")
    with pytest.raises(SandboxControlError, match="error_code"):
        await control.add_fault("getMe", description="no code")  # an error needs its code
    with pytest.raises(SandboxControlError, match="delay is for timeout"):
        await control.add_fault("getMe", kind="disconnect", delay=1)
    with pytest.raises(SandboxControlError, match="delay must be"):
        await control.add_fault("getMe", kind="timeout", delay=31)
    with pytest.raises(SandboxControlError, match="takes_effect"):
        await control.add_fault("getMe", error_code=500, description="x", takes_effect=True)
    [rule] = await control.add_fault("getMe", kind="timeout")
    assert (rule.error_code, rule.description, rule.delay) == (504, "Gateway Timeout", 10.0)
