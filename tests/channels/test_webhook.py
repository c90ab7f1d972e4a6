"""The webhook channel against the sandbox receiver over real HTTP, and the signing it relies on.

Signatures are checked three ways: by our own verify() (inside the receiver), by the reference
`standardwebhooks` package, and against the published Standard Webhooks test vector.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway import webhook_signing
from gateway.channels.base import ChannelError, DestinationGone, RateLimited, Rejected, Transient
from gateway.channels.fallback import Outgoing, WebhookContact
from gateway.channels.webhook import (
    DEFAULT_SCHEDULE,
    WebhookChannel,
    WebhookConfig,
    parse_schedule,
    validate_endpoint_url,
)
from gateway.outbox_payload import OutboxPayload
from gateway.webhook_signing import SignatureError, new_secret, secret_key, sign, verify
from sandbox.webhook_receiver import (
    ReceivedRequest,
    ReceiverError,
    ScriptedResponse,
    WebhookReceiver,
    WebhookReceiverClient,
    create_webhook_receiver_app,
    webhook_receiver,
)
from storage.enums import Category, Channel, Priority

# The Standard Webhooks reference implementations' published vector. The spec's own text
# (reference/standard-webhooks-1.0.0.md) shows an example signature but not the secret behind
# it, so this is the vector every implementation is tested with.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = new_secret()
URL_TOKEN = "url-token-" + uuid.uuid4().hex  # a secret some receivers put in their URL
TEXT = "Login from a new device"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WAIT = 5.0


def outgoing(message_id: str | None = None, payload: OutboxPayload | None = None) -> Outgoing:
    return Outgoing(
        message_id=message_id or str(uuid.uuid4()),
        category=Category.AUTH,
        priority=Priority.HIGH,
        created_at=CREATED,
        payload=payload or OutboxPayload(kind="text", value=TEXT, hashtags=("login",)),
    )


@pytest.fixture
async def receiver_server(aiohttp_server: Any) -> TestServer:
    app = create_webhook_receiver_app(verifier=webhook_signing.verify)
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.fixture
def receiver(receiver_server: TestServer) -> WebhookReceiver:
    return webhook_receiver(receiver_server.app)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def hooks(receiver_server: TestServer, http: aiohttp.ClientSession) -> WebhookReceiverClient:
    return WebhookReceiverClient(str(receiver_server.make_url("")), http)


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhooks = WebhookChannel(config=WebhookConfig(timeout=WAIT))
    yield webhooks
    await webhooks.close()


def contact(hooks: WebhookReceiverClient, name: str = "alice") -> WebhookContact:
    return WebhookContact(url=f"{hooks.url(name)}?token={URL_TOKEN}", secret=SECRET)


async def configure(
    hooks: WebhookReceiverClient, *responses: ScriptedResponse, name: str = "alice"
) -> None:
    await hooks.configure(name, secret=SECRET, responses=responses)


def reference_verify(request: ReceivedRequest, secret: str = SECRET) -> Any:
    """The `standardwebhooks` package's verdict (it checks against the real time)."""
    return Webhook(secret).verify(request.body, request.headers)


# --- delivery -----------------------------------------------------------------------------------


