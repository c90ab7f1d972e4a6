"""The push adapter against the ntfy-like stand-in, over real HTTP: no mocks, no sleeps."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.channels.base import (
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.channels.fallback import Outgoing, PushContact
from gateway.channels.push import (
    PRIORITY_LEVELS,
    PUSH_MAX_BYTES,
    PushChannel,
    header_value,
    push_title,
    validate_push_url,
)
from gateway.outbox_payload import ContentKind, OutboxPayload
from sandbox.push_server import (
    PushServerState,
    TopicMaskingAccessLogger,
    create_push_server_app,
    decode_header_value,
    push_server_state,
)
from storage.enums import Category, Channel, Priority

ServerFactory = Callable[..., Awaitable[TestServer]]

TOPIC = "k3y_Secret-Topic42"
LOCKED = "locked_Topic-77"
TOKEN = "tk_s3cr3tT0kenForTheLockedTopic"
SECRET_TEXT = "Backup of vault 917364 finished"


def outgoing(
    value: Any = SECRET_TEXT,
    *,
    kind: ContentKind = "text",
    hashtags: tuple[str, ...] = (),
    category: Category = Category.SYSTEM,
    priority: Priority = Priority.URGENT,
) -> Outgoing:
    return Outgoing(
        message_id="msg-0002",
        category=category,
        priority=priority,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
        payload=OutboxPayload(kind=kind, value=value, hashtags=hashtags),
    )


def assert_no_secrets(err: ChannelError, *extra: str) -> None:
    text = f"{err} {err.detail} {err.error_class}"
    for secret in (TOPIC, LOCKED, TOKEN, "917364", *extra):
        assert secret not in text


@pytest.fixture
def push_app() -> web.Application:
    return create_push_server_app(protected={LOCKED: TOKEN})


@pytest.fixture
def stand_in(push_app: web.Application) -> PushServerState:
    return push_server_state(push_app)


@pytest.fixture
async def server(aiohttp_server: ServerFactory, push_app: web.Application) -> TestServer:
    return await aiohttp_server(push_app, access_log_class=TopicMaskingAccessLogger)


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def contact(base_url: str) -> PushContact:
    return PushContact(f"{base_url}/{TOPIC}")


@pytest.fixture
async def push() -> AsyncIterator[PushChannel]:
    async with PushChannel(timeout=5, allow_local=True) as channel:
        yield channel


async def fail(push: PushChannel, contact: PushContact, message: Outgoing) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await push.send(contact, message)
    return caught.value


# --- sending -----------------------------------------------------------------------------------


async def test_send_posts_body_title_priority_and_tags(
    push: PushChannel, stand_in: PushServerState, contact: PushContact
) -> None:
    message = outgoing("Backup finished\n\n3 files, 2 GB", hashtags=("backup", "nightly"))

    push_id = await push.send(contact, message)

    async with asyncio.timeout(5):
        [record] = await stand_in.wait_for_messages(1)
    assert push.channel is Channel.PUSH
    assert push_id == record.id
    assert re.fullmatch(r"[A-Za-z0-9]{12}", push_id)
    assert record.topic == TOPIC
    assert record.message == "Backup finished\n\n3 files, 2 GB"
    assert record.title == "Backup finished"
    assert record.priority == 5
    assert record.tags == ("system", "backup", "nightly")
    assert record.token is None


@pytest.mark.parametrize(
    ("priority", "level"),
    [(Priority.LOW, 2), (Priority.NORMAL, 3), (Priority.HIGH, 4), (Priority.URGENT, 5)],
)
async def test_priorities_map_to_ntfy_levels(
    push: PushChannel,
    stand_in: PushServerState,
    contact: PushContact,
    priority: Priority,
    level: int,
) -> None:
    await push.send(contact, outgoing(priority=priority))
    [record] = stand_in.messages
    assert record.priority == level
    assert record.raw_headers["Priority"] == str(level)
    assert PRIORITY_LEVELS[priority] == level


def test_every_priority_has_a_level() -> None:
    assert set(PRIORITY_LEVELS) == set(Priority)


@pytest.mark.parametrize(
    ("category", "hashtags", "tags"),
    [
        (Category.AUTH, (), ("auth", "security")),
        (Category.PAYMENT, ("#Invoice", "invoice"), ("payment", "transaction", "Invoice")),
        (Category.SYSTEM, ("CI/CD", "12"), ("system", "CICD")),
        (Category.GENERAL, ("café", "日本"), ("general", "café", "日本")),
    ],
)
async def test_tags_are_the_hashtags_without_hash(
    push: PushChannel,
    stand_in: PushServerState,
    contact: PushContact,
    category: Category,
    hashtags: tuple[str, ...],
    tags: tuple[str, ...],
) -> None:
    await push.send(contact, outgoing(category=category, hashtags=hashtags))
    [record] = stand_in.messages
    assert record.tags == tags
    assert record.raw_headers["Tags"].isascii()


@pytest.mark.parametrize(
    "title",
    [
        "Plain ASCII title",
        "Überweisung erhalten: 42 €",
        "🔐 Neue Anmeldung — Привет, 世界",
        "Looks =?UTF-8?B?encoded?= but is not",
        "é" * 79,  # long enough to need several encoded words
    ],
)
async def test_titles_round_trip_through_header_encoding(
    push: PushChannel, stand_in: PushServerState, contact: PushContact, title: str
) -> None:
    await push.send(contact, outgoing(f"{title}\nmore text"))
    [record] = stand_in.messages
    assert record.title == title
    raw = record.raw_headers["Title"]
    assert raw.isascii()
    if not title.isascii() or "=?" in title:
        assert raw.startswith("=?UTF-8?B?")
        assert all(len(word) <= 75 for word in raw.split(" "))
    else:
        assert raw == title


def test_header_value_drops_control_characters() -> None:
    assert header_value("a\r\nb\tc\x00d") == "a b c d"
    assert decode_header_value(header_value("ä\r\nö")) == "ä ö"


def test_title_falls_back_to_the_category_name() -> None:
    assert push_title(outgoing("", category=Category.PAYMENT)) == "💰 Payment & Transactions"
    assert push_title(outgoing("  \n  First line  \nsecond")) == "First line"


async def test_long_body_is_cut_to_ntfys_message_limit(
    push: PushChannel, stand_in: PushServerState, contact: PushContact
) -> None:
    text = "Привет мир " * 600  # 2 bytes a letter: well over 4096 bytes
    await push.send(contact, outgoing(text))
    [record] = stand_in.messages
    size = len(record.message.encode("utf-8"))
    assert PUSH_MAX_BYTES - 10 <= size <= PUSH_MAX_BYTES
    assert record.message.endswith("…")
    assert text.startswith(record.message[:-1])


async def test_body_is_plain_text(
    push: PushChannel, stand_in: PushServerState, contact: PushContact
) -> None:
    await push.send(contact, outgoing("**Disk** full on `db1`", kind="markdown"))
    [record] = stand_in.messages
    assert record.message == "Disk full on db1"


async def test_bearer_token_opens_a_protected_topic(
    push: PushChannel, stand_in: PushServerState, base_url: str
) -> None:
    await push.send(PushContact(f"{base_url}/{LOCKED}", TOKEN), outgoing())
    [record] = stand_in.messages
    assert (record.topic, record.token) == (LOCKED, TOKEN)


async def test_a_session_passed_in_is_used_and_left_open(
    stand_in: PushServerState, contact: PushContact
) -> None:
    async with aiohttp.ClientSession() as http:
        channel = PushChannel(http, allow_local=True)
        await channel.send(contact, outgoing())
        await channel.close()
        assert not http.closed
    assert len(stand_in.messages) == 1


async def test_check_has_nothing_deployment_wide(push: PushChannel) -> None:
    await push.check()  # returns None: nothing deployment-wide to check


# --- error classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "token", "status"),
    [
        (LOCKED, None, 403),  # protected topic, no token
        (LOCKED, "tk_wrongTokenXYZ", 401),
        (TOPIC, "tk_unknownTokenABC", 401),  # an unknown token is refused anywhere
    ],
)
async def test_refused_token_or_topic_is_gone(
    push: PushChannel,
    stand_in: PushServerState,
    base_url: str,
    topic: str,
    token: str | None,
    status: int,
) -> None:
    err = await fail(push, PushContact(f"{base_url}/{topic}", token), outgoing())
    assert isinstance(err, DestinationGone)
    assert f"HTTP {status}" in err.detail
    assert_no_secrets(err, *(t for t in (token,) if t))
    assert stand_in.messages == []


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "waits"),
    [
        (429, 30, RateLimited, 30.0),
        (429, None, RateLimited, 0.0),
        (503, 4, RateLimited, 4.0),
        (503, None, Transient, None),
        (500, None, Transient, None),
        (502, None, Transient, None),
        (404, None, DestinationGone, None),
        (401, None, DestinationGone, None),
        (403, None, DestinationGone, None),
        (400, None, Rejected, None),
        (413, None, Rejected, None),
    ],
)
async def test_scripted_failures_are_classified(
    push: PushChannel,
    stand_in: PushServerState,
    contact: PushContact,
    status: int,
    retry_after: float | None,
    error: type[ChannelError],
    waits: float | None,
) -> None:
    stand_in.fail_next(status=status, retry_after=retry_after)

    err = await fail(push, contact, outgoing())

    assert type(err) is error
    assert f"HTTP {status}" in err.detail
    if isinstance(err, RateLimited):
        assert err.retry_after == waits
    assert_no_secrets(err)
    assert await push.send(contact, outgoing())  # the failure was used up


async def test_unreachable_server_is_transient(push: PushChannel, unused_tcp_port: int) -> None:
    err = await fail(push, PushContact(f"http://127.0.0.1:{unused_tcp_port}/{TOPIC}"), outgoing())
    assert isinstance(err, Transient)
    assert_no_secrets(err)


async def test_timeout_is_transient(stand_in: PushServerState, contact: PushContact) -> None:
    stand_in.fail_next(hang=True)
    try:
        async with PushChannel(timeout=0.2, allow_local=True) as channel:
            err = await fail(channel, contact, outgoing())
    finally:
        stand_in.release_hung()
    assert isinstance(err, Transient)
    assert err.error_class == "TimeoutError"
    assert_no_secrets(err)
    # Released: the hung request finishes with its scripted status; a new hang hangs again.
    stand_in.fail_next(hang=True)
    try:
        async with PushChannel(timeout=0.2, allow_local=True) as channel:
            assert isinstance(await fail(channel, contact, outgoing()), Transient)
    finally:
        stand_in.release_hung()


@pytest.mark.parametrize(
    ("url", "token"),
    [
        ("ftp://127.0.0.1/{topic}", None),
        ("http://127.0.0.1/a/{topic}", None),
        ("http://127.0.0.1/{topic}", "tk_with space"),
        ("http://127.0.0.1/{topic}", "tk_newline\r\nX-Injected: 1"),
    ],
)
async def test_unusable_contact_is_gone_without_a_request(
    push: PushChannel, stand_in: PushServerState, url: str, token: str | None
) -> None:
    err = await fail(push, PushContact(url.format(topic=TOPIC), token), outgoing())
    assert isinstance(err, DestinationGone)
    assert_no_secrets(err, "tk_with", "tk_newline")
    assert stand_in.requests == 0


async def test_plain_http_needs_allow_local(
    stand_in: PushServerState, contact: PushContact
) -> None:
    async with PushChannel() as channel:
        err = await fail(channel, contact, outgoing())
    assert isinstance(err, DestinationGone)
    assert stand_in.requests == 0


async def test_empty_text_is_rejected_without_a_request(
    push: PushChannel, stand_in: PushServerState, contact: PushContact
) -> None:
    err = await fail(push, contact, outgoing("<i>  </i>", kind="html"))
    assert isinstance(err, Rejected)
    assert stand_in.requests == 0


async def test_logs_carry_no_topic_token_or_content(
    push: PushChannel,
    stand_in: PushServerState,
    base_url: str,
    contact: PushContact,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        await push.send(contact, outgoing())
        await push.send(PushContact(f"{base_url}/{LOCKED}", TOKEN), outgoing())
        await fail(push, PushContact(f"{base_url}/{LOCKED}", "tk_wrongOne"), outgoing())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "msg-0002" in logged
    assert "POST /<topic> -> 401" in logged  # the stand-in's access log masks topics too
    for secret in (TOPIC, LOCKED, TOKEN, "tk_wrongOne", "917364", base_url):
        assert secret not in logged


# --- URL validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_local", "expected"),
    [
        ("https://ntfy.sh/mytopic", False, "https://ntfy.sh/mytopic"),
        ("  https://ntfy.sh/my_topic-2  ", False, "https://ntfy.sh/my_topic-2"),
        ("HTTPS://NTFY.Example.org/Topic", False, "https://ntfy.example.org/Topic"),
        ("https://ntfy.example.org:8443/t/", False, "https://ntfy.example.org:8443/t"),
        ("https://ntfy.bücher.example/t", False, "https://ntfy.xn--bcher-kva.example/t"),
        ("https://" + "a" * 10 + ".io/" + "x" * 64, False, "https://aaaaaaaaaa.io/" + "x" * 64),
        ("https://9.9.9.9/alerts", False, "https://9.9.9.9/alerts"),
        ("http://localhost:8080/t", True, "http://localhost:8080/t"),
        ("http://127.0.0.1:8080/t", True, "http://127.0.0.1:8080/t"),
        ("http://[::1]:8080/t", True, "http://[::1]:8080/t"),
        ("https://localhost/t", True, "https://localhost/t"),
    ],
)
def test_valid_push_urls(url: str, allow_local: bool, expected: str) -> None:
    assert validate_push_url(url, allow_local=allow_local) == expected


@pytest.mark.parametrize(
    ("url", "allow_local", "hint"),
    [
        ("ntfy.sh/mytopic", False, "https://"),
        ("ftp://ntfy.sh/mytopic", False, "https://"),
        ("http://ntfy.sh/mytopic", False, "must use https://"),
        ("http://ntfy.sh/mytopic", True, "must use https://"),
        ("http://localhost/mytopic", False, "must use https://"),
        ("http://192.168.1.5/mytopic", True, "must use https://"),
        ("https://localhost/mytopic", False, "public server"),
        ("https://127.0.0.1/mytopic", False, "public server"),
        ("https://10.0.0.8/mytopic", False, "public server"),
        ("https://[fe80::1]/mytopic", False, "public server"),
        ("https://ntfy.sh", False, "needs a topic"),
        ("https://ntfy.sh/", False, "needs a topic"),
        ("https://ntfy.sh/a/b", False, "one topic"),
        ("https://ntfy.sh//a", False, "one topic"),
        ("https://ntfy.sh/a//", False, "one topic"),
        ("https://ntfy.sh/bad.topic", False, "letters, digits"),
        ("https://ntfy.sh/with%20space", False, "letters, digits"),
        ("https://ntfy.sh/" + "x" * 65, False, "at most 64"),
        ("https://ntfy.sh/t?auth=abc", False, "no ?query"),
        ("https://ntfy.sh/t#frag", False, "no ?query"),
        ("https://user:pw@ntfy.sh/t", False, "token"),
        ("https:///t", False, "server name"),
        ("https://ntfy_sh/t", False, "server name"),
        ("https://ntfy.sh:99999/t", False, "not a valid URL"),
    ],
)
def test_invalid_push_urls(url: str, allow_local: bool, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)) as caught:
        validate_push_url(url, allow_local=allow_local)
    assert "mytopic" not in str(caught.value)  # never echo the secret topic


# --- the stand-in itself -------------------------------------------------------------------------


async def raw_publish(
    base_url: str, path: str, body: bytes = b"hi", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}{path}", data=body, headers=headers or {}) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        (f"/{TOPIC}", b"hi", {"Priority": "high", "X-Tags": "a, b"}, 200, None),
        (f"/{TOPIC}", b"hi", {"Priority": "9"}, 400, 40007),
        (f"/{TOPIC}", b"x" * 4097, {}, 413, 41301),
        (f"/{TOPIC}", b"\xff\xfe", {}, 400, 40000),
        ("/bad.topic", b"hi", {}, 404, 40401),
        (f"/{LOCKED}", b"hi", {}, 403, 40301),
        (f"/{LOCKED}", b"hi", {"Authorization": "Basic abc"}, 401, 40101),
        (f"/{LOCKED}", b"hi", {"Authorization": f"Bearer {TOKEN}"}, 200, None),
    ],
)
async def test_stand_in_checks_requests(
    base_url: str,
    stand_in: PushServerState,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: int | None,
) -> None:
    got, answer = await raw_publish(base_url, path, body, headers)
    assert got == status
    if code is None:
        assert answer["event"] == "message"
        assert answer["topic"] == path[1:]
        assert answer["message"] == "hi"
        assert isinstance(answer["time"], int)
    else:
        assert (answer["code"], answer["http"]) == (code, status)
        assert stand_in.messages == []


async def test_stand_in_reads_ntfy_header_aliases(base_url: str, stand_in: PushServerState) -> None:
    await raw_publish(base_url, f"/{TOPIC}", headers={"t": "Hi", "p": "min", "ta": "x,y"})
    [record] = stand_in.messages
    assert (record.title, record.priority, record.tags) == ("Hi", 1, ("x", "y"))


async def test_stand_in_control_api(base_url: str, push: PushChannel, contact: PushContact) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base_url}/sandbox/failures", json={"status": 429, "retry_after": 2}
        ) as response:
            assert response.status == 200
        with pytest.raises(RateLimited):
            await push.send(contact, outgoing())

        sent = asyncio.create_task(push.send(contact, outgoing()))
        async with http.get(f"{base_url}/sandbox/messages?count=1&timeout=5") as response:
            [record] = (await response.json())["messages"]
        assert record["id"] == await sent
        assert (record["topic"], record["message"]) == (TOPIC, SECRET_TEXT)

        async with http.delete(f"{base_url}/sandbox/messages") as response:
            assert response.status == 200
        async with http.get(f"{base_url}/sandbox/messages") as response:
            assert (await response.json())["messages"] == []
        async with http.get(f"{base_url}/v1/health") as response:
            assert await response.json() == {"healthy": True}
