"""/email, /webhook, /phone, /push and /channels through the sandbox bot, with the real
ContactSetup: email codes arrive in the SMTP stand-in, test webhooks in the receiver stand-in."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import standardwebhooks
from aiogram.types import Chat, Message, Update
from aiogram.types import Contact as TelegramContact
from aiogram.types import User as TelegramUser
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from bot.dispatcher import build_dispatcher
from bot.routers.contacts import is_own_contact
from gateway import contacts as sealing
from gateway import webhook_signing
from gateway.channels.webhook import WebhookChannel, WebhookConfig
from gateway.contact_setup import ContactSetup
from gateway.content_cipher import ContentCipher
from sandbox.client import MessageView
from sandbox.smtp import SmtpStandIn
from sandbox.webhook_receiver import (
    WebhookReceiver,
    create_webhook_receiver_app,
    webhook_receiver,
)
from storage.enums import Channel, ContactState
from storage.models import Contact, User
from tests.bot.conftest import PUBLIC_API_URL, RunningBot, entity_texts, has_text
from tests.test_contact_setup import code_from, email_channel_for, other_code

CIPHER = ContentCipher(b"b" * 32)
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{32,}={0,2}")


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def receiver_server(aiohttp_server: Any) -> TestServer:
    server: TestServer = await aiohttp_server(
        create_webhook_receiver_app(verifier=webhook_signing.verify)
    )
    return server


@pytest.fixture
def receiver(receiver_server: TestServer) -> WebhookReceiver:
    return webhook_receiver(receiver_server.app)


@pytest.fixture
async def contact_setup(smtp: SmtpStandIn) -> AsyncIterator[ContactSetup]:
    webhooks = WebhookChannel(config=WebhookConfig(timeout=5.0))
    yield ContactSetup(
        CIPHER,
        email_channel_for(smtp),
        webhooks,
        public_url=PUBLIC_API_URL,
        allow_local_urls=True,  # the receiver stand-in listens on http://127.0.0.1
    )
    await webhooks.close()


@pytest.fixture
async def running(running: RunningBot, contact_setup: ContactSetup) -> RunningBot:
    """The shared running bot, with the service injected as the composition root does
    (build_dispatcher(contact_setup=...) puts it into the same workflow data)."""
    running.dp["contact_setup"] = contact_setup
    return running


async def contact_row(running: RunningBot, telegram_id: int, channel: Channel) -> Contact | None:
    async with running.sessionmaker() as session:
        row: Contact | None = await session.scalar(
            select(Contact)
            .join(User, User.id == Contact.user_id)
            .where(User.telegram_id == telegram_id, Contact.channel == channel)
        )
        return row


def test_build_dispatcher_injects_the_service(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    setup = ContactSetup(CIPHER, None, WebhookChannel(), public_url=PUBLIC_API_URL)
    assert build_dispatcher(sessionmaker, contact_setup=setup)["contact_setup"] is setup
    assert "contact_setup" not in build_dispatcher(sessionmaker).workflow_data


# --- /email -----------------------------------------------------------------------------------


async def test_email_flow_with_a_mailed_code(running: RunningBot, smtp: SmtpStandIn) -> None:
    user_id = await running.register("Ada")
    reply = await running.reply_after(
        user_id, user_id, "/email ada@example.org", lambda m: has_text(m, "mailed a code")
    )
    assert reply.text is not None
    assert "a***@example.org" in reply.text
    assert "/email verify 123456" in reply.text
    (received,) = await smtp.wait_for(1)
    assert received.recipients == ("ada@example.org",)
    code = code_from(received)
    row = await contact_row(running, user_id, Channel.EMAIL)
    assert row is not None
    assert row.state is ContactState.PENDING

    wrong = await running.reply_after(
        user_id, user_id, f"/email verify {other_code(code)}", lambda m: has_text(m, "wrong code")
    )
    assert wrong.text is not None
    assert "4 tries left" in wrong.text
    right = await running.reply_after(
        user_id, user_id, f"/email verify {code}", lambda m: has_text(m, "Verified")
    )
    assert right.text is not None
    assert "a***@example.org" in right.text
    row = await contact_row(running, user_id, Channel.EMAIL)
    assert row is not None
    assert row.state is ContactState.VERIFIED

    shown = await running.reply_after(user_id, user_id, "/email", lambda m: has_text(m, "Email"))
    assert shown.text is not None
    assert "a***@example.org" in shown.text
    assert "in use" in shown.text
    assert "ada@example.org" not in shown.text

    listed = await running.reply_after(
        user_id, user_id, "/channels", lambda m: has_text(m, "Your channels")
    )
    assert listed.text is not None
    assert "a***@example.org" in listed.text

    gone = await running.reply_after(user_id, user_id, "/email off", lambda m: has_text(m, "🗑"))
    assert gone.text is not None
    assert "Email removed" in gone.text
    assert await contact_row(running, user_id, Channel.EMAIL) is None


async def test_email_input_errors_get_a_hint(running: RunningBot, smtp: SmtpStandIn) -> None:
    user_id = await running.register("Ada")
    for command in ("/email ada", "/email a b", "/email verify", "/email verify 12"):
        reply = await running.reply_after(user_id, user_id, command, lambda m: has_text(m, "⚠️"))
        assert reply.text is not None
        assert "/email you@example.org" in reply.text, command
    no_code = await running.reply_after(
        user_id, user_id, "/email verify 123456", lambda m: has_text(m, "⚠️")
    )
    assert no_code.text is not None
    assert "add an address first" in no_code.text
    assert smtp.messages == []


async def test_unregistered_and_unavailable(running: RunningBot) -> None:
    stranger = await running.control.create_user("Eve")
    reply = await running.reply_after(stranger, stranger, "/channels", lambda m: True)
    assert reply.text == texts.NOT_REGISTERED

    user_id = await running.register("Ada")
    del running.dp.workflow_data["contact_setup"]
    reply = await running.reply_after(user_id, user_id, "/email ada@example.org", lambda m: True)
    assert reply.text == texts.CONTACTS_UNAVAILABLE


# --- /webhook ---------------------------------------------------------------------------------


async def test_webhook_secret_once_and_signed_test_event(
    running: RunningBot, receiver_server: TestServer, receiver: WebhookReceiver
) -> None:
    user_id = await running.register("Ada")
    url = str(receiver_server.make_url("/hooks/ada"))
    reply = await running.reply_after(
        user_id, user_id, f"/webhook {url}", lambda m: has_text(m, "signing secret")
    )
    [secret] = [t for t in entity_texts(reply, "code") if SECRET.fullmatch(t)]
    webhook_signing.secret_key(secret)
    assert reply.text is not None
    assert "Standard Webhooks" in reply.text
    assert "webhook-signature" in reply.text
    assert "/hooks/ada" not in reply.text  # only the host is repeated
    row = await contact_row(running, user_id, Channel.WEBHOOK)
    assert row is not None
    assert row.state is ContactState.VERIFIED
    assert sealing.open_data(CIPHER, row) == {"url": url, "secret": secret}

    receiver.configure("ada", secret=secret)
    tested = await running.reply_after(
        user_id, user_id, "/webhook test", lambda m: has_text(m, "test event")
    )
    assert tested.text is not None
    assert tested.text.startswith("✅")
    (request,) = await receiver.wait_for("ada", 1, within=5)
    assert request.verified, request.verify_error
    assert request.json["type"] == "webhook.test"
    standardwebhooks.Webhook(secret).verify(request.body, request.headers)

    # The secret is not shown again.
    shown = await running.reply_after(
        user_id, user_id, "/webhook", lambda m: has_text(m, "Webhook")
    )
    assert shown.text is not None
    assert secret not in shown.text
    assert f"127.0.0.1:{receiver_server.port}" in shown.text

    refused = await running.reply_after(
        user_id, user_id, "/webhook ftp://example.org/x", lambda m: has_text(m, "⚠️")
    )
    assert refused.text is not None
    assert "https://" in refused.text
    await running.reply_after(user_id, user_id, "/webhook off", lambda m: has_text(m, "🗑"))
    assert await contact_row(running, user_id, Channel.WEBHOOK) is None
    none = await running.reply_after(user_id, user_id, "/webhook test", lambda m: has_text(m, "⚠️"))
    assert none.text is not None
    assert "no webhook registered" in none.text


# --- /phone -----------------------------------------------------------------------------------


async def test_phone_keyboard_and_own_contact(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    ask = await running.reply_after(
        user_id, user_id, "/phone", lambda m: has_text(m, "Tap the button")
    )
    assert ask.reply_markup is not None
    [[button]] = ask.reply_markup["keyboard"]
    assert button["request_contact"] is True
    assert button["text"] == texts.PHONE_BUTTON

    before = {m.message_id for m in (await running.control.get_chat(user_id)).messages}
    await running.control.share_contact(user_id)
    saved = await running.control.wait_for_bot_message(
        user_id, lambda m: m.message_id not in before and has_text(m, "Saved")
    )
    await running.settled()
    assert saved.reply_markup == {"remove_keyboard": True}
    row = await contact_row(running, user_id, Channel.SMS)
    assert row is not None
    assert row.state is ContactState.VERIFIED
    phone = sealing.open_data(CIPHER, row)["phone"]
    assert phone.startswith("+1555")
    assert saved.text is not None
    assert f"ending in {phone[-2:]}" in saved.text
    assert phone not in saved.text

    typed = await running.reply_after(
        user_id, user_id, "/phone +4915112345678", lambda m: has_text(m, "contact sharing")
    )
    assert typed.text == texts.PHONE_ONLY_BY_BUTTON
    await running.reply_after(user_id, user_id, "/phone off", lambda m: has_text(m, "🗑"))
    assert await contact_row(running, user_id, Channel.SMS) is None


def contact_update(
    sender_id: int, contact_user_id: int | None, *, update_id: int = 900_001
) -> Update:
    """A private-chat message sharing a contact; the sandbox can only share the sender's own."""
    sender = TelegramUser(id=sender_id, is_bot=False, first_name="Ada")
    return Update(
        update_id=update_id,
        message=Message(
            message_id=900_000 + update_id % 1000,
            date=int(time.time()),
            chat=Chat(id=sender_id, type="private", first_name="Ada"),
            from_user=sender,
            contact=TelegramContact(
                phone_number="4915112345678", first_name="Bob", user_id=contact_user_id
            ),
        ),
    )


