"""Quiet hours end to end: the gateway runs on a shifted clock standing in the person's night.

`silent` delivers at once without sound, `urgent` keeps its sound, `defer` holds messages and
the scheduler releases them as one digest per topic when the window ends, also after a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.topics import TOPICS
from sandbox.client import MessageView
from storage.enums import Category
from tests.e2e.conftest import Running

SEND = "/api/v1/communication/send"
# Default quiet hours: 22:00-08:00 in Asia/Tokyo (UTC+9, no DST).
TOKYO_23 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 23:00 on the 25th in Tokyo
WINDOW_END = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 08:00 on the 26th in Tokyo
# How long before the window ends the deferring tests stand: enough to send a few messages,
# short enough that the test waits only seconds for the real-time scheduler.
LEAD = timedelta(seconds=6)


async def _send(running: Running, token: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with running.http.post(running.api_url + SEND, json=body, headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def _status(running: Running, token: str, message_id: str) -> dict[str, Any]:
    url = f"{running.api_url}/api/v1/communication/messages/{message_id}"
    headers = {"Authorization": f"Bearer {token}"}
    return await running.status_when(url, headers, lambda s: s["status"] == "delivered")


async def _command(running: Running, user: int, text: str) -> MessageView:
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.send_message(user, user, text)
    chat = await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    return chat.bot_messages()[-1]


async def _thread(running: Running, group: int, category: Category) -> int | None:
    chat = await running.world.get_chat(group)
    return next(t.message_thread_id for t in chat.topics if t.name == TOPICS[category].name)


async def test_silent_quiet_hours_deliver_at_once_without_sound(running: Running) -> None:
    _, group, token = await running.person_with_log()
    running.clock.set(TOKYO_23)
    accepted = await _send(running, token, {"category": "system", "content": {"text": "nightly"}})
    assert accepted["status"] == "queued"
    delivered = await running.world.wait_for_bot_message(
        group, lambda m: "nightly" in (m.text or ""), within=10
    )
    assert delivered.disable_notification


async def test_urgent_keeps_its_sound_inside_quiet_hours(running: Running) -> None:
    _, group, token = await running.person_with_log()
    running.clock.set(TOKYO_23)
    body = {"category": "system", "priority": "urgent", "content": {"text": "server down"}}
    accepted = await _send(running, token, body)
    assert accepted["status"] == "queued"
    delivered = await running.world.wait_for_bot_message(
        group, lambda m: "server down" in (m.text or ""), within=10
    )
    assert not delivered.disable_notification


async def test_deferred_messages_arrive_after_the_window_as_one_digest(running: Running) -> None:
    user, group, token = await running.person_with_log()
    assert "Saved" in ((await _command(running, user, "/quiet defer")).text or "")
    system_thread = await _thread(running, group, Category.SYSTEM)
    running.clock.set(WINDOW_END - LEAD)

    first = await _send(
        running,
        token,
        {"category": "system", "content": {"text": "Disk 91% full"}, "hashtags": ["disk"]},
    )
    second = await _send(
        running,
        token,
        {"category": "system", "content": {"markdown": "**Deploy** done"}, "hashtags": ["ci"]},
    )
    for accepted in (first, second):
        assert accepted["status"] == "deferred"
        assert accepted["deferred_until"] == WINDOW_END.isoformat()
    # Held: nothing reaches the group before the window ends.
    assert not any(
        "Disk 91%" in (m.text or "") for m in (await running.world.get_chat(group)).bot_messages()
    )

    digest = await running.world.wait_for_bot_message(
        group, lambda m: "Digest" in (m.text or ""), within=LEAD.total_seconds() + 15
    )
    assert running.clock() >= WINDOW_END
    assert digest.message_thread_id == system_thread
    text = digest.text or ""
    assert text.startswith("🗞 Digest: 2 messages held during quiet hours")
    assert "Disk 91% full" in text
    assert "Deploy done" in text
    assert text.endswith("#system #disk #ci")
    assert not digest.disable_notification  # the night is over

    for accepted in (first, second):
        status = await _status(running, token, accepted["message_id"])
        assert status["telegram_message_ids"] == [digest.message_id]
        assert status["carried_by"] is not None


async def test_messages_held_overnight_are_released_after_a_restart(running: Running) -> None:
    user, group, token = await running.person_with_log()
    await _command(running, user, "/quiet defer")
    running.clock.set(TOKYO_23)
    held = [
        await _send(running, token, {"category": "auth", "content": {"text": f"sign-in {n}"}})
        for n in range(3)
    ]
    assert {h["status"] for h in held} == {"deferred"}
    await running.stop_gateway()

    running.clock.set(WINDOW_END + timedelta(minutes=5))  # the gateway was down at 08:00
    await running.start_gateway()
    digest = await running.world.wait_for_bot_message(
        group, lambda m: "Digest: 3 messages" in (m.text or ""), within=15
    )
    assert digest.message_thread_id == await _thread(running, group, Category.AUTH)
    for n in range(3):
        assert f"sign-in {n}" in (digest.text or "")
    for accepted in held:
        status = await _status(running, token, accepted["message_id"])
        assert status["telegram_message_ids"] == [digest.message_id]


async def test_test_command_sends_a_sample_per_enabled_category(running: Running) -> None:
    user, group, _ = await running.person_with_log()
    running.clock.set(WINDOW_END + timedelta(hours=4))  # noon in Tokyo: no quiet hours
    reply = await _command(running, user, "/test")
    enabled = [c for c in TOPICS if c is not Category.PLUGIN]  # plugin is off by default
    for category in enabled:
        assert f"✅ {TOPICS[category].name}: on its way" in (reply.text or "")
    assert TOPICS[Category.PLUGIN].name not in (reply.text or "")

    chat = await running.world.wait_for_chat(
        group, lambda c: sum("#test" in (m.text or "") for m in c.bot_messages()) == len(enabled)
    )
    samples = [m for m in chat.bot_messages() if "#test" in (m.text or "")]
    threads = {t.name: t.message_thread_id for t in chat.topics}
    expected = {threads.get(TOPICS[c].name) for c in enabled}  # General has no created topic
    assert {m.message_thread_id for m in samples} == expected
