"""Deletion end to end: self-destruct on time and after a restart, the ephemeral button, the
retention purge and DELETE /messages/{id}, all through the sandbox."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.ephemeral import ReadDelete
from sandbox.client import MessageView
from tests.e2e.conftest import Running
from tests.waiting import eventually

API = "/api/v1/communication"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _send(running: Running, token: str, body: dict[str, Any]) -> str:
    async with running.http.post(
        f"{running.api_url}{API}/send", json=body, headers=_auth(token)
    ) as resp:
        assert resp.status == 202, await resp.text()
        message_id: str = (await resp.json())["message_id"]
        return message_id


async def _delivered(running: Running, group: int, marker: str) -> MessageView:
    return await running.world.wait_for_bot_message(
        group, lambda m: marker in (m.text or ""), within=10
    )


async def _deleted(
    running: Running, group: int, message_id: int, within: float = 15
) -> MessageView:
    chat = await running.world.wait_for_chat(
        group, lambda c: c.message(message_id).deleted_at is not None, within=within
    )
    return chat.message(message_id)


def _rows(running: Running, sql: str, *args: object) -> list[tuple[Any, ...]]:
    db = Path(running.database_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


async def test_self_destruct_deletes_the_telegram_copy_when_due(running: Running) -> None:
    _, group, token = await running.person_with_log()
    await _send(running, token, {"content": {"text": "burns in 2 s", "self_destruct_seconds": 2}})
    sent = await _delivered(running, group, "burns in 2 s")
    assert sent.deleted_at is None
    gone = await _deleted(running, group, sent.message_id)
    assert gone.deleted_at is not None
    assert gone.deleted_at - sent.date >= 1  # the sandbox counts whole seconds


async def test_a_deletion_due_while_the_gateway_was_down_happens_at_start(running: Running) -> None:
    _, group, token = await running.person_with_log()
    await _send(
        running, token, {"content": {"text": "burns in an hour", "self_destruct_seconds": 3600}}
    )
    sent = await _delivered(running, group, "burns in an hour")
    await eventually(
        lambda: bool(_rows(running, "SELECT 1 FROM telegram_copies WHERE delete_at IS NOT NULL")),
        within=10,
        what="the scheduled deletion is stored",
    )
    await running.stop_gateway()
    running.clock.set(running.clock() + timedelta(hours=2))
    await running.start_gateway()
    await _deleted(running, group, sent.message_id)
    await eventually(
        lambda: not _rows(running, "SELECT 1 FROM telegram_copies WHERE delete_at IS NOT NULL"),
        within=10,
        what="the done deletion is forgotten",
    )


async def test_the_ephemeral_button_deletes_for_the_owner_only(running: Running) -> None:
    owner, group, token = await running.person_with_log()
    message_id = await _send(running, token, {"content": {"text": "read once", "ephemeral": True}})
    sent = await _delivered(running, group, "read once")
    data = ReadDelete().pack()
    assert sent.reply_markup is not None
    assert sent.reply_markup["inline_keyboard"][0][0]["callback_data"] == data
    await eventually(
        lambda: bool(
            _rows(
                running, "SELECT 1 FROM messages WHERE id = ? AND status = 'delivered'", message_id
            )
        ),
        within=10,
        what="delivery committed",
    )

    guest = await running.world.create_user("Guest")
    await running.world.send_message(guest, group, "hello")  # joins the group
    await running.world.press_button(guest, group, sent.message_id, data)

    async def guest_told_off() -> bool:
        return any(
            c.method == "answerCallbackQuery" and "Only the owner" in str(c.params.get("text"))
            for c in await running.world.get_calls()
        )

    await eventually(guest_told_off, within=10, what="the guest's press refused")
    assert (await running.world.get_chat(group)).message(sent.message_id).deleted_at is None

    await running.world.press_button(owner, group, sent.message_id, data)
    await _deleted(running, group, sent.message_id, within=10)
    await eventually(
        lambda: not _rows(running, "SELECT 1 FROM messages WHERE id = ?", message_id),
        within=10,
        what="the record is gone with it",
    )
    async with running.http.get(
        f"{running.api_url}{API}/messages/{message_id}", headers=_auth(token)
    ) as resp:
        assert resp.status == 404


async def test_retention_purges_the_record(running: Running) -> None:
    _, group, token = await running.person_with_log()
    message_id = await _send(
        running, token, {"content": {"text": "short memory"}, "retention_seconds": 2}
    )
    await _delivered(running, group, "short memory")
    await eventually(
        lambda: not _rows(running, "SELECT 1 FROM messages WHERE id = ?", message_id),
        within=15,
        what="the record purged at its deadline",
    )
    assert not _rows(running, "SELECT 1 FROM delivery_attempts WHERE message_id = ?", message_id)
    # The Telegram copy stays while the bot may still delete it (for /erase), unlinked.
    assert _rows(running, "SELECT message_id FROM telegram_copies") == [(None,)]


async def test_delete_endpoint_erases_record_and_telegram_copy(running: Running) -> None:
    _, group, token = await running.person_with_log()
    message_id = await _send(running, token, {"content": {"text": "x " * 3000}})  # 2 parts
    chat = await running.world.wait_for_chat(
        group, lambda c: sum("(2/2)" in (m.text or "") for m in c.bot_messages()) == 1
    )
    parts = [m.message_id for m in chat.bot_messages() if (m.text or "").startswith("(")]
    await eventually(
        lambda: (
            len(_rows(running, "SELECT 1 FROM telegram_copies WHERE message_id = ?", message_id))
            == 2
        ),
        within=10,
        what="delivery committed",
    )
    url = f"{running.api_url}{API}/messages/{message_id}"

    async with running.http.delete(url, headers={"Authorization": "Bearer lgw_wrong"}) as resp:
        assert resp.status == 401
    async with running.http.delete(url, headers=_auth(token)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["record_deleted"] is True
    assert body["status_before"] == "delivered"
    assert sorted(body["telegram"]["deleted"]) == sorted(parts)
    assert body["telegram"]["not_deleted"] == []
    chat = await running.world.get_chat(group)
    assert all(chat.message(p).deleted_at is not None for p in parts)
    assert not _rows(running, "SELECT 1 FROM messages WHERE id = ?", message_id)
    async with running.http.get(url, headers=_auth(token)) as resp:
        assert resp.status == 404
    async with running.http.delete(url, headers=_auth(token)) as resp:
        assert resp.status == 404


async def test_delete_says_what_telegram_no_longer_allows(running: Running) -> None:
    _, group, token = await running.person_with_log()
    message_id = await _send(running, token, {"content": {"text": "old news"}})
    sent = await _delivered(running, group, "old news")
    await eventually(
        lambda: bool(
            _rows(running, "SELECT 1 FROM telegram_copies WHERE message_id = ?", message_id)
        ),
        within=10,
        what="delivery committed",
    )
    running.clock.set(running.clock() + timedelta(hours=49))
    async with running.http.delete(
        f"{running.api_url}{API}/messages/{message_id}", headers=_auth(token)
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["telegram"]["deleted"] == []
    [refused] = body["telegram"]["not_deleted"]
    assert refused["telegram_message_id"] == sent.message_id
    assert "48 hours" in refused["reason"]
    assert (await running.world.get_chat(group)).message(sent.message_id).deleted_at is None


async def test_delete_of_a_held_message_cancels_it(running: Running) -> None:
    user, _, token = await running.person_with_log()
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.send_message(user, user, "/quiet defer")
    await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    running.clock.set(running.clock().replace(hour=14, minute=0))  # 23:00 in Tokyo
    message_id = await _send(running, token, {"content": {"text": "never mind"}})
    async with running.http.delete(
        f"{running.api_url}{API}/messages/{message_id}", headers=_auth(token)
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["status_before"] == "deferred"
    assert body["telegram"] == {"deleted": [], "not_deleted": []}
    assert not _rows(running, "SELECT 1 FROM messages WHERE id = ?", message_id)
