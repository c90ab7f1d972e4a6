"""The bot's own messages (replies, welcomes) take their slots from the worker's pacer: into a
chat the sandbox limits as Telegram does, a quick series arrives whole without a 429; the
worker's sends pass straight through; a 429 still slows the chat; nothing waits for ever."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from gateway.channels.telegram import PACED_BY_CALLER
from gateway.delivery.bot_pacing import PacedBotRequests
from gateway.delivery.pacing import Pacer, TelegramRates
from gateway.delivery.worker import PacedSends
from sandbox.client import SandboxClient
from tests.delivery.conftest import UTCClock
from tests.delivery.test_paced_worker import fake_sleep, sends
from tests.sandbox.conftest import FakeClock, Scene


class RecordingPacing:
    """A SendPacing that holds every chat until `hold_until` (None: never) and records."""

    def __init__(self, hold_until: datetime | None = None) -> None:
        self.hold_until = hold_until
        self.asked: list[int] = []
        self.limited: list[tuple[int, float]] = []

    async def before_send(self, chat_id: int) -> datetime | None:
        self.asked.append(chat_id)
        return self.hold_until

    def rate_limited(self, chat_id: int, retry_after: float) -> None:
        self.limited.append((chat_id, retry_after))


async def test_a_quick_series_of_replies_waits_its_turn_without_a_429(
    bot: Bot, control: SandboxClient, scene: Scene, clock: UTCClock, fake_clock: FakeClock
) -> None:
    await control.set_flood(enabled=True)  # Telegram's limits: one a second into this chat
    sleep = fake_sleep(clock, fake_clock)
    pacing = PacedSends(Pacer(TelegramRates(), clock().timestamp()), clock, sleep, 0.5)
    bot.session.middleware(PacedBotRequests(pacing, clock, sleep=sleep))
    start = clock()

    for n in range(5):
        await bot.send_message(scene.user_id, f"reply {n}")

    calls = await sends(control, scene.user_id)
    assert [c.status for c in calls] == [200] * 5
    assert clock() - start >= timedelta(seconds=4)  # one a second, as the chat allows


async def test_the_workers_sends_and_other_methods_pass_straight_through(
    bot: Bot, scene: Scene, clock: UTCClock
) -> None:
    pacing = RecordingPacing(hold_until=clock() + timedelta(days=1))
    bot.session.middleware(PacedBotRequests(pacing, clock))
    token = PACED_BY_CALLER.set(True)
    try:
        await bot.send_message(scene.user_id, "delivered by the worker")
    finally:
        PACED_BY_CALLER.reset(token)
    await bot.get_me()
    assert pacing.asked == []


async def test_an_edit_waits_its_turn_like_a_new_message(
    bot: Bot, scene: Scene, clock: UTCClock
) -> None:
    sent = await bot.send_message(scene.user_id, "a keyboard")
    pacing = RecordingPacing()
    bot.session.middleware(PacedBotRequests(pacing, clock))
    await bot.edit_message_text(
        "the keyboard, changed", chat_id=scene.user_id, message_id=sent.message_id
    )
    button = InlineKeyboardButton(text="ok", callback_data="ok")
    markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    await bot.edit_message_reply_markup(
        chat_id=scene.user_id, message_id=sent.message_id, reply_markup=markup
    )
    assert pacing.asked == [scene.user_id, scene.user_id]


async def test_a_429_slows_the_chat_and_a_long_hold_is_not_waited_out(
    bot: Bot, control: SandboxClient, scene: Scene, clock: UTCClock
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    pacing = RecordingPacing(hold_until=clock() + timedelta(hours=1))
    bot.session.middleware(PacedBotRequests(pacing, clock, sleep=sleep, max_wait=30))
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests", retry_after=7, times=1
    )

    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(scene.user_id, "too soon")

    assert slept == [30.0]  # waited for its slot at most 30 s, then went anyway
    assert pacing.limited == [(scene.user_id, 7)]
    await bot.send_message(scene.user_id, "later")  # the fault was used up
