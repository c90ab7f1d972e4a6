"""ContactSetup against a migrated SQLite database, the SMTP stand-in (aiosmtpd, real SMTP) and
the webhook receiver stand-in (real HTTP, Standard Webhooks signatures checked)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
from aiohttp.test_utils import TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import contacts as sealing
from gateway import webhook_signing
from gateway.channels.email import EmailChannel, SmtpConfig
from gateway.channels.webhook import WebhookChannel, WebhookConfig
from gateway.contact_setup import (
    MAX_CODE_ATTEMPTS,
    UNSUBSCRIBED_REASON,
    ContactSetup,
    SetupError,
    mask_email,
    normalise_email,
    normalise_phone,
    url_host,
)
from gateway.content_cipher import ContentCipher
from sandbox.smtp import ReceivedEmail, SmtpStandIn
from sandbox.webhook_receiver import (
    ScriptedResponse,
    WebhookReceiver,
    create_webhook_receiver_app,
    webhook_receiver,
)
from storage.enums import Channel, ContactState
from storage.models import Contact, User
from storage.repositories import contacts

PUBLIC_URL = "https://gateway.example.org"
SENDER = "Libral Gateway <noreply@gateway.example.org>"
ADDRESS = "ada.lovelace@example.org"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_CODE_IN_MAIL = re.compile(r"verification code is (\d{6})")


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def email_channel_for(smtp: SmtpStandIn) -> EmailChannel:
    return EmailChannel(
        SmtpConfig(
            host=smtp.host,
            port=smtp.port,
            username=None,
            password=None,
            security="none",
            sender=SENDER,
            timeout=5.0,
        )
    )


def code_from(received: ReceivedEmail) -> str:
    body = received.message.get_content()
    assert isinstance(body, str)
    match = _CODE_IN_MAIL.search(body)
    assert match is not None, "no code in the verification email"
    return match.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cipher() -> ContentCipher:
    return ContentCipher(b"c" * 32)


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


def hook_url(server: TestServer, name: str) -> str:
    return str(server.make_url(f"/hooks/{name}"))


@pytest.fixture
async def webhooks(clock: Clock) -> AsyncIterator[WebhookChannel]:
    # Signed with the real time: the receiver checks timestamps against its own clock.
    channel = WebhookChannel(config=WebhookConfig(timeout=5.0))
    yield channel
    await channel.close()


@pytest.fixture
def setup(
    cipher: ContentCipher, smtp: SmtpStandIn, webhooks: WebhookChannel, clock: Clock
) -> ContactSetup:
    return ContactSetup(
        cipher,
        email_channel_for(smtp),
        webhooks,
        clock=clock,
        public_url=PUBLIC_URL,
        allow_local_urls=True,
    )


@pytest.fixture
async def user_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=4242)
        session.add(user)
        await session.flush()
        return user.id


async def contact_of(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int, channel: Channel
) -> Contact | None:
    async with sessionmaker() as session:
        return await contacts.of(session, user_id, channel)


async def start(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    address: str = ADDRESS,
) -> str:
    """Ask for a code; the code as it arrived in the stand-in."""
    before = len(smtp.messages)
    async with sessionmaker() as session:
        started = await setup.start_email(session, user_id, address)
    assert not started.already_verified
    received = (await smtp.wait_for(before + 1))[before]
    assert received.recipients == (address,)
    return code_from(received)


async def verify(
    setup: ContactSetup, sessionmaker: async_sessionmaker[AsyncSession], user_id: int, code: str
) -> str:
    async with sessionmaker() as session:
        return await setup.verify_email(session, user_id, code)


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ada@example.org", "ada@example.org"),
        ("  Ada.Lovelace+log@Example.ORG ", "Ada.Lovelace+log@example.org"),
        ("a@bücher.example", "a@xn--bcher-kva.example"),
    ],
)
def test_addresses_are_normalised(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ada",
        "ada@",
        "@example.org",
        "ada@localhost",
        "ada@@example.org",
        "Ada <ada@example.org>",
        "ada smith@example.org",
        ".ada@example.org",
        "ada@-example.org",
        "ada@example.123",
        "x" * 65 + "@example.org",
    ],
)
def test_bad_addresses_are_refused_with_an_example(bad: str) -> None:
    with pytest.raises(SetupError, match=r"/email you@example\.org"):
        normalise_email(bad)


@pytest.mark.parametrize(
    ("given", "e164"),
    [
        ("4915112345678", "+4915112345678"),
        ("+4915112345678", "+4915112345678"),
        ("+1 (555) 123-4567", "+15551234567"),
        ("004915112345678", "+4915112345678"),
    ],
)
def test_phone_numbers_become_e164(given: str, e164: str) -> None:
    assert normalise_phone(given) == e164


@pytest.mark.parametrize("bad", ["", "12345", "+0491511234567", "+49 151 abc", "+" + "1" * 16])
def test_bad_phone_numbers_are_refused(bad: str) -> None:
    with pytest.raises(SetupError):
        normalise_phone(bad)


def test_masks_reveal_no_address() -> None:
    assert mask_email("ada.lovelace@example.org") == "a***@example.org"
    assert url_host("https://hooks.example.org/p/secret-path?token=abc") == "hooks.example.org"
    assert url_host("http://127.0.0.1:8123/hooks/x") == "127.0.0.1:8123"
    assert url_host("https://[2001:db8::1]/t") == "[2001:db8::1]"


# --- email verification -----------------------------------------------------------------------


async def test_email_code_is_mailed_and_verifies(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
) -> None:
    code = await start(setup, sessionmaker, smtp, user_id)
    pending = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert pending is not None
    assert pending.state is ContactState.PENDING
    assert pending.code_expires_at == START + timedelta(minutes=15)
    assert pending.code_attempts == 0
    async with sessionmaker() as session:
        assert Channel.EMAIL not in await contacts.verified_channels(session, user_id)

    assert await verify(setup, sessionmaker, user_id, code) == "a***@example.org"
    verified = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert verified is not None
    assert verified.state is ContactState.VERIFIED
    assert verified.verified_at == START
    assert verified.code_hash is None
    async with sessionmaker() as session:
        assert Channel.EMAIL in await contacts.verified_channels(session, user_id)
        # The worker's view: the sealed data opens into the adapter's contact.
        row = await contacts.of(session, user_id, Channel.EMAIL)
        assert row is not None
        email_contact = sealing.for_channel(setup._cipher, row, PUBLIC_URL)
    assert email_contact.address == ADDRESS  # type: ignore[union-attr]
    assert email_contact.unsubscribe_url.startswith(  # type: ignore[union-attr]
        f"{PUBLIC_URL}/api/v1/communication/unsubscribe/"
    )
    # Asking again for the verified address sends nothing.
    async with sessionmaker() as session:
        again = await setup.start_email(session, user_id, ADDRESS)
    assert again.already_verified
    assert len(smtp.messages) == 1


async def test_the_database_holds_no_address_and_no_code(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
) -> None:
    code = await start(setup, sessionmaker, smtp, user_id)
    async with sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM contacts"))).mappings().all()
    assert len(rows) == 1
    dump = repr(dict(rows[0])).encode()
    for needle in (ADDRESS, "ada.lovelace", "example.org", code):
        assert needle.encode() not in dump
    sealed = rows[0]["sealed"]
    assert isinstance(sealed, bytes)
    assert ADDRESS.encode() not in sealed
    assert rows[0]["code_hash"] == sealing.token_hash(code)


async def test_expired_code_is_refused(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    clock: Clock,
) -> None:
    code = await start(setup, sessionmaker, smtp, user_id)
    clock.advance(minutes=15)
    with pytest.raises(SetupError, match="expired"):
        await verify(setup, sessionmaker, user_id, code)
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.state is ContactState.PENDING
    # A new code works (and the old one no longer does).
    new_code = await start(setup, sessionmaker, smtp, user_id)
    if new_code != code:
        with pytest.raises(SetupError, match="wrong code"):
            await verify(setup, sessionmaker, user_id, code)
    await verify(setup, sessionmaker, user_id, new_code)


async def test_five_wrong_codes_use_up_the_code(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
) -> None:
    code = await start(setup, sessionmaker, smtp, user_id)
    wrong = other_code(code)
    for attempt in range(1, MAX_CODE_ATTEMPTS):
        with pytest.raises(SetupError, match=f"{MAX_CODE_ATTEMPTS - attempt} tr"):
            await verify(setup, sessionmaker, user_id, wrong)
    with pytest.raises(SetupError, match="last try"):
        await verify(setup, sessionmaker, user_id, wrong)
    # Even the right code no longer counts.
    with pytest.raises(SetupError, match="new one"):
        await verify(setup, sessionmaker, user_id, code)
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.state is ContactState.PENDING
    assert contact.code_hash is None
    assert contact.code_attempts == MAX_CODE_ATTEMPTS


async def test_malformed_codes_do_not_count_as_tries(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
) -> None:
    code = await start(setup, sessionmaker, smtp, user_id)
    for bad in ("12345", "1234567", "abcdef", ""):
        with pytest.raises(SetupError, match="/email verify 123456"):
            await verify(setup, sessionmaker, user_id, bad)
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.code_attempts == 0
    await verify(setup, sessionmaker, user_id, code)


async def test_codes_are_not_mailed_more_than_once_a_minute(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    clock: Clock,
) -> None:
    await start(setup, sessionmaker, smtp, user_id)
    clock.advance(seconds=30)
    async with sessionmaker() as session:
        with pytest.raises(SetupError, match="wait"):
            await setup.start_email(session, user_id, "other@example.org")
    assert len(smtp.messages) == 1
    clock.advance(seconds=31)
    await start(setup, sessionmaker, smtp, user_id, "other@example.org")


async def test_reverification_after_bouncing(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    clock: Clock,
) -> None:
    await verify(setup, sessionmaker, user_id, await start(setup, sessionmaker, smtp, user_id))
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    old_unsubscribe = contact.unsubscribe_hash
    async with sessionmaker() as session:  # what the worker does on a 5xx
        await contacts.set_state(
            session, contact.id, ContactState.BOUNCING, "SMTP 550 5.1.1 recipient refused"
        )
        await session.commit()
        (summary,) = await setup.describe_all(session, user_id)
    assert summary.state is ContactState.BOUNCING
    assert summary.reason == "SMTP 550 5.1.1 recipient refused"

    clock.advance(hours=1)
    code = await start(setup, sessionmaker, smtp, user_id)  # the same address: a new code
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.state is ContactState.PENDING
    assert contact.unsubscribe_hash != old_unsubscribe  # a fresh link per verification
    await verify(setup, sessionmaker, user_id, code)
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.state is ContactState.VERIFIED
    assert contact.state_reason is None
    assert contact.verified_at == clock.now


async def test_refused_address_and_missing_email(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    cipher: ContentCipher,
    webhooks: WebhookChannel,
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(SetupError, match="refused this address"):
            await setup.start_email(session, user_id, "bounce@example.org")
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    assert contact.code_hash is None
    # Refused at once: asking again (a corrected address) is not held back.
    await start(setup, sessionmaker, smtp, user_id)

    async with sessionmaker() as session:
        with pytest.raises(SetupError, match="example"):
            await setup.start_email(session, user_id, "not an address")

    no_email = ContactSetup(cipher, None, webhooks, public_url=PUBLIC_URL)
    assert not no_email.email_available
    async with sessionmaker() as session:
        with pytest.raises(SetupError, match="not available"):
            await no_email.start_email(session, user_id, ADDRESS)


# --- one-click unsubscribe --------------------------------------------------------------------


async def unsubscribe_token(
    sessionmaker: async_sessionmaker[AsyncSession], cipher: ContentCipher, user_id: int
) -> str:
    contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
    assert contact is not None
    token = sealing.open_data(cipher, contact)["unsubscribe"]
    assert isinstance(token, str)
    return token


async def test_unsubscribe_is_idempotent(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    cipher: ContentCipher,
) -> None:
    await verify(setup, sessionmaker, user_id, await start(setup, sessionmaker, smtp, user_id))
    token = await unsubscribe_token(sessionmaker, cipher, user_id)
    for _ in range(2):
        async with sessionmaker() as session:
            assert await setup.unsubscribe(session, token)
        contact = await contact_of(sessionmaker, user_id, Channel.EMAIL)
        assert contact is not None
        assert contact.state is ContactState.DISABLED
        assert contact.state_reason == UNSUBSCRIBED_REASON
    async with sessionmaker() as session:
        assert Channel.EMAIL not in await contacts.verified_channels(session, user_id)
        assert not await setup.unsubscribe(session, token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert not await setup.unsubscribe(session, "short")
        assert not await setup.unsubscribe(session, "../../etc/passwd" * 3)
        (summary,) = await setup.describe_all(session, user_id)
    assert summary.state is ContactState.DISABLED
    assert summary.reason == UNSUBSCRIBED_REASON


# --- webhook ----------------------------------------------------------------------------------


async def test_webhook_registration_and_signed_test_event(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    receiver_server: TestServer,
    receiver: WebhookReceiver,
) -> None:
    url = hook_url(receiver_server, "ada") + "?token=path-secret"
    async with sessionmaker() as session:
        secret = await setup.set_webhook(session, user_id, url)
    assert secret.startswith("whsec_")
    webhook_signing.secret_key(secret)  # well-formed, 24..64 bytes
    contact = await contact_of(sessionmaker, user_id, Channel.WEBHOOK)
    assert contact is not None
    assert contact.state is ContactState.VERIFIED
    assert b"path-secret" not in contact.sealed
    assert secret.encode() not in contact.sealed

    receiver.configure("ada", secret=secret)
    async with sessionmaker() as session:
        outcome = await setup.test_webhook(session, user_id)
    assert outcome.startswith("✅")
    (request,) = await receiver.wait_for("ada", 1, within=5)
    assert request.verified, request.verify_error
    assert request.json["type"] == "webhook.test"
    assert request.webhook_id is not None
    assert request.webhook_id.startswith("test_")
    # The reference library agrees with the signature.
    standardwebhooks.Webhook(secret).verify(request.body, request.headers)

    # A new registration rotates the secret.
    async with sessionmaker() as session:
        second = await setup.set_webhook(session, user_id, url)
    assert second != secret


async def test_webhook_test_reports_failures_and_reenables(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    receiver_server: TestServer,
    receiver: WebhookReceiver,
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(SetupError, match="no webhook"):
            await setup.test_webhook(session, user_id)
        secret = await setup.set_webhook(session, user_id, hook_url(receiver_server, "bob"))
    receiver.configure("bob", secret=secret, responses=[ScriptedResponse(status=500)])
    async with sessionmaker() as session:
        outcome = await setup.test_webhook(session, user_id)
    assert outcome.startswith("❌")
    assert "HTTP 500" in outcome

    contact = await contact_of(sessionmaker, user_id, Channel.WEBHOOK)
    assert contact is not None
    async with sessionmaker() as session:
        await contacts.set_state(
            session, contact.id, ContactState.DISABLED, "endpoint gone (410)", failing_since=START
        )
        await session.commit()
        outcome = await setup.test_webhook(session, user_id)
    assert outcome.startswith("✅")
    assert "on again" in outcome
    contact = await contact_of(sessionmaker, user_id, Channel.WEBHOOK)
    assert contact is not None
    assert contact.state is ContactState.VERIFIED
    assert contact.state_reason is None
    assert contact.failing_since is None


async def test_webhook_urls_are_validated(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    cipher: ContentCipher,
    webhooks: WebhookChannel,
) -> None:
    strict = ContactSetup(cipher, None, webhooks, public_url=PUBLIC_URL)
    async with sessionmaker() as session:
        for bad in ("ftp://example.org/x", "http://example.org/hook", "https://user:pw@x.org/"):
            with pytest.raises(SetupError):
                await setup.set_webhook(session, user_id, bad)
        for local in ("http://127.0.0.1:9/hooks/x", "https://10.0.0.1/hook"):
            with pytest.raises(SetupError):
                await strict.set_webhook(session, user_id, local)
    assert await contact_of(sessionmaker, user_id, Channel.WEBHOOK) is None


# --- phone, push, listing, removal ------------------------------------------------------------


async def test_phone_push_listing_and_removal(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpStandIn,
    user_id: int,
    cipher: ContentCipher,
    receiver_server: TestServer,
) -> None:
    await start(setup, sessionmaker, smtp, user_id)
    async with sessionmaker() as session:
        assert await setup.set_phone(session, user_id, "4915112345678") == "number ending in 78"
        await setup.set_webhook(session, user_id, hook_url(receiver_server, "ada"))
        assert (
            await setup.set_push(session, user_id, "https://ntfy.example/my_secret-topic", "tk_1")
            == "ntfy.example"
        )
        with pytest.raises(SetupError, match="https"):
            await setup.set_push(session, user_id, "http://ntfy.example/topic")
        with pytest.raises(SetupError):
            await setup.set_push(session, user_id, "https://ntfy.example/a/b")
        with pytest.raises(SetupError, match="token"):
            await setup.set_push(session, user_id, "https://ntfy.example/topic", "two words")
        summaries = await setup.describe_all(session, user_id)

    shown = {s.channel: (s.state, s.shown) for s in summaries}
    port = receiver_server.port
    assert shown == {
        Channel.EMAIL: (ContactState.PENDING, "a***@example.org"),
        Channel.WEBHOOK: (ContactState.VERIFIED, f"127.0.0.1:{port}"),
        Channel.SMS: (ContactState.VERIFIED, "number ending in 78"),
        Channel.PUSH: (ContactState.VERIFIED, "ntfy.example"),
    }
    everything = repr(summaries)
    for secret in ("ada.lovelace", "4915112345678", "my_secret-topic", "tk_1", "/hooks/"):
        assert secret not in everything

    sms = await contact_of(sessionmaker, user_id, Channel.SMS)
    push = await contact_of(sessionmaker, user_id, Channel.PUSH)
    assert sms is not None
    assert push is not None
    assert sealing.open_data(cipher, sms) == {"phone": "+4915112345678"}
    assert sealing.open_data(cipher, push) == {
        "url": "https://ntfy.example/my_secret-topic",
        "token": "tk_1",
    }
    assert b"4915112345678" not in sms.sealed

    async with sessionmaker() as session:
        assert await setup.remove(session, user_id, Channel.PUSH)
        assert not await setup.remove(session, user_id, Channel.PUSH)
        assert await setup.remove(session, user_id, Channel.EMAIL)
        remaining = {s.channel for s in await setup.describe_all(session, user_id)}
    assert remaining == {Channel.WEBHOOK, Channel.SMS}


async def test_push_without_token_and_unreadable_contacts(
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    webhooks: WebhookChannel,
) -> None:
    async with sessionmaker() as session:
        await setup.set_push(session, user_id, "https://ntfy.example/topic/")
    push = await contact_of(sessionmaker, user_id, Channel.PUSH)
    assert push is not None
    assert sealing.open_data(setup._cipher, push) == {"url": "https://ntfy.example/topic"}
    # Another content key (a misconfiguration) shows a hint instead of failing.
    other = ContactSetup(ContentCipher(b"o" * 32), None, webhooks, public_url=PUBLIC_URL)
    async with sessionmaker() as session:
        (summary,) = await other.describe_all(session, user_id)
    assert "set it again" in summary.shown
