"""Fallback channels end to end: the whole gateway against the sandbox Bot API server, the SMTP
stand-in (aiosmtpd) and the webhook receiver, over their real protocols.

Contacts are stored directly (sealed as the bot's setup flow stores them; that flow has its own
tests) so these tests are about the chain: Telegram gone → email, and the log notes it once the
group is back; a bouncing address → webhook; 410 → the endpoint is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import contacts as contact_data
from gateway import webhook_signing
from gateway.channel_wiring import ChannelsConfig
from gateway.channels.email import SmtpConfig
from gateway.content_cipher import ContentCipher
from gateway.runtime import GatewayConfig
from gateway.topics import TOPICS
from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.smtp import SmtpStandIn
from sandbox.state import DEFAULT_BOT_TOKEN
from sandbox.webhook_receiver import (
    ScriptedResponse,
    WebhookReceiverClient,
    create_webhook_receiver_app,
)
from storage import migrate
from storage.engine import create_engine, create_sessionmaker
from storage.enums import Category, Channel, ContactState
from storage.models import Contact, LogGroup, User
from tests.e2e.conftest import ADMIN_RIGHTS, Running, ServerFactory, free_port
from tests.waiting import eventually

SEND = "/api/v1/communication/send"
KEY = b"f" * 32
PUBLIC_URL = "https://gateway.example.test"
FAST_WEBHOOK_RETRIES = (0.05, 0.05, 0.05)


class Channels:
    def __init__(
        self,
        running: Running,
        smtp: SmtpStandIn,
        hooks: WebhookReceiverClient,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.running = running
        self.smtp = smtp
        self.hooks = hooks
        self.sessionmaker = sessionmaker
        self.cipher = ContentCipher(KEY)

    async def user_id(self, telegram_id: int) -> int:
        async with self.sessionmaker() as session:
            found = await session.scalar(select(User.id).where(User.telegram_id == telegram_id))
        assert found is not None
        return found

    async def add_contact(self, telegram_id: int, channel: Channel, data: dict[str, Any]) -> None:
        user_id = await self.user_id(telegram_id)
        extra: dict[str, Any] = {}
        if channel is Channel.EMAIL:
            token, token_hash = contact_data.new_unsubscribe_token()
            data = {**data, "unsubscribe": token}
            extra["unsubscribe_hash"] = token_hash
        async with self.sessionmaker() as session, session.begin():
            session.add(
                Contact(
                    user_id=user_id,
                    channel=channel,
                    sealed=contact_data.seal(self.cipher, user_id, channel, data),
                    state=ContactState.VERIFIED,
                    **extra,
                )
            )

    async def contact_state(self, telegram_id: int, channel: Channel) -> ContactState:
        user_id = await self.user_id(telegram_id)
        async with self.sessionmaker() as session:
            state = await session.scalar(
                select(Contact.state).where(Contact.user_id == user_id, Contact.channel == channel)
            )
        assert state is not None
        return state

    async def linked(self, telegram_id: int) -> bool:
        user_id = await self.user_id(telegram_id)
        async with self.sessionmaker() as session:
            unlinked = await session.scalar(
                select(LogGroup.unlinked_at).where(LogGroup.owner_id == user_id)
            )
        return unlinked is None

    async def send(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        url = self.running.api_url + SEND
        async with self.running.http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 202, await resp.text()
            result: dict[str, Any] = await resp.json()
            return result

    async def settled(self, token: str, message_id: str) -> dict[str, Any]:
        url = f"{self.running.api_url}/api/v1/communication/messages/{message_id}"
        headers = {"Authorization": f"Bearer {token}"}
        return await self.running.status_when(
            url, headers, lambda s: s["status"] in ("delivered", "failed")
        )


@pytest.fixture
async def channels(aiohttp_server: ServerFactory, tmp_path: Path) -> AsyncIterator[Channels]:
    sandbox = await aiohttp_server(create_sandbox_app())
    receiver: TestServer = await aiohttp_server(
        create_webhook_receiver_app(verifier=webhook_signing.verify)
    )
    smtp = SmtpStandIn()
    await smtp.start()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}"
    await asyncio.to_thread(migrate.upgrade, database_url)
    port = free_port()
    config = GatewayConfig(
        bot_token=DEFAULT_BOT_TOKEN,
        telegram_api_url=str(sandbox.make_url("")).rstrip("/"),
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=port,
        content_key=KEY,
        public_url=PUBLIC_URL,
        channels=ChannelsConfig(
            smtp=SmtpConfig(
                host="127.0.0.1",
                port=smtp.port,
                username=None,
                password=None,
                security="none",
                sender="Libral Gateway <gateway@example.test>",
            ),
            webhook_schedule=FAST_WEBHOOK_RETRIES,
            allow_local_urls=True,
        ),
    )
    engine = create_engine(database_url)
    async with aiohttp.ClientSession() as http:
        running = Running(
            SandboxClient(str(sandbox.make_url("")).rstrip("/"), http),
            http,
            f"http://127.0.0.1:{port}",
            database_url,
            config,
        )
        await running.start_gateway()
        try:
            yield Channels(
                running,
                smtp,
                WebhookReceiverClient(str(receiver.make_url("")).rstrip("/"), http),
                create_sessionmaker(engine),
            )
        finally:
            with contextlib.suppress(Exception):
                await running.stop_gateway()
            await smtp.stop()
            await engine.dispose()


async def test_with_the_bot_removed_a_message_arrives_by_email_and_the_log_notes_it_later(
    channels: Channels,
) -> None:
    running = channels.running
    user, group, token = await running.person_with_log()
    await channels.add_contact(user, Channel.EMAIL, {"address": "ada@example.test"})

    await running.world.set_bot_membership(group, by_id=user, status="left")
    await eventually(lambda: _not(channels.linked(user)), within=10, what="the log unlinked")
    accepted = await channels.send(token, {"category": "payment", "content": {"text": "Paid 5 €"}})
    [mail] = await channels.smtp.wait_for(1)
    assert mail.recipients == ("ada@example.test",)
    assert "Paid 5 €" in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    status = await channels.settled(token, accepted["message_id"])
    assert status["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in status["attempts"]] == [("email", "delivered")]

    # The group comes back: the audit line arrives in Communication Logs, no content in it.
    await running.world.set_bot_membership(
        group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
    )
    chat = await running.world.get_chat(group)
    logs_thread = next(
        t.message_thread_id for t in chat.topics if t.name == TOPICS[Category.COMMUNICATION].name
    )
    line = await running.world.wait_for_bot_message(
        group,
        lambda m: m.message_thread_id == logs_thread and accepted["message_id"] in (m.text or ""),
        within=15,
    )
    assert "Delivered by email" in (line.text or "")
    assert "payment" in (line.text or "")
    assert "Paid" not in (line.text or "")


async def _not(check: Any) -> bool:
    return not await check


async def test_telegram_refusing_for_good_falls_through_to_email(channels: Channels) -> None:
    running = channels.running
    user, _, token = await running.person_with_log()
    await channels.add_contact(user, Channel.EMAIL, {"address": "ada@example.test"})
    await running.world.add_fault(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was kicked from the supergroup chat",
        times=1,
    )
    accepted = await channels.send(token, {"content": {"text": "server restarted"}})
    await channels.smtp.wait_for(1)
    status = await channels.settled(token, accepted["message_id"])
    assert status["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in status["attempts"]] == [
        ("telegram", "failed"),
        ("email", "delivered"),
    ]
    assert not await channels.linked(user)  # the worker noticed the bot is gone


async def test_a_bouncing_address_falls_through_to_the_webhook(channels: Channels) -> None:
    running = channels.running
    user, _, token = await running.person_with_log()
    secret = webhook_signing.new_secret()
    await channels.hooks.configure("ada", secret=secret)
    await channels.add_contact(user, Channel.EMAIL, {"address": "bounce@example.test"})
    await channels.add_contact(
        user, Channel.WEBHOOK, {"url": channels.hooks.url("ada"), "secret": secret}
    )
    accepted = await channels.send(
        token, {"content": {"text": "invoice ready"}, "channels": ["email", "webhook"]}
    )
    [hook] = await channels.hooks.wait_for("ada", 1)
    assert hook.verified
    assert hook.headers["webhook-id"] == accepted["message_id"]
    status = await channels.settled(token, accepted["message_id"])
    assert status["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in status["attempts"]] == [
        ("email", "failed"),
        ("webhook", "delivered"),
    ]
    assert await channels.contact_state(user, Channel.EMAIL) is ContactState.BOUNCING
    assert channels.smtp.messages == []

    # Bouncing: not used again until verified anew.
    again = await channels.send(token, {"content": {"text": "x"}, "channels": ["email"]})
    assert again["status"] == "suppressed"


async def test_retries_stop_and_the_endpoint_is_disabled_on_410(channels: Channels) -> None:
    running = channels.running
    user, group, token = await running.person_with_log()
    secret = webhook_signing.new_secret()
    await channels.hooks.configure(
        "ada",
        secret=secret,
        responses=[ScriptedResponse(503), ScriptedResponse(500), ScriptedResponse(410)],
    )
    await channels.add_contact(
        user, Channel.WEBHOOK, {"url": channels.hooks.url("ada"), "secret": secret}
    )
    accepted = await channels.send(token, {"content": {"text": "x"}, "channels": ["webhook"]})
    status = await channels.settled(token, accepted["message_id"])
    assert status["status"] == "failed"
    assert [a["outcome"] for a in status["attempts"]] == ["retry", "retry", "failed"]
    assert len(await channels.hooks.requests("ada")) == 3
    assert await channels.contact_state(user, Channel.WEBHOOK) is ContactState.DISABLED
    # The person is told, in their log.
    notice = await running.world.wait_for_bot_message(
        group, lambda m: "webhook contact is no longer used" in (m.text or ""), within=10
    )
    assert notice.message_thread_id is None  # General


async def test_one_click_unsubscribe_from_an_email_stops_email(channels: Channels) -> None:
    running = channels.running
    user, _, token = await running.person_with_log()
    await channels.add_contact(user, Channel.EMAIL, {"address": "ada@example.test"})
    await channels.send(token, {"content": {"text": "hello"}, "channels": ["email"]})
    [mail] = await channels.smtp.wait_for(1)
    link = str(mail.message["List-Unsubscribe"]).strip("<>")
    assert link.startswith(PUBLIC_URL + "/api/v1/communication/unsubscribe/")
    local = running.api_url + link.removeprefix(PUBLIC_URL)

    async with running.http.get(local, allow_redirects=False) as page:  # shows, changes nothing
        assert page.status == 200
        assert "<form" in await page.text()
    assert await channels.contact_state(user, Channel.EMAIL) is ContactState.VERIFIED
    # RFC 8058: a POST without cookies or credentials, answered 200 without a redirect.
    async with running.http.post(
        local, data="List-Unsubscribe=One-Click", allow_redirects=False
    ) as done:
        assert done.status == 200
    assert await channels.contact_state(user, Channel.EMAIL) is ContactState.DISABLED
    again = await channels.send(token, {"content": {"text": "x"}, "channels": ["email"]})
    assert again["status"] == "suppressed"


async def test_an_endpoint_failing_for_five_days_is_disabled(channels: Channels) -> None:
    running = channels.running
    user, group, token = await running.person_with_log()
    secret = webhook_signing.new_secret()
    await channels.hooks.configure("ada", secret=secret, responses=[ScriptedResponse(500)])
    await channels.add_contact(
        user, Channel.WEBHOOK, {"url": channels.hooks.url("ada"), "secret": secret}
    )
    user_id = await channels.user_id(user)
    async with channels.sessionmaker() as session, session.begin():
        contact = await session.scalar(select(Contact).where(Contact.user_id == user_id))
        assert contact is not None
        contact.failing_since = running.clock() - timedelta(days=5, minutes=1)
    accepted = await channels.send(token, {"content": {"text": "x"}, "channels": ["webhook"]})
    status = await channels.settled(token, accepted["message_id"])
    assert status["status"] == "failed"
    assert "5 days" in status["failure_reason"]
    assert await channels.contact_state(user, Channel.WEBHOOK) is ContactState.DISABLED
    await running.world.wait_for_bot_message(
        group, lambda m: "webhook contact is no longer used" in (m.text or ""), within=10
    )


async def test_messages_held_overnight_for_email_go_by_email(channels: Channels) -> None:
    """Digests are Telegram messages: held messages whose chain does not start with Telegram
    are released one by one, through their own chain."""
    running = channels.running
    user, group, token = await running.person_with_log()
    await channels.add_contact(user, Channel.EMAIL, {"address": "ada@example.test"})
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.send_message(user, user, "/quiet defer")
    await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    await running.world.set_bot_membership(group, by_id=user, status="left")
    await eventually(lambda: _not(channels.linked(user)), within=10, what="the log unlinked")

    window_end = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
    running.clock.set(window_end - timedelta(seconds=4))
    held = [await channels.send(token, {"content": {"text": f"overnight {n}"}}) for n in range(2)]
    assert {h["status"] for h in held} == {"deferred"}
    mails = await channels.smtp.wait_for(2, within=20)
    assert sorted(m.message.get_body(("plain",)).get_content().splitlines()[0] for m in mails) == [  # type: ignore[union-attr]
        "overnight 0",
        "overnight 1",
    ]
    for accepted in held:
        status = await channels.settled(token, accepted["message_id"])
        assert status["status"] == "delivered"
        assert status["carried_by"] is None
