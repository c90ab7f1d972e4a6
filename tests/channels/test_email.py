"""The email channel against the aiosmtpd stand-in, over real SMTP; and the pure email builder."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import aiosmtplib
import pytest

from gateway.channels.base import ChannelError, DestinationGone, Rejected, Transient
from gateway.channels.email import (
    EmailChannel,
    SmtpConfig,
    classify,
    envelope_sender,
    external_id,
)
from gateway.channels.fallback import TITLE_LENGTH, EmailContact, Outgoing
from gateway.email_message import (
    CATEGORY_TITLES,
    InvalidUnsubscribeUrl,
    build_email,
    build_verification_email,
    message_id_for,
)
from gateway.outbox_payload import ContentKind, OutboxPayload
from sandbox.smtp import ReceivedEmail, SmtpStandIn
from storage.enums import Category, Priority

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
MSG_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SENDER = "Libral Gateway <noreply@gateway.example.org>"
DOMAIN = "gateway.example.org"
ADDRESS = "person@example.org"
UNSUBSCRIBE = "https://gateway.example.org/api/v1/communication/unsubscribe/" + "Tk3n_-" * 6
USERNAME, PASSWORD = "relay-user", "relay-secret"


def make_outgoing(
    value: object = "Login from a new device\nIP 203.0.113.7",
    *,
    kind: ContentKind = "text",
    category: Category = Category.AUTH,
    hashtags: tuple[str, ...] = ("login",),
    message_id: str = MSG_ID,
) -> Outgoing:
    return Outgoing(
        message_id=message_id,
        category=category,
        priority=Priority.HIGH,
        created_at=NOW - timedelta(minutes=1),
        payload=OutboxPayload(kind=kind, value=value, hashtags=hashtags),
    )


def contact(address: str = ADDRESS, unsubscribe: str = UNSUBSCRIBE) -> EmailContact:
    return EmailContact(address=address, unsubscribe_url=unsubscribe)


def config_for(
    stand_in: SmtpStandIn,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1",
        port=stand_in.port,
        username=username,
        password=password,
        security="none",
        sender=SENDER,
        timeout=timeout,
    )


def channel_for(
    stand_in: SmtpStandIn, *, username: str | None = None, password: str | None = None
) -> EmailChannel:
    config = config_for(stand_in, username=username, password=password)
    return EmailChannel(config, clock=lambda: NOW)


def header_block(raw: bytes) -> list[str]:
    """The raw header lines (folded continuation lines kept separate), as sent on the wire."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return head.split("\r\n")


