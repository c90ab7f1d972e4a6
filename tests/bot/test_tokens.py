"""/token creates a personal API token shown once; /tokens lists and revokes."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from storage.models import ApiToken
from tests.bot.conftest import PUBLIC_API_URL, RunningBot, buttons, entity_texts, has_text

TOKEN = re.compile(r"^lgp_[A-Za-z0-9_-]{32,}$")


async def new_token(running: RunningBot, user_id: int) -> str:
    reply = await running.reply_after(user_id, user_id, "/token", lambda m: has_text(m, "lgp_"))
    [secret] = [t for t in entity_texts(reply, "code") if TOKEN.match(t)]
    return secret


async def test_token_is_shown_once_and_only_its_hash_is_stored(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    reply = await running.reply_after(user_id, user_id, "/token", lambda m: has_text(m, "lgp_"))
    secrets = [t for t in entity_texts(reply, "code") if TOKEN.match(t)]
    assert len(secrets) == 1
    [secret] = secrets
    curl = entity_texts(reply, "pre")
    assert len(curl) == 1
    assert f"curl -X POST {PUBLIC_API_URL}/api/v1/communication/send" in curl[0]
    assert f"Authorization: Bearer {secret}" in curl[0]
    async with running.sessionmaker() as session:
        [row] = (await session.scalars(select(ApiToken))).all()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(row.prefix)
    assert secret not in (row.prefix, row.token_hash)
    assert row.scopes == ["send"]


async def test_token_needs_registration_and_a_private_chat(running: RunningBot) -> None:
    stranger = await running.control.create_user("Eve")
    reply = await running.reply_after(stranger, stranger, "/token", lambda m: True)
    assert "/start" in (reply.text or "")

    owner = await running.register("Ada")
    group_id = await running.control.create_group("Club", owner_id=owner, is_forum=True)
    await running.control.set_bot_membership(group_id, by_id=owner, status="member")
    reply = await running.reply_after(owner, group_id, "/token", lambda m: has_text(m, "private"))
    assert "lgp_" not in (reply.text or "")
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(ApiToken))).all() == []


async def test_tokens_lists_and_revokes_in_place(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    first, second = await new_token(running, user_id), await new_token(running, user_id)

    listing = await running.reply_after(user_id, user_id, "/tokens", lambda m: has_text(m, "…"))
    stale_copy = await running.reply_after(user_id, user_id, "/tokens", lambda m: has_text(m, "…"))
    assert first[:12] in (listing.text or "")
    assert second[:12] in (listing.text or "")
    assert first not in (listing.text or "")  # never the whole secret again
    [(label, revoke_first), (_, _revoke_second)] = buttons(listing)
    assert first[:12] in label

    answer = await running.press(user_id, user_id, listing, revoke_first)
    assert answer["show_alert"] is False
    edited = (await running.control.get_chat(user_id)).message(listing.message_id)
    assert first[:12] not in (edited.text or "")
    assert second[:12] in (edited.text or "")
    assert len(buttons(edited)) == 1
    async with running.sessionmaker() as session:
        rows = {t.prefix: t.revoked_at for t in (await session.scalars(select(ApiToken))).all()}
    assert rows[first[:12]] is not None
    assert rows[second[:12]] is None

    # the older list still shows the button of the revoked token: a stale press gets an alert
    answer = await running.press(user_id, user_id, stale_copy, revoke_first)
    assert answer["show_alert"] is True
    assert "already revoked" in answer["text"]


async def test_token_is_committed_before_shown_and_removed_if_not_shown(
    running: RunningBot,
) -> None:
    user_id = await running.register("Ada")
    await running.control.add_fault(
        "sendMessage", error_code=500, description="Internal Server Error", times=1
    )
    await running.control.send_message(user_id, user_id, "/token")
    await running.settled()
    [error] = running.errors
    running.errors.clear()  # the failed send is this test's point, not a bug
    assert "Internal Server Error" in str(error)
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(ApiToken))).all() == []
    # Shown tokens are already committed when the reply arrives: no settle needed to find it.
    secret = await new_token(running, user_id)
    async with running.sessionmaker() as session:
        [row] = (await session.scalars(select(ApiToken))).all()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