def test_only_the_senders_own_contact_counts() -> None:
    own = contact_update(5, 5).message
    foreign = contact_update(5, 6).message
    typed_in = contact_update(5, None).message  # a contact card without a Telegram account
    assert own is not None
    assert foreign is not None
    assert typed_in is not None
    assert is_own_contact(own)
    assert not is_own_contact(foreign)
    assert not is_own_contact(typed_in)


async def feed_and_wait(running: RunningBot, chat_id: int, update: Update) -> MessageView:
    """Hand the bot an update the sandbox cannot produce; the bot's next message in the chat."""
    before = {m.message_id for m in (await running.control.get_chat(chat_id)).messages}
    await running.dp.feed_update(running.bot, update)
    return await running.control.wait_for_bot_message(chat_id, lambda m: m.message_id not in before)


async def test_someone_elses_contact_is_refused(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    other_id = await running.control.create_user("Bob")
    for n, contact_user in enumerate((other_id, None)):
        refused = await feed_and_wait(
            running, user_id, contact_update(user_id, contact_user, update_id=900_100 + n)
        )
        assert refused.text == texts.PHONE_NOT_YOURS
        assert refused.reply_markup is not None
        assert refused.reply_markup["keyboard"][0][0]["request_contact"] is True
    assert await contact_row(running, user_id, Channel.SMS) is None


# --- /push ------------------------------------------------------------------------------------


async def test_push_validation_and_masking(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    for bad, hint in (
        ("/push http://ntfy.example/topic", "https://"),
        ("/push https://ntfy.example", "topic"),
        ("/push https://ntfy.example/a/b", "one topic"),
        ("/push https://ntfy.example/t tok extra", "at most a token"),
    ):
        reply = await running.reply_after(user_id, user_id, bad, lambda m: has_text(m, "⚠️"))
        assert reply.text is not None
        assert hint in reply.text, bad
        assert "/push https://ntfy.sh/your-secret-topic" in reply.text
    assert await contact_row(running, user_id, Channel.PUSH) is None

    saved = await running.reply_after(
        user_id, user_id, "/push https://ntfy.example/my_secret_topic tk_abc", lambda m: True
    )
    assert saved.text is not None
    assert "ntfy.example with your access token" in saved.text
    assert "my_secret_topic" not in saved.text
    row = await contact_row(running, user_id, Channel.PUSH)
    assert row is not None
    assert sealing.open_data(CIPHER, row) == {
        "url": "https://ntfy.example/my_secret_topic",
        "token": "tk_abc",
    }

    listed = await running.reply_after(
        user_id, user_id, "/channels", lambda m: has_text(m, "Your channels")
    )
    assert listed.text is not None
    assert "ntfy.example" in listed.text
    assert "my_secret_topic" not in listed.text
    assert "tk_abc" not in listed.text
    await running.reply_after(user_id, user_id, "/push off", lambda m: has_text(m, "🗑"))
    empty = await running.reply_after(
        user_id, user_id, "/channels", lambda m: has_text(m, "no channels")
    )
    assert empty.text is not None