def parts(message: EmailMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        out[part.get_content_type()] = part.get_content().replace("\r\n", "\n")
    return out


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def smtp_auth() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn(username=USERNAME, password=PASSWORD) as stand_in:
        yield stand_in


async def send_one(smtp: SmtpStandIn, outgoing: Outgoing | None = None) -> ReceivedEmail:
    await channel_for(smtp).send(contact(), outgoing or make_outgoing())
    (received,) = await smtp.wait_for(1)
    return received


# --- what arrives ---------------------------------------------------------------------------


async def test_email_arrives_as_multipart_alternative(smtp: SmtpStandIn) -> None:
    outgoing = make_outgoing("**Login** from a _new_ device\nIP 203.0.113.7", kind="markdown")
    external = await channel_for(smtp).send(contact(), outgoing)
    (received,) = await smtp.wait_for(1)
    msg = received.message

    assert received.mail_from == "noreply@gateway.example.org"
    assert received.recipients == (ADDRESS,)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["MIME-Version"] == "1.0"
    body = parts(msg)
    assert list(body) == ["text/plain", "text/html"]

    plain, html = body["text/plain"], body["text/html"]
    assert plain.startswith("Login from a new device\nIP 203.0.113.7\n")
    assert "<" not in plain.split("-- \n")[0]
    assert html.startswith("<!DOCTYPE html>")
    assert "<b>Login</b> from a <i>new</i> device\nIP 203.0.113.7" in html
    for text in (plain, html):
        assert "#auth #security #login" in text
        assert UNSUBSCRIBE in text

    assert msg["Subject"] == "[Security] Login from a new device"
    assert msg["From"] == SENDER
    assert msg["To"] == ADDRESS
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == f"<{MSG_ID}@{DOMAIN}>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert external == msg["Message-ID"]


async def test_rfc8058_one_click_unsubscribe_headers_on_the_wire(smtp: SmtpStandIn) -> None:
    long_url = UNSUBSCRIBE + "x" * 60  # longer than a folded header line
    await channel_for(smtp).send(contact(unsubscribe=long_url), make_outgoing())
    (received,) = await smtp.wait_for(1)

    lines = header_block(received.raw)
    unsubscribe = [line for line in lines if line.lower().startswith("list-unsubscribe:")]
    post = [line for line in lines if line.lower().startswith("list-unsubscribe-post:")]
    # Exactly one of each, written verbatim: one https URL in angle brackets, not folded and
    # not RFC 2047-encoded (mail clients read this header as it is).
    assert unsubscribe == [f"List-Unsubscribe: <{long_url}>"]
    assert post == ["List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    assert re.fullmatch(r"<https://[^\s<>]+>", received.message["List-Unsubscribe"])
    assert len(received.message.get_all("List-Unsubscribe") or []) == 1
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_message_id_and_parts_on_the_wire(smtp: SmtpStandIn) -> None:
    domain = "notifications.libral-gateway.example.com"  # the header passes 78 characters
    config = SmtpConfig("127.0.0.1", smtp.port, None, None, "none", f"alerts@{domain}")
    await EmailChannel(config).send(contact(), make_outgoing())
    (received,) = await smtp.wait_for(1)
    assert f"Message-ID: <{MSG_ID}@{domain}>" in header_block(received.raw)
    assert received.message["Message-ID"] == f"<{MSG_ID}@{domain}>"
    for part in received.message.iter_parts():
        assert part["MIME-Version"] is None  # only the message as a whole carries it


async def test_nothing_personal_is_logged(
    smtp: SmtpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await send_one(smtp)
    await channel_for(smtp).send_verification(ADDRESS, "123456")
    await smtp.wait_for(2)
    for secret in (ADDRESS, "203.0.113.7", "123456", UNSUBSCRIBE):
        assert secret not in caplog.text


async def test_content_is_escaped_exactly_once(smtp: SmtpStandIn) -> None:
    received = await send_one(smtp, make_outgoing("if a < b && c > d: say \"hi\" 'there'"))
    body = parts(received.message)
    assert "if a < b && c > d: say \"hi\" 'there'" in body["text/plain"]
    assert "if a &lt; b &amp;&amp; c &gt; d" in body["text/html"]
    assert "&amp;lt;" not in body["text/html"]
    assert "&amp;amp;" not in body["text/html"]


async def test_html_content_keeps_its_markup(smtp: SmtpStandIn) -> None:
    received = await send_one(
        smtp, make_outgoing('Paid <a href="https://shop.example/o/7">order 7</a>', kind="html")
    )
    body = parts(received.message)
    assert '<a href="https://shop.example/o/7">order 7</a>' in body["text/html"]
    assert body["text/plain"].startswith("Paid order 7\n")


async def test_json_data_is_sent_as_code(smtp: SmtpStandIn) -> None:
    received = await send_one(
        smtp, make_outgoing({"job": "nightly", "ok": False}, kind="json_data", hashtags=())
    )
    body = parts(received.message)
    assert "<pre><code" in body["text/html"]
    assert '"job": "nightly"' in body["text/plain"]


async def test_a_retry_reuses_the_message_id(smtp: SmtpStandIn) -> None:
    moments = iter([NOW, NOW + timedelta(minutes=5)])
    channel = EmailChannel(config_for(smtp), clock=lambda: next(moments))
    first = await channel.send(contact(), make_outgoing())
    second = await channel.send(contact(), make_outgoing())
    a, b = await smtp.wait_for(2)
    assert first == second == f"<{MSG_ID}@{DOMAIN}>"
    assert a.message["Message-ID"] == b.message["Message-ID"] == first
    assert b.message["Date"].datetime == NOW + timedelta(minutes=5)

    other = await channel_for(smtp).send(contact(), make_outgoing(message_id="another-id"))
    assert other != first


async def test_non_ascii_content_and_subject_survive_the_trip(smtp: SmtpStandIn) -> None:
    text = "Zahlung über 12,50 € erhalten — danke! 🎉\nZweite Zeile"
    received = await send_one(smtp, make_outgoing(text, category=Category.PAYMENT))
    for line in header_block(received.raw):
        assert line.isascii()
    assert received.message["Subject"] == "[Payment] Zahlung über 12,50 € erhalten — danke! 🎉"
    assert parts(received.message)["text/plain"].startswith(text)


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "error", "detail"),
    [
        ("bounce@example.org", DestinationGone, "SMTP 550 5.1.1 recipient refused"),
        ("Bounce.Me@example.org", DestinationGone, "SMTP 550 5.1.1 recipient refused"),
        ("tempfail@example.org", Transient, "SMTP 451 4.3.0 recipient deferred"),
        ("full@example.org", DestinationGone, "SMTP 552 5.2.2 mailbox refused the message"),
        ("spam@example.org", Rejected, "SMTP 554 5.7.1 message refused"),
    ],
)
async def test_server_refusals_are_classified(
    smtp: SmtpStandIn,
    caplog: pytest.LogCaptureFixture,
    address: str,
    error: type[ChannelError],
    detail: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ChannelError) as caught:
        await channel_for(smtp).send(contact(address), make_outgoing())
    assert type(caught.value) is error
    assert caught.value.detail == detail
    assert smtp.messages == []
    assert smtp.refused == 1
    # Neither the error nor any log line names the address or carries the content.
    assert address.split("@")[0] not in str(caught.value)
    assert address not in caplog.text
    assert "203.0.113.7" not in caplog.text


async def test_server_down_is_transient() -> None:
    stand_in = SmtpStandIn()
    await stand_in.start()
    channel = channel_for(stand_in)
    await stand_in.stop()  # nothing listens on that port any more
    with pytest.raises(Transient) as caught:
        await channel.send(contact(), make_outgoing())
    assert caught.value.detail == "cannot connect to the SMTP server"
    with pytest.raises(Transient):
        await channel.check()


async def test_a_server_that_never_answers_times_out() -> None:
    connected, hung_up = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # never greets; returns when the client hangs up
        writer.close()
        await writer.wait_closed()
        hung_up.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = SmtpConfig("127.0.0.1", port, None, None, "none", SENDER, timeout=0.3)
    try:
        with pytest.raises(Transient) as caught:
            await EmailChannel(config).send(contact(), make_outgoing())
        async with asyncio.timeout(5):
            await hung_up.wait()  # the channel closed its connection
    finally:
        server.close()
        await server.wait_closed()
    assert connected.is_set()
    assert caught.value.detail == "SMTP timed out"


async def test_login_with_the_right_password_delivers(smtp_auth: SmtpStandIn) -> None:
    channel = channel_for(smtp_auth, username=USERNAME, password=PASSWORD)
    await channel.check()
    await channel.send(contact(), make_outgoing())
    assert len(await smtp_auth.wait_for(1)) == 1


async def test_a_wrong_password_is_a_transient_deployment_problem(
    smtp_auth: SmtpStandIn,
) -> None:
    channel = channel_for(smtp_auth, username=USERNAME, password="not-it")
    with pytest.raises(Transient) as caught:
        await channel.send(contact(), make_outgoing())
    assert caught.value.error_class == "SMTPAuthenticationError"
    assert caught.value.detail.startswith("SMTP 535")
    assert "authentication failed" in caught.value.detail
    assert "deployment problem" in caught.value.detail
    assert "not-it" not in str(caught.value)
    with pytest.raises(Transient):
        await channel.check()
    assert smtp_auth.messages == []


async def test_no_login_where_the_server_requires_one_is_transient(
    smtp_auth: SmtpStandIn,
) -> None:
    with pytest.raises(Transient) as caught:
        await channel_for(smtp_auth).send(contact(), make_outgoing())
    assert caught.value.detail.startswith("SMTP 530 5.7.0 sender refused")
    assert smtp_auth.messages == []


async def test_a_login_the_server_does_not_offer_is_transient(smtp: SmtpStandIn) -> None:
    channel = channel_for(smtp, username=USERNAME, password=PASSWORD)
    with pytest.raises(Transient) as caught:
        await channel.send(contact(), make_outgoing())
    assert "deployment problem" in caught.value.detail


async def test_stopping_the_stand_in_drops_open_sessions() -> None:
    stand_in = SmtpStandIn()
    await stand_in.start()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=stand_in.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    await stand_in.stop()
    assert not stand_in.running
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    client.close()


async def test_check_passes_against_a_running_server(smtp: SmtpStandIn) -> None:
    await channel_for(smtp).check()
    assert smtp.messages == []  # a check never sends anything


# --- the unsubscribe link ---------------------------------------------------------------------


BAD_UNSUBSCRIBE = [
    "http://gateway.example.org/api/v1/communication/unsubscribe/tok",
    "mailto:unsubscribe@gateway.example.org",
    "javascript:alert(1)",
    "/api/v1/communication/unsubscribe/tok",
    "https:///no-host",
    "https://gateway.example.org/u/a b",
    "https://gateway.example.org/u/<tok>",
    "https://gateway.example.org/u/tok, <https://evil.example/>",
    "https://gateway.example.org/u/tok\r\nBcc: x@evil.example",
    "https://gateway.example.org/u/tök",
]


@pytest.mark.parametrize("url", BAD_UNSUBSCRIBE)
def test_build_email_refuses_a_bad_unsubscribe_url(url: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe URL") as caught:
        build_email(
            make_outgoing(), contact(unsubscribe=url), sender=SENDER, domain=DOMAIN, now=NOW
        )
    assert isinstance(caught.value, InvalidUnsubscribeUrl)
    assert "gateway.example.org" not in str(caught.value)  # the URL carries a token


async def test_send_with_a_non_https_unsubscribe_url_is_rejected(smtp: SmtpStandIn) -> None:
    with pytest.raises(Rejected) as caught:
        await channel_for(smtp).send(contact(unsubscribe=BAD_UNSUBSCRIBE[0]), make_outgoing())
    assert caught.value.detail == "unsubscribe URL must be https (RFC 8058)"
    assert smtp.messages == []


async def test_unrenderable_content_is_rejected_without_sending(smtp: SmtpStandIn) -> None:
    with pytest.raises(Rejected) as caught:
        await channel_for(smtp).send(contact(), make_outgoing(12345))  # text must be a str
    assert caught.value.detail == "message cannot be rendered as an email"
    assert smtp.messages == []


# --- verification -----------------------------------------------------------------------------


async def test_verification_email_carries_the_code(smtp: SmtpStandIn) -> None:
    external = await channel_for(smtp).send_verification(ADDRESS, "123456")
    (received,) = await smtp.wait_for(1)
    msg = received.message
    assert received.recipients == (ADDRESS,)
    assert msg.get_content_type() == "text/plain"
    text = msg.get_content()
    assert "Your Libral Gateway verification code is 123456; it expires in 15 minutes." in text
    assert "/email verify 123456" in text
    assert msg["Subject"] == "Your Libral Gateway verification code"
    assert msg["From"] == SENDER
    assert msg["To"] == ADDRESS
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == external
    assert msg["Message-ID"].endswith(f"@{DOMAIN}>")
    assert msg["List-Unsubscribe"] is None
    assert msg["List-Unsubscribe-Post"] is None


async def test_verification_to_a_bouncing_address_is_destination_gone(smtp: SmtpStandIn) -> None:
    with pytest.raises(DestinationGone):
        await channel_for(smtp).send_verification("bounce-me@example.org", "123456")
    with pytest.raises(Transient):
        await channel_for(smtp).send_verification("tempfail@example.org", "123456")


@pytest.mark.parametrize("code", ["", "123", "12 34 56", "12345\n", "１２３４５６"])
def test_verification_refuses_odd_codes(code: str) -> None:
    with pytest.raises(ValueError, match="verification code"):
        build_verification_email(ADDRESS, code, sender=SENDER, domain=DOMAIN, now=NOW)


def test_verification_validity_is_configurable() -> None:
    msg = build_verification_email(
        ADDRESS, "654321", sender=SENDER, domain=DOMAIN, now=NOW, valid_for=timedelta(hours=1)
    )
    assert "it expires in 60 minutes" in msg.get_content()


# --- the builder, pure ------------------------------------------------------------------------


def build(outgoing: Outgoing) -> EmailMessage:
    return build_email(outgoing, contact(), sender=SENDER, domain=DOMAIN, now=NOW)


@pytest.mark.parametrize(
    ("category", "subject"),
    [
        (Category.AUTH, "[Security] Disk almost full"),
        (Category.PLUGIN, "[Plugin] Disk almost full"),
        (Category.PAYMENT, "[Payment] Disk almost full"),
        (Category.COMMUNICATION, "[Communication] Disk almost full"),
        (Category.SYSTEM, "[System] Disk almost full"),
        (Category.GENERAL, "[General] Disk almost full"),
    ],
)
def test_subject_per_category(category: Category, subject: str) -> None:
    msg = build(make_outgoing("Disk almost full\n/var at 97 %", category=category))
    assert msg["Subject"] == subject


def test_every_category_has_a_title() -> None:
    assert set(CATEGORY_TITLES) == set(Category)


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("\n\n   Backup finished  \nin 3 minutes", "Backup finished"),
        ("x" * TITLE_LENGTH, "x" * TITLE_LENGTH),
        ("y" * (TITLE_LENGTH + 1), "y" * (TITLE_LENGTH - 1) + "…"),
        ("**Bold** start\nmore", "Bold start"),
    ],
)
def test_subject_uses_the_first_line_shortened(text: str, first: str) -> None:
    msg = build(make_outgoing(text, kind="markdown", category=Category.SYSTEM))
    assert msg["Subject"] == f"[System] {first}"


