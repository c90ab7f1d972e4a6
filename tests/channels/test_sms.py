"""The SMS adapter against the Twilio-compatible stand-in, over real HTTP: no mocks, no sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.channels.base import (
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.channels.fallback import Outgoing, SmsContact
from gateway.channels.sms import (
    SMS_MAX_LENGTH,
    SmsChannel,
    SmsConfig,
    retry_after_seconds,
    shorten,
    sms_body,
)
from gateway.outbox_payload import ContentKind, OutboxPayload
from sandbox.sms_api import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    SmsApiState,
    create_sms_api_app,
    segments,
    sms_api_state,
)
from storage.enums import Category, Channel, Priority

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

PHONE = "+4915112345678"
UNREACHABLE = "+4915100000001"
UNSUBSCRIBED = "+4915100000002"
SENDER = "+15005550006"
SECRET_TEXT = "Your one-time code is 917364"


def outgoing(
    value: Any = SECRET_TEXT,
    *,
    kind: ContentKind = "text",
    hashtags: tuple[str, ...] = (),
    category: Category = Category.AUTH,
) -> Outgoing:
    return Outgoing(
        message_id="msg-0001",
        category=category,
        priority=Priority.URGENT,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
        payload=OutboxPayload(kind=kind, value=value, hashtags=hashtags),
    )


def assert_no_secrets(err: ChannelError, *extra: str) -> None:
    text = f"{err} {err.detail} {err.error_class}"
    for secret in (PHONE, UNREACHABLE, UNSUBSCRIBED, DEFAULT_AUTH_TOKEN, DEFAULT_ACCOUNT_SID):
        assert secret not in text
    assert "917364" not in text
    for secret in extra:
        assert secret not in text


@pytest.fixture
def sms_app() -> web.Application:
    return create_sms_api_app(unreachable={UNREACHABLE}, unsubscribed={UNSUBSCRIBED})


@pytest.fixture
def stand_in(sms_app: web.Application) -> SmsApiState:
    return sms_api_state(sms_app)


@pytest.fixture
async def server(aiohttp_server: ServerFactory, sms_app: web.Application) -> TestServer:
    return await aiohttp_server(sms_app)


@pytest.fixture
def api_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def config(api_url: str, **changes: Any) -> SmsConfig:
    values: dict[str, Any] = {
        "api_url": api_url,
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": DEFAULT_AUTH_TOKEN,
        "sender": SENDER,
        "timeout": 5,
    }
    values.update(changes)
    return SmsConfig(**values)


@pytest.fixture
async def sms(api_url: str) -> AsyncIterator[SmsChannel]:
    async with SmsChannel(config(api_url)) as channel:
        yield channel


async def fail(sms: SmsChannel, contact: SmsContact, message: Outgoing) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await sms.send(contact, message)
    return caught.value


# --- sending -----------------------------------------------------------------------------------


async def test_send_posts_the_twilio_form_with_basic_auth(
    sms: SmsChannel, stand_in: SmsApiState
) -> None:
    sid = await sms.send(SmsContact(PHONE), outgoing())

    async with asyncio.timeout(5):
        [record] = await stand_in.wait_for_messages(1)
    assert sms.channel is Channel.SMS
    assert sid == record.sid
    assert sid.startswith("SM")
    assert record.account_sid == DEFAULT_ACCOUNT_SID
    assert (record.to, record.from_, record.body) == (PHONE, SENDER, SECRET_TEXT)
    assert record.num_segments == 1


async def test_body_is_plain_text_without_hashtags(sms: SmsChannel, stand_in: SmsApiState) -> None:
    message = outgoing(
        "**Login** from a new device\n\n- Berlin\n- Firefox",
        kind="markdown",
        hashtags=("security", "login"),
    )
    await sms.send(SmsContact(PHONE), message)

    [record] = stand_in.messages
    assert record.body == "Login from a new device\n\n• Berlin\n• Firefox"
    assert "#" not in record.body
    assert "<b>" not in record.body


async def test_long_body_is_shortened_to_1600_with_an_ellipsis(
    sms: SmsChannel, stand_in: SmsApiState
) -> None:
    long_text = " ".join(f"word{i}" for i in range(1000))
    await sms.send(SmsContact(PHONE), outgoing(long_text))

    [record] = stand_in.messages
    assert len(record.body) <= SMS_MAX_LENGTH
    assert len(record.body) >= SMS_MAX_LENGTH - 10
    assert record.body.endswith("…")
    assert long_text.startswith(record.body[:-1])
    assert record.num_segments > 1


async def test_body_of_exactly_1600_characters_is_not_cut(
    sms: SmsChannel, stand_in: SmsApiState
) -> None:
    await sms.send(SmsContact(PHONE), outgoing("x" * SMS_MAX_LENGTH))
    [record] = stand_in.messages
    assert record.body == "x" * SMS_MAX_LENGTH


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("  padded  ", 10, "padded"),
        ("abcdefghijk", 10, "abcdefghi…"),
        ("abcd efghijk", 6, "abcd…"),  # the space before the cut is dropped
        ("ab😀😀😀", 5, "ab😀…"),  # an emoji is two UTF-16 code units
        ("abcde\u0301fgh", 6, "abcd…"),  # never between a letter and its combining accent
        ("ab👩\u200d💻cdef", 6, "ab…"),  # nor inside a ZWJ sequence
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected


def test_sms_body_is_the_plain_text() -> None:
    assert sms_body(outgoing("<b>Disk</b> full &amp; more", kind="html")) == "Disk full & more"


async def test_a_session_passed_in_is_used_and_left_open(
    api_url: str, stand_in: SmsApiState
) -> None:
    async with aiohttp.ClientSession() as http:
        channel = SmsChannel(config(api_url), session=http)
        await channel.send(SmsContact(PHONE), outgoing())
        await channel.close()
        assert not http.closed
    assert len(stand_in.messages) == 1


# --- error classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "error", "code"),
    [
        ("015112345678", DestinationGone, 21211),  # not E.164
        (UNREACHABLE, DestinationGone, 21614),
        (UNSUBSCRIBED, DestinationGone, 21610),
    ],
)
async def test_numbers_that_cannot_take_sms_are_gone(
    sms: SmsChannel, stand_in: SmsApiState, phone: str, error: type[ChannelError], code: int
) -> None:
    err = await fail(sms, SmsContact(phone), outgoing())

    assert type(err) is error
    assert err.error_class == f"Twilio{code}"
    assert str(code) in err.detail
    assert_no_secrets(err, phone)
    assert stand_in.messages == []


@pytest.mark.parametrize(
    ("status", "retry_after", "code", "error", "waits"),
    [
        (429, 7, None, RateLimited, 7.0),
        (429, None, None, RateLimited, 0.0),
        (503, 3, None, RateLimited, 3.0),
        (503, None, None, Transient, None),
        (500, None, None, Transient, None),
        (502, None, None, Transient, None),
        (403, None, 20003, Transient, None),
        (400, None, 21617, Rejected, None),  # body too long (never sent by the adapter)
        (400, None, 21408, Rejected, None),  # region not enabled
        (404, None, 20404, Rejected, None),
        (413, None, None, Rejected, None),
    ],
)
async def test_scripted_failures_are_classified(
    sms: SmsChannel,
    stand_in: SmsApiState,
    status: int,
    retry_after: float | None,
    code: int | None,
    error: type[ChannelError],
    waits: float | None,
) -> None:
    stand_in.fail_next(status=status, retry_after=retry_after, code=code, route="messages")

    err = await fail(sms, SmsContact(PHONE), outgoing())

    assert type(err) is error
    assert f"HTTP {status}" in err.detail
    if isinstance(err, RateLimited):
        assert err.retry_after == waits
    if status == 403:
        assert "credentials" in err.detail
    assert_no_secrets(err)
    # The failure was used up: the next try goes through.
    assert await sms.send(SmsContact(PHONE), outgoing())


async def test_wrong_credentials_are_a_deployment_problem(
    api_url: str, stand_in: SmsApiState
) -> None:
    wrong_token = "not-the-right-token-4711"
    async with SmsChannel(config(api_url, auth_token=wrong_token)) as channel:
        err = await fail(channel, SmsContact(PHONE), outgoing())

    assert isinstance(err, Transient)
    assert err.error_class == "Twilio20003"
    assert "credentials" in err.detail
    assert "LIBRAL_SMS_AUTH_TOKEN" in err.detail
    assert_no_secrets(err, wrong_token)
    assert stand_in.messages == []


async def test_unreachable_provider_is_transient(unused_tcp_port: int) -> None:
    async with SmsChannel(config(f"http://127.0.0.1:{unused_tcp_port}")) as channel:
        err = await fail(channel, SmsContact(PHONE), outgoing())
        assert isinstance(err, Transient)
        assert_no_secrets(err, str(unused_tcp_port))
        with pytest.raises(Transient):
            await channel.check()


async def test_timeout_is_transient(api_url: str, stand_in: SmsApiState) -> None:
    stand_in.fail_next(hang=True, route="messages")
    try:
        async with SmsChannel(config(api_url, timeout=0.2)) as channel:
            err = await fail(channel, SmsContact(PHONE), outgoing())
    finally:
        stand_in.release_hung()
    assert isinstance(err, Transient)
    assert err.error_class == "TimeoutError"
    assert_no_secrets(err)


async def test_empty_text_is_rejected_without_a_request(
    sms: SmsChannel, stand_in: SmsApiState
) -> None:
    err = await fail(sms, SmsContact(PHONE), outgoing("<b> </b>", kind="html"))
    assert isinstance(err, Rejected)
    assert stand_in.requests == 0


async def test_logs_carry_no_number_body_or_token(
    sms: SmsChannel, stand_in: SmsApiState, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await sms.send(SmsContact(PHONE), outgoing())
        await fail(sms, SmsContact(UNREACHABLE), outgoing())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "msg-0001" in logged
    for secret in (PHONE, UNREACHABLE, DEFAULT_AUTH_TOKEN, "917364"):
        assert secret not in logged


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("12", 12.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        (format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True), 0.0),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    headers = CIMultiDict[str]() if value is None else CIMultiDict({"Retry-After": value})
    assert retry_after_seconds(CIMultiDictProxy(headers)) == expected


def test_retry_after_as_an_http_date_in_the_future() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    waits = retry_after_seconds(CIMultiDictProxy(CIMultiDict({"Retry-After": later})))
    assert waits is not None
    assert 100 < waits <= 120


# --- check ---------------------------------------------------------------------------------------


async def test_check_succeeds_with_good_credentials(sms: SmsChannel, stand_in: SmsApiState) -> None:
    await sms.check()
    assert stand_in.requests == 1
    assert stand_in.messages == []


async def test_check_fails_with_wrong_credentials(api_url: str) -> None:
    async with SmsChannel(config(api_url, auth_token="wrong-token-0815")) as channel:
        with pytest.raises(Transient) as caught:
            await channel.check()
    assert "credentials" in caught.value.detail
    assert_no_secrets(caught.value, "wrong-token-0815")


async def test_check_fails_when_the_provider_is_down(
    sms: SmsChannel, stand_in: SmsApiState
) -> None:
    stand_in.fail_next(status=503, route="account")
    with pytest.raises(Transient) as caught:
        await sms.check()
    assert "503" in caught.value.detail
    await sms.check()


# --- the stand-in itself -------------------------------------------------------------------------


async def post_form(
    api_url: str,
    form: dict[str, str],
    *,
    auth: tuple[str, str] = (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),
    sid: str = DEFAULT_ACCOUNT_SID,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": aiohttp.encode_basic_auth(*auth)}
    url = f"{api_url}/2010-04-01/Accounts/{sid}/Messages.json"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers=headers) as response,
    ):
        return response.status, await response.json()


GOOD_FORM = {"To": PHONE, "From": SENDER, "Body": "hi"}


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        (GOOD_FORM, 201, None),
        ({**GOOD_FORM, "From": "Libral"}, 201, None),  # an alphanumeric sender id
        ({"From": SENDER, "Body": "hi"}, 400, 21604),
        ({"To": PHONE, "Body": "hi"}, 400, 21603),
        ({"To": PHONE, "From": SENDER}, 400, 21602),
        ({**GOOD_FORM, "To": "+0123"}, 400, 21211),
        ({**GOOD_FORM, "From": "not a number!"}, 400, 21212),
        ({**GOOD_FORM, "To": UNREACHABLE}, 400, 21614),
        ({**GOOD_FORM, "To": UNSUBSCRIBED}, 400, 21610),
        ({**GOOD_FORM, "Body": "x" * 1601}, 400, 21617),
    ],
)
async def test_stand_in_validates_the_form(
    api_url: str, form: dict[str, str], status: int, code: int | None
) -> None:
    got, answer = await post_form(api_url, form)
    assert got == status
    if code is None:
        assert answer["status"] == "queued"
        assert (answer["to"], answer["from"], answer["body"]) == (
            form["To"],
            form["From"],
            form["Body"],
        )
    else:
        assert answer["code"] == code
        assert answer["status"] == status
        assert answer["more_info"].endswith(str(code))


@pytest.mark.parametrize(
    ("auth", "sid", "status", "code"),
    [
        ((DEFAULT_ACCOUNT_SID, "wrong"), DEFAULT_ACCOUNT_SID, 401, 20003),
        (("AC" + "1" * 32, DEFAULT_AUTH_TOKEN), DEFAULT_ACCOUNT_SID, 401, 20003),
        ((DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN), "AC" + "2" * 32, 404, 20404),
    ],
)
async def test_stand_in_checks_auth(
    api_url: str, auth: tuple[str, str], sid: str, status: int, code: int
) -> None:
    got, answer = await post_form(api_url, GOOD_FORM, auth=auth, sid=sid)
    assert (got, answer["code"]) == (status, code)


@pytest.mark.parametrize("header", [None, "Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="])
async def test_stand_in_refuses_a_request_without_basic_auth(
    api_url: str, header: str | None
) -> None:
    url = f"{api_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    headers = {"Authorization": header} if header else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=GOOD_FORM, headers=headers) as response,
    ):
        assert response.status == 401
        answer = await response.json()
    assert (answer["code"], answer["message"], answer["status"]) == (20003, "Authenticate", 401)


async def test_stand_in_control_api(api_url: str, sms: SmsChannel) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{api_url}/sandbox/failures", json={"status": 429, "retry_after": 2}
        ) as response:
            assert response.status == 200
        with pytest.raises(RateLimited):
            await sms.send(SmsContact(PHONE), outgoing())

        sent = asyncio.create_task(sms.send(SmsContact(PHONE), outgoing()))
        async with http.get(f"{api_url}/sandbox/messages?count=1&timeout=5") as response:
            [record] = (await response.json())["messages"]
        assert record["sid"] == await sent
        assert (record["to"], record["from"], record["body"]) == (PHONE, SENDER, SECRET_TEXT)

        async with http.delete(f"{api_url}/sandbox/messages") as response:
            assert response.status == 200
        async with http.get(f"{api_url}/sandbox/messages") as response:
            assert (await response.json())["messages"] == []


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("[" * 80, 1),  # extension characters take two septets
        ("[" * 81, 2),
        ("é" * 160, 1),  # in the GSM alphabet
        ("ł" * 70, 1),  # not: UCS-2
        ("ł" * 71, 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
    ],
)
def test_stand_in_counts_segments(body: str, count: int) -> None:
    assert segments(body) == count
