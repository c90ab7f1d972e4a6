"""The first complete path: start, link a forum group, take a token, POST, read the topic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.topics import TOPICS
from storage.enums import Category
from tests.e2e.conftest import ADMIN_RIGHTS, Running
from tests.waiting import eventually

SEND = "/api/v1/communication/send"


async def test_a_script_message_lands_in_the_right_topic_with_hashtags(running: Running) -> None:
    _user, group, token = await running.person_with_log()
    headers = {"Authorization": f"Bearer {token}"}
    chat = await running.world.get_chat(group)
    names = {t.name: t.message_thread_id for t in chat.topics}
    assert set(names) == {s.name for s in TOPICS.values() if s.category is not Category.GENERAL}
    auth_thread = names[TOPICS[Category.AUTH].name]

    body = {
        "category": "auth",
        "priority": "high",
        "content": {"text": "New sign-in from <Firefox>"},
        "hashtags": ["#login", "Login", "12345", "new-device"],
    }
    async with running.http.post(running.api_url + SEND, json=body, headers=headers) as resp:
        assert resp.status == 202
        accepted = await resp.json()
    assert accepted["status"] == "queued"

    delivered = await running.world.wait_for_bot_message(
        group,
        lambda m: m.message_thread_id == auth_thread and "Firefox" in (m.text or ""),
        within=10,
    )
    assert delivered.text == "New sign-in from <Firefox>\n\n#auth #security #login #newdevice"
    assert delivered.is_topic_message

    # The status endpoint reports delivery; the stored content is gone.
    status_url = f"{running.api_url}/api/v1/communication/messages/{accepted['message_id']}"
    # The worker commits right after Telegram accepted the send: wait for that commit.
    status = await running.status_when(status_url, headers, lambda s: s["status"] != "queued")
    assert status["status"] == "delivered"
    assert [a["outcome"] for a in status["attempts"]] == ["delivered"]
    db = Path(running.database_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        content = conn.execute(
            "SELECT encrypted_content FROM messages WHERE id = ?", (accepted["message_id"],)
        ).fetchone()[0]
    assert content is None


async def test_general_and_context_label_routing(running: Running) -> None:
    _, group, token = await running.person_with_log("Bo")
    headers = {"Authorization": f"Bearer {token}"}
    chat = await running.world.get_chat(group)
    payment_thread = next(
        t.message_thread_id for t in chat.topics if t.name == TOPICS[Category.PAYMENT].name
    )
    for body in (
        {"content": {"markdown": "**Paid** in full"}, "context_labels": {"category": "payment"}},
        {"content": {"html": "<b>Hi</b><script>x()</script>"}},
    ):
        async with running.http.post(running.api_url + SEND, json=body, headers=headers) as resp:
            assert resp.status == 202
    paid = await running.world.wait_for_bot_message(
        group, lambda m: "Paid" in (m.text or ""), within=10
    )
    assert paid.message_thread_id == payment_thread
    assert paid.text == "Paid in full\n\n#payment #transaction"
    assert any(e["type"] == "bold" for e in paid.entities)
    hello = await running.world.wait_for_bot_message(
        group, lambda m: (m.text or "").startswith("Hi"), within=10
    )
    assert hello.message_thread_id is None  # General
    assert hello.text == "Hi\n\n#general"


async def test_failures_through_the_running_gateway(running: Running) -> None:
    user, group, token = await running.person_with_log("Cy")
    headers = {"Authorization": f"Bearer {token}"}
    url = running.api_url + SEND
    async with running.http.post(url, json={"content": {"text": "x"}}) as resp:
        assert resp.status == 401
    async with running.http.post(url, data=b"{nope", headers=headers) as resp:
        assert resp.status == 400
    async with running.http.post(url, json={"content": {"text": ""}}, headers=headers) as resp:
        assert resp.status == 422
    # Telegram refuses once with a 5xx: the worker retries and the message still arrives.
    await running.world.add_fault(
        "sendMessage", error_code=500, description="Internal Server Error", times=1
    )
    async with running.http.post(url, json={"content": {"text": "retry me"}}, headers=headers) as r:
        retried = (await r.json())["message_id"]
    await running.world.wait_for_bot_message(
        group, lambda m: (m.text or "").startswith("retry me"), within=15
    )
    status_url = f"{running.api_url}/api/v1/communication/messages/{retried}"
    status = await running.status_when(status_url, headers, lambda s: s["status"] == "delivered")
    assert [a["outcome"] for a in status["attempts"]] == ["retry", "delivered"]
    # The person removes the bot: the next message fails with a clear reason, the log unlinks.
    await running.world.set_bot_membership(group, by_id=user, status="kicked")
    db = Path(running.database_url.removeprefix("sqlite+aiosqlite:///"))

    def unlinked() -> bool:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT unlinked_at FROM log_groups WHERE chat_id = ?", (group,))
            return row.fetchone()[0] is not None

    await eventually(unlinked, within=10, what="the removal to unlink the log")
    async with running.http.post(url, json={"content": {"text": "gone"}}, headers=headers) as r:
        assert r.status == 409  # the removal already unlinked the log: nothing is accepted


async def test_after_the_log_moves_the_next_message_goes_to_the_new_group(running: Running) -> None:
    """The worker finds the personal log in its cache of recipient state: the move, written
    by the bot, must reach it at once, not when the entry expires."""
    user, first, token = await running.person_with_log("Ada")
    headers = {"Authorization": f"Bearer {token}"}
    url = running.api_url + SEND
    async with running.http.post(url, json={"content": {"text": "to the first"}}, headers=headers):
        pass
    await running.world.wait_for_bot_message(
        first, lambda m: (m.text or "").startswith("to the first"), within=10
    )  # the worker's cache holds the first group now

    second = await running.world.create_group("Ada's new log", owner_id=user, is_forum=True)
    await running.world.set_bot_membership(
        second, by_id=user, status="administrator", rights=ADMIN_RIGHTS
    )
    ask = await running.world.wait_for_bot_message(second, lambda m: bool(m.reply_markup))
    assert ask.reply_markup is not None
    data = ask.reply_markup["inline_keyboard"][0][0]["callback_data"]
    await running.world.press_button(user, second, ask.message_id, data)
    await running.world.wait_for_chat(second, lambda c: len(c.topics) == 5)

    async with running.http.post(
        url, json={"content": {"text": "to the new"}}, headers=headers
    ) as r:
        assert r.status == 202
    await running.world.wait_for_bot_message(
        second, lambda m: (m.text or "").startswith("to the new"), within=10
    )
    old = await running.world.get_chat(first)
    assert not any((m.text or "").startswith("to the new") for m in old.bot_messages())


async def test_a_token_revoked_in_the_bot_stops_working_at_once(running: Running) -> None:
    user, _, token = await running.person_with_log("Cy")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"content": {"text": "before"}}
    async with running.http.post(running.api_url + SEND, json=body, headers=headers) as resp:
        assert resp.status == 202  # verified, and now remembered by the API
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.send_message(user, user, "/tokens")
    chat = await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    listing = chat.bot_messages()[-1]
    assert listing.reply_markup is not None
    data = listing.reply_markup["inline_keyboard"][0][0]["callback_data"]
    await running.world.press_button(user, user, listing.message_id, data)

    async def refused() -> bool:
        async with running.http.post(running.api_url + SEND, json=body, headers=headers) as again:
            return again.status == 401

    # Well within the cache's 30 s: the revocation reached it, not its expiry.
    await eventually(refused, within=5, what="the revoked token refused")