@pytest.mark.parametrize(
    "text",
    [
        "Zahlung über 12,50 € erhalten",
        "Вход с нового устройства",
        "新しいデバイスからのログイン 🔐",
        "é" * 200,
    ],
)
def test_non_ascii_subject_is_encoded_and_decodes_back(text: str) -> None:
    wire = build(make_outgoing(text)).as_bytes(policy=email.policy.SMTP)
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    expected = text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1] + "…"
    assert parsed["Subject"] == f"[Security] {expected}"


def test_hashtags_are_normalised_and_in_both_parts() -> None:
    msg = build(make_outgoing("Paid", category=Category.PAYMENT, hashtags=("#CI/CD", "shop")))
    for text in parts(msg).values():
        assert "#payment #transaction #CICD #shop" in text


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        (MSG_ID, f"<{MSG_ID}@{DOMAIN}>"),
        ("abc.DEF_1-2", f"<abc.DEF_1-2@{DOMAIN}>"),
    ],
)
def test_message_id_is_derived_from_the_message(message_id: str, expected: str) -> None:
    assert message_id_for(message_id, DOMAIN) == expected
    assert build(make_outgoing(message_id=message_id))["Message-ID"] == expected


@pytest.mark.parametrize("message_id", ["has space", "a@b", "<x>", "-leading", "ü", ""])
def test_message_id_of_an_odd_id_is_a_stable_digest(message_id: str) -> None:
    first = message_id_for(message_id, DOMAIN)
    assert first == message_id_for(message_id, DOMAIN)
    assert re.fullmatch(rf"<[0-9a-f]{{40}}@{re.escape(DOMAIN)}>", first)