async def test_a_delivery_is_compact_signed_json_both_verifiers_accept(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    await configure(hooks)
    message = outgoing()

    external_id = await channel.send(contact(hooks), message)

    [request] = await receiver.wait_for("alice", 1, within=WAIT)
    assert external_id == message.message_id
    assert request.verified, request.verify_error
    assert reference_verify(request) == request.json
    assert request.webhook_id == message.message_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("LibralGateway-Webhooks/")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.json == {
        "type": "message.created",
        "timestamp": "2026-01-02T03:04:05Z",
        "data": {
            "message_id": message.message_id,
            "category": "auth",
            "priority": "high",
            "created_at": "2026-01-02T03:04:05Z",
            "hashtags": ["#auth", "#security", "#login"],
            "content": {"kind": "text", "value": TEXT},
        },
    }
    # Compact: the bytes sent (and signed) are the minified JSON.
    assert request.body == json.dumps(
        request.json, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


async def test_json_content_travels_as_json(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    await configure(hooks)
    value = {"build": 42, "ok": False, "steps": ["lint", "test"], "note": "naïve ✓"}
    await channel.send(contact(hooks), outgoing(payload=OutboxPayload("json_data", value)))

    [request] = await receiver.wait_for("alice", 1, within=WAIT)
    assert request.verified, request.verify_error
    assert reference_verify(request)["data"]["content"] == {"kind": "json_data", "value": value}


async def test_every_attempt_carries_the_message_id_so_receivers_can_deduplicate(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    await configure(hooks, ScriptedResponse(503), ScriptedResponse(200))
    message = outgoing()

    with pytest.raises(RateLimited):
        await channel.send(contact(hooks), message)
    await channel.send(contact(hooks), message)

    first, second = await receiver.wait_for("alice", 2, within=WAIT)
    assert first.webhook_id == second.webhook_id == message.message_id
    assert first.body == second.body
    assert first.verified
    assert second.verified
    reference_verify(first)
    reference_verify(second)


async def test_send_test_sends_a_signed_test_event(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    await configure(hooks)

    event_id = await channel.send_test(contact(hooks))

    [request] = await receiver.wait_for("alice", 1, within=WAIT)
    assert request.verified, request.verify_error
    event = reference_verify(request)
    assert event["type"] == "webhook.test"
    assert event["data"]["id"] == request.webhook_id == event_id
    assert event_id.startswith("test_")
    datetime.fromisoformat(event["timestamp"])


async def test_check_has_nothing_deployment_wide_to_check(channel: WebhookChannel) -> None:
    assert channel.channel is Channel.WEBHOOK
    await channel.check()  # returns, raises nothing
    assert channel.request_timeout == WAIT


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_any_2xx_is_success(
    status: int, channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(status))
    message = outgoing()
    assert await channel.send(contact(hooks), message) == message.message_id


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"id": "evt_123"}, "evt_123"),
        ({"id": 987}, "987"),
        ({"id": "x" * 65}, None),  # does not fit external_id: the message id instead
        ({"id": ""}, None),
        ({"received": True}, None),
        (["evt_123"], None),
    ],
)
async def test_the_receivers_id_is_the_external_id_when_it_gives_one(
    answer: Any, expected: str | None, channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(200, body=answer))
    message = outgoing()
    assert await channel.send(contact(hooks), message) == (expected or message.message_id)


async def test_410_means_the_endpoint_is_gone(
    channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(410))
    with pytest.raises(DestinationGone) as caught:
        await channel.send(contact(hooks), outgoing())
    assert caught.value.detail == "endpoint gone (410)"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_throttling_statuses_honour_retry_after_seconds(
    status: int, channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(status, retry_after="7"))
    with pytest.raises(RateLimited) as caught:
        await channel.send(contact(hooks), outgoing())
    assert caught.value.retry_after == 7
    assert caught.value.detail == f"HTTP {status}"


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_as_an_http_date(
    status: int, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    # A fixed clock at the current second, so the signature still verifies.
    now = datetime.fromtimestamp(int(time.time()), UTC)
    webhooks = WebhookChannel(config=WebhookConfig(timeout=WAIT), clock=lambda: now)
    when = format_datetime(now + timedelta(seconds=120), usegmt=True)
    await configure(hooks, ScriptedResponse(status, retry_after=when))
    try:
        with pytest.raises(RateLimited) as caught:
            await webhooks.send(contact(hooks), outgoing())
    finally:
        await webhooks.close()
    assert caught.value.retry_after == 120
    [request] = receiver.requests("alice")
    assert request.verified, request.verify_error


@pytest.mark.parametrize("retry_after", [None, "soon", "-5"])
async def test_throttling_without_a_usable_retry_after_leaves_the_delay_to_the_worker(
    retry_after: str | None, channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(429, retry_after=retry_after))
    with pytest.raises(RateLimited) as caught:
        await channel.send(contact(hooks), outgoing())
    assert caught.value.retry_after == 0


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500, 501, 505])
async def test_other_statuses_are_transient(
    status: int, channel: WebhookChannel, hooks: WebhookReceiverClient
) -> None:
    await configure(hooks, ScriptedResponse(status))
    with pytest.raises(Transient) as caught:
        await channel.send(contact(hooks), outgoing())
    assert caught.value.detail == f"HTTP {status}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(
    status: int,
    channel: WebhookChannel,
    hooks: WebhookReceiverClient,
    receiver: WebhookReceiver,
) -> None:
    # The Location is another hook of the receiver: following it would be recorded there.
    await configure(hooks, ScriptedResponse(status, location="/hooks/elsewhere"))
    with pytest.raises(Transient) as caught:
        await channel.send(contact(hooks), outgoing())
    assert "redirect not followed" in caught.value.detail
    assert len(receiver.requests("alice")) == 1
    assert receiver.requests("elsewhere") == []