@pytest.mark.parametrize("domain", ["", "bad domain", "-x.org", "a..b", "ex_ample.org"])
def test_message_id_domain_must_be_a_host_name(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        message_id_for(MSG_ID, domain)


def test_external_id_fits_the_attempts_column() -> None:
    short = build(make_outgoing())
    assert external_id(short) == f"<{MSG_ID}@{DOMAIN}>"
    long_domain = "notifications.libral-gateway.example.com"
    msg = build_email(make_outgoing(), contact(), sender=SENDER, domain=long_domain, now=NOW)
    assert external_id(msg) == MSG_ID


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        (SENDER, ("noreply@gateway.example.org", DOMAIN)),
        ("alerts@mail.example.net", ("alerts@mail.example.net", "mail.example.net")),
    ],
)
def test_envelope_sender(sender: str, expected: tuple[str, str]) -> None:
    assert envelope_sender(sender) == expected


@pytest.mark.parametrize("sender", ["", "Libral Gateway", "noreply@", "@example.org"])
def test_a_sender_without_an_address_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="LIBRAL_SMTP_FROM"):
        EmailChannel(SmtpConfig("localhost", 25, None, None, "none", sender))


def test_password_stays_out_of_repr() -> None:
    config = SmtpConfig("localhost", 587, USERNAME, PASSWORD, "starttls", SENDER)
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("exc", "error", "detail"),
    [
        (
            aiosmtplib.SMTPRecipientRefused(550, "5.1.1 <who@example.org> unknown", "who@x"),
            DestinationGone,
            "SMTP 550 5.1.1 recipient refused",
        ),
        (
            aiosmtplib.SMTPRecipientRefused(550, "no such user who@example.org", "who@x"),
            DestinationGone,
            "SMTP 550 recipient refused",
        ),
        (aiosmtplib.SMTPDataError(451, "4.7.1 greylisted"), Transient, "SMTP 451 4.7.1"),
        (aiosmtplib.SMTPDataError(554, "transaction failed"), Rejected, "SMTP 554"),
        (aiosmtplib.SMTPHeloError(501, "bad helo"), Transient, "SMTP 501"),
        (aiosmtplib.SMTPResponseException(454, "4.7.0 TLS not available"), Transient, "SMTP 454"),
        (aiosmtplib.SMTPServerDisconnected("gone"), Transient, "disconnected"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), Transient, "timed out"),
        (ConnectionRefusedError(111, "refused"), Transient, "cannot connect"),
        (OSError("Name or service not known"), Transient, "connection failed"),
        (
            aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"),
            DestinationGone,
            "non-ASCII address",
        ),
        (aiosmtplib.SMTPNotSupported("STARTTLS not supported"), Transient, "deployment"),
    ],
)
def test_classify(exc: Exception, error: type[ChannelError], detail: str) -> None:
    result = classify(exc)
    assert type(result) is error
    assert detail in result.detail
    assert result.error_class == type(exc).__name__
    assert "who" not in result.detail


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://127.0.0.1:8080/api/v1/communication/unsubscribe/t", True),  # the sandbox
        ("http://localhost:8080/api/v1/communication/unsubscribe/t", True),
        ("http://gateway.example.org/api/v1/communication/unsubscribe/t", False),
        ("https://gateway.example.org/api/v1/communication/unsubscribe/t", True),
    ],
)
def test_plain_http_unsubscribe_links_only_for_a_local_gateway(url: str, accepted: bool) -> None:
    from gateway.email_message import InvalidUnsubscribeUrl, check_unsubscribe_url

    if accepted:
        assert check_unsubscribe_url(url) == url
    else:
        with pytest.raises(InvalidUnsubscribeUrl):
            check_unsubscribe_url(url)