async def test_a_receiver_that_stalls_times_out_as_transient(
    hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    webhooks = WebhookChannel(config=WebhookConfig(timeout=0.2))
    await configure(hooks, ScriptedResponse(200, stall=True))
    try:
        with pytest.raises(Transient) as caught:
            await webhooks.send(contact(hooks), outgoing())
    finally:
        await webhooks.close()
    assert caught.value.detail == "request timed out"
    [request] = receiver.requests("alice")
    assert request.stalled


def refused_url() -> str:
    """A localhost URL where nothing listens (a port the OS just handed out and took back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/alice?token={URL_TOKEN}"


async def test_connection_refused_is_transient(channel: WebhookChannel) -> None:
    with pytest.raises(Transient) as caught:
        await channel.send(WebhookContact(refused_url(), SECRET), outgoing())
    assert caught.value.detail == "connection failed"


async def test_unserialisable_content_is_rejected_without_sending(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    await configure(hooks)
    payload = OutboxPayload("json_data", {"value": float("nan")})
    with pytest.raises(Rejected):
        await channel.send(contact(hooks), outgoing(payload=payload))
    assert receiver.requests("alice") == []


async def test_a_malformed_secret_makes_the_endpoint_unusable_without_sending(
    channel: WebhookChannel, hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    broken = WebhookContact(url=hooks.url("alice"), secret="whsec_not base64!")
    with pytest.raises(DestinationGone) as caught:
        await channel.send(broken, outgoing())
    assert "not base64" not in str(caught.value)
    assert receiver.requests("alice") == []


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("410", DestinationGone),
        ("429", RateLimited),
        ("500", Transient),
        ("redirect", Transient),
        ("stall", Transient),
        ("refused", Transient),
        ("bad-url", DestinationGone),
        ("not-http", DestinationGone),
        ("bad-secret", DestinationGone),
    ],
)
async def test_errors_and_logs_never_carry_the_url_the_secret_or_the_content(
    scenario: str,
    kind: type[ChannelError],
    hooks: WebhookReceiverClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    webhooks = WebhookChannel(config=WebhookConfig(timeout=0.2))
    target = contact(hooks)
    responses = {
        "410": ScriptedResponse(410),
        "429": ScriptedResponse(429, retry_after="1"),
        "500": ScriptedResponse(500, body={"error": "boom"}),
        "redirect": ScriptedResponse(307),
        "stall": ScriptedResponse(200, stall=True),
    }
    if scenario in responses:
        await configure(hooks, responses[scenario])
    elif scenario == "refused":
        target = WebhookContact(refused_url(), SECRET)
    elif scenario == "bad-url":
        target = WebhookContact(f"http://127.0.0.1:99999/hooks/a?token={URL_TOKEN}", SECRET)
    elif scenario == "not-http":
        target = WebhookContact(f"ftp://127.0.0.1:2121/hooks/a?token={URL_TOKEN}", SECRET)
    else:
        target = WebhookContact(target.url, SECRET[:-3] + "%%%")
    try:
        with pytest.raises(kind) as caught:
            await webhooks.send(target, outgoing())
    finally:
        await webhooks.close()

    error: ChannelError = caught.value
    # No chained aiohttp exception (whose text names the host) shows in a traceback.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    host = target.url.split("/")[2]
    # The gateway's own log lines (the receiver's access log is the receiver's business).
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
    told = " ".join([str(error), repr(error), error.detail, error.error_class, *logged])
    for secret in (target.url, host, URL_TOKEN, "/hooks/", SECRET, target.secret, TEXT):
        assert secret not in told, f"{secret!r} leaked in {scenario}"


# --- the receiver's own API ---------------------------------------------------------------------


async def test_receiver_records_an_unverifiable_request_and_answers_as_scripted(
    http: aiohttp.ClientSession, hooks: WebhookReceiverClient
) -> None:
    await hooks.configure("bob", secret=SECRET, responses=[ScriptedResponse(503, "3")])
    now = int(time.time())
    wrong = webhook_signing.headers(new_secret(), "msg_1", now, b"{}")
    async with http.post(hooks.url("bob"), data=b"{}", headers=wrong) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "3"
    async with http.post(hooks.url("bob"), data=b"{}") as response:
        assert response.status == 200  # the script is spent

    wrongly_signed, unsigned = await hooks.wait_for("bob", 2, within=WAIT)
    assert not wrongly_signed.verified
    assert wrongly_signed.verify_error == "no matching signature"
    assert wrongly_signed.status == 503
    assert not unsigned.verified
    assert wrongly_signed.json == {}
    assert await hooks.requests("bob") == [wrongly_signed, unsigned]


async def test_receiver_without_a_secret_verifies_nothing(
    http: aiohttp.ClientSession, hooks: WebhookReceiverClient
) -> None:
    body = b'{"a":1}'
    async with http.post(
        hooks.url("carol"), data=body, headers=webhook_signing.headers(SECRET, "m", 1, body)
    ):
        pass
    [request] = await hooks.requests("carol")
    assert request.verify_error == "no secret configured for this hook"


@pytest.mark.parametrize(
    "config",
    [
        {"secret": 5},
        {"responses": {"status": 200}},
        {"responses": [{"status": 99}]},
        {"responses": [{"status": 600}]},
        {"responses": [{"status": "200"}]},
        {"responses": [{"retry_after": -1}]},
        {"responses": [{"stall": "yes"}]},
        {"responses": [{"colour": "red"}]},
    ],
)
async def test_receiver_refuses_a_bad_config(
    config: dict[str, Any], http: aiohttp.ClientSession, hooks: WebhookReceiverClient
) -> None:
    async with http.put(f"{hooks.url('dave')}/config", json=config) as response:
        assert response.status == 400
        assert "error" in await response.json()


async def test_waiting_for_requests_that_never_come_ends(
    hooks: WebhookReceiverClient, receiver: WebhookReceiver
) -> None:
    with pytest.raises(ReceiverError) as caught:
        await hooks.wait_for("erin", 1, within=0)
    assert caught.value.status == 408
    with pytest.raises(TimeoutError):
        await receiver.wait_for("erin", 1, within=0)


# --- signing --------------------------------------------------------------------------------------


def test_the_standard_webhooks_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    reference = Webhook(VECTOR_SECRET).sign(
        VECTOR_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC), VECTOR_BODY.decode()
    )
    assert reference == VECTOR_SIGNATURE
    vector_headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify(VECTOR_SECRET, vector_headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    # Several signatures (a rotation), other schemes and junk among them: one match is enough.
    rotated = {
        **vector_headers,
        "Webhook-Signature": f"v1,bm9wZQ== v1a,AAAA  v1,!!! {VECTOR_SIGNATURE}",
    }
    del rotated["webhook-signature"]
    verify(VECTOR_SECRET, rotated, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_our_signature_satisfies_the_reference_package() -> None:
    body = b'{"type":"message.created","data":{"x":"\xc3\xa9"}}'
    now = int(time.time())
    sent = webhook_signing.headers(SECRET, "msg_ours", now, body)
    assert Webhook(SECRET).verify(body, sent) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, sent)


def test_the_reference_packages_signature_satisfies_ours() -> None:
    body = '{"type":"invoice.paid","data":{"id":"in_1"}}'
    now = datetime.fromtimestamp(int(time.time()), UTC)
    signature = Webhook(SECRET).sign("msg_theirs", now, body)
    received = {
        "webhook-id": "msg_theirs",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    verify(SECRET, received, body.encode(), now=now)
    with pytest.raises(SignatureError):
        verify(new_secret(), received, body.encode(), now=now)


def _vector_headers(**changes: str) -> dict[str, str]:
    base = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    base.update({name.replace("_", "-"): value for name, value in changes.items()})
    return {name: value for name, value in base.items() if value}


@pytest.mark.parametrize(
    ("received", "body", "now", "reason"),
    [
        (_vector_headers(), b'{"test": 2432232315}', VECTOR_TIMESTAMP, "no matching signature"),
        (_vector_headers(webhook_id="msg_other"), VECTOR_BODY, VECTOR_TIMESTAMP, "no matching"),
        (_vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP + 301, "timestamp too old"),
        (_vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP - 301, "timestamp too new"),
        (_vector_headers(webhook_signature=""), VECTOR_BODY, VECTOR_TIMESTAMP, "missing"),
        (_vector_headers(webhook_id=""), VECTOR_BODY, VECTOR_TIMESTAMP, "missing"),
        (_vector_headers(webhook_timestamp="1614265330.0"), VECTOR_BODY, VECTOR_TIMESTAMP, "mal"),
        (_vector_headers(webhook_id="msg.1"), VECTOR_BODY, VECTOR_TIMESTAMP, "malformed"),
        (
            _vector_headers(webhook_signature="v1a," + VECTOR_SIGNATURE[3:]),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "no matching signature",
        ),
    ],
)
def test_verify_refuses(received: dict[str, str], body: bytes, now: int, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(VECTOR_SECRET, received, body, now=now)


def test_verify_tolerance_is_inclusive_and_configurable() -> None:
    verify(VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 300)
    verify(VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP - 300)
    late = VECTOR_TIMESTAMP + 11
    with pytest.raises(SignatureError):
        verify(VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=late, tolerance=10)


@pytest.mark.parametrize("nbytes", [24, 32, 64])
def test_new_secret_sizes(nbytes: int) -> None:
    secret = new_secret(nbytes)
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == nbytes
    assert new_secret(nbytes) != secret
    Webhook(secret)  # the reference package reads it too


def test_new_secret_defaults_to_32_bytes() -> None:
    assert len(secret_key(new_secret())) == 32


@pytest.mark.parametrize("nbytes", [0, 16, 23, 65, 128])
def test_new_secret_refuses_other_sizes(nbytes: int) -> None:
    with pytest.raises(ValueError, match="24 to 64"):
        new_secret(nbytes)


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_", "holds 24 to 64 bytes"),
        ("whsec_not base64!", "base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "base64"),  # truncated
        ("whsec_AAAAAAAAAAAAAAAA", "holds 24 to 64 bytes"),  # 12 bytes
    ],
)
def test_secret_key_explains_a_malformed_secret(secret: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        secret_key(secret)


@pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg\n1", "x" * 257])
def test_sign_refuses_ids_that_would_make_the_signed_content_ambiguous(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        sign(SECRET, msg_id, 1, b"{}")


# --- configuration helpers ------------------------------------------------------------------------


def _td(*seconds: float) -> tuple[timedelta, ...]:
    return tuple(timedelta(seconds=s) for s in seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s,5m,30m,2h,5h,10h,10h", _td(5, 300, 1800, 7200, 18000, 36000, 36000)),
        (" 5s , 5m ", _td(5, 300)),
        ("0.05s,100ms,0.1s", _td(0.05, 0.1, 0.1)),
        ("1d,1H", _td(86400, 3600)),
        ("0s", _td(0)),
    ],
)
def test_parse_schedule(text: str, expected: tuple[timedelta, ...]) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["", " ", "5", "5x", "5s,,5m", "5s,", "-5s", "s", "5 s 5m", "1w"])
def test_parse_schedule_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. \"5s,5m,30m,2h,5h,10h,10h\""):
        parse_schedule(text)


def test_parse_schedule_refuses_too_many_delays() -> None:
    with pytest.raises(ValueError, match="at most"):
        parse_schedule(",".join(["1s"] * 51))


def test_default_schedule() -> None:
    assert _td(5, 300, 1800, 7200, 18000, 36000, 36000) == DEFAULT_SCHEDULE


@pytest.mark.parametrize(
    ("url", "allow_local", "expected"),
    [
        ("https://example.org/hooks/libral", False, "https://example.org/hooks/libral"),
        ("  https://example.org/h?token=abc  ", False, "https://example.org/h?token=abc"),
        ("HTTPS://Example.org:8443/h", False, "HTTPS://Example.org:8443/h"),
        ("https://93.184.216.34/h", False, "https://93.184.216.34/h"),
        ("http://127.0.0.1:8080/hooks/a", True, "http://127.0.0.1:8080/hooks/a"),
        ("http://localhost/hooks/a", True, "http://localhost/hooks/a"),
        ("https://localhost:9000/a", True, "https://localhost:9000/a"),
        ("http://[::1]:9000/a", True, "http://[::1]:9000/a"),
        ("https://example.org/" + "a" * 2028, False, "https://example.org/" + "a" * 2028),
    ],
)
def test_validate_endpoint_url_accepts(url: str, allow_local: bool, expected: str) -> None:
    assert validate_endpoint_url(url, allow_local=allow_local) == expected


@pytest.mark.parametrize(
    ("url", "allow_local", "hint"),
    [
        ("", False, "give your endpoint's URL"),
        ("http://example.org/h", False, "https://"),
        ("http://example.org/h", True, "https://"),
        ("ftp://example.org/h", False, "https://"),
        ("example.org/h", False, "https://"),
        ("https://", False, "name a host"),
        ("https://user:pw@example.org/h", False, "user:password@"),
        ("https://user@example.org/h", False, "user:password@"),
        ("https://exa mple.org/h", False, "spaces"),
        ("https://example.org/h\r\nX: y", False, "control characters"),
        ("https://example.org/" + "a" * 2029, False, "2048"),
        ("https://example.org:99999/h", False, "not a valid URL"),
        ("https://example.org:0/h", False, "port"),
        ("http://127.0.0.1/h", False, "https://"),
        ("https://127.0.0.1/h", False, "not this machine"),
        ("https://localhost/h", False, "not this machine"),
        ("https://api.localhost/h", False, "not this machine"),
        ("https://10.0.0.8/h", False, "private or local"),
        ("https://10.0.0.8/h", True, "private or local"),
        ("https://169.254.169.254/latest", True, "private or local"),
        ("https://[::1]/h", False, "not this machine"),
        ("https://[fd00::1]/h", False, "private or local"),
    ],
)
def test_validate_endpoint_url_refuses_with_a_hint(url: str, allow_local: bool, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        validate_endpoint_url(url, allow_local=allow_local)
