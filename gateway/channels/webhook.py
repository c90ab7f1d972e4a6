"""Outbound webhooks: one signed JSON POST per message to the person's own endpoint.

Signed per Standard Webhooks 1.0.0 (gateway.webhook_signing) with the message id as
`webhook-id`, so a receiver can deduplicate retries. The answer is classified as the spec
suggests:

- 2xx: delivered; the channel's id is the receiver's `id` from a JSON answer, else the message id;
- 410: `DestinationGone` (the worker disables the endpoint);
- 429, 502, 503, 504: `RateLimited` with the `Retry-After` delay (seconds or an HTTP date).
  Without a usable `Retry-After` the delay is 0, which means "no hint from the receiver": the
  worker then waits per its retry schedule (DEFAULT_SCHEDULE), not zero seconds;
- 3xx: `Transient` ("redirect not followed"): redirects are never followed, the person should
  update the URL;
- anything else, a connection error or a timeout: `Transient`.

The endpoint URL may carry a secret (a token in its path or query), so it never appears in a
log line or an error `detail`; neither do the body or the signing secret.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gateway.channels.base import ChannelError, DestinationGone, RateLimited, Rejected, Transient
from gateway.channels.fallback import Outgoing, WebhookContact
from gateway.channels.lazy_session import LazySession
from gateway.channels.public_net import public_session
from gateway.webhook_signing import headers as signed_headers
from storage.enums import Channel
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SessionFactory = Callable[[], aiohttp.ClientSession]

MESSAGE_EVENT = "message.created"
TEST_EVENT = "webhook.test"

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_USER_AGENT = "LibralGateway-Webhooks/1.0 (+https://www.standardwebhooks.com)"
RATE_LIMIT_STATUSES = frozenset({429, 502, 503, 504})
# A receiver cannot park a message for longer than this with Retry-After.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
# We read at most this much of an answer (to look for its `id`), and keep ids that fit the
# delivery_attempts.external_id column.
MAX_ANSWER_BYTES = 16 * 1024
MAX_EXTERNAL_ID = 64

MAX_URL_LENGTH = 2048
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

DEFAULT_SCHEDULE_TEXT = "5s,5m,30m,2h,5h,10h,10h"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DELAY = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_SCHEDULE_HINT = f'e.g. "{DEFAULT_SCHEDULE_TEXT}" (units ms, s, m, h, d)'
MAX_SCHEDULE_ENTRIES = 50


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """A retry schedule: comma-separated delays, one per retry, e.g. "5s,5m,30m,2h".

    Accepts decimals ("0.05s") so tests can compress the schedule; ValueError with a hint
    otherwise.
    """
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise ValueError(f"a retry schedule is comma-separated delays, {_SCHEDULE_HINT}")
    if len(entries) > MAX_SCHEDULE_ENTRIES:
        raise ValueError(f"a retry schedule has at most {MAX_SCHEDULE_ENTRIES} delays")
    delays: list[timedelta] = []
    for entry in entries:
        match = _DELAY.fullmatch(entry.lower())
        if match is None:
            raise ValueError(
                f"bad delay {entry!r} in the retry schedule: a number and a unit, {_SCHEDULE_HINT}"
            )
        delays.append(timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]))
    return tuple(delays)


DEFAULT_SCHEDULE: tuple[timedelta, ...] = parse_schedule(DEFAULT_SCHEDULE_TEXT)


def validate_endpoint_url(url: str, *, allow_local: bool = False) -> str:
    """The endpoint URL (stripped) if the gateway may POST to it; ValueError with a hint if not.

    HTTPS only, to a public host; with `allow_local` (the sandbox) also http:// and https://
    to 127.0.0.1, localhost or [::1]. No user:password@ part; at most 2048 characters. IP
    literals in private, loopback or link-local ranges are refused (a name that resolves to
    one is not caught here).
    """
    url = url.strip()
    example = "e.g. https://example.org/hooks/libral"
    if not url:
        raise ValueError(f"give your endpoint's URL, {example}")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"that is not a valid URL, {example}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        raise ValueError(f"the URL must start with https:// and name a host, {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "remove the user:password@ part: requests are signed, so the URL needs no credentials"
        )
    if port == 0:
        raise ValueError("the URL's port must be between 1 and 65535")
    local = host in LOCAL_HOSTS
    if local and allow_local:
        return url
    if scheme != "https":
        raise ValueError(f"the URL must use https://, {example}")
    if local or host.endswith(".localhost"):
        raise ValueError("the URL must point to a public host, not this machine")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not address.is_global:
        raise ValueError("the URL must point to a public address, not a private or local one")
    return url


def retry_after_seconds(value: str | None, now: datetime) -> float:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date. 0 when absent or
    unusable ("no hint"); capped at MAX_RETRY_AFTER_SECONDS."""
    if value is None:
        return 0.0
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:  # "-0000" dates: UTC by RFC 9110
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def message_event(outgoing: Outgoing) -> dict[str, Any]:
    """The `message.created` event for one message (its timestamp: when the message was
    created, not when this attempt is made)."""
    created = _iso(outgoing.created_at)
    return {
        "type": MESSAGE_EVENT,
        "timestamp": created,
        "data": {
            "message_id": outgoing.message_id,
            "category": outgoing.category.value,
            "priority": outgoing.priority.value,
            "created_at": created,
            "hashtags": outgoing.hashtags(),
            "content": {"kind": outgoing.payload.kind, "value": outgoing.payload.value},
        },
    }


def default_session() -> aiohttp.ClientSession:
    """A session that reaches public addresses only (gateway.channels.public_net), keeps no
    cookies between endpoints and ignores proxy variables."""
    return public_session()


@dataclass(frozen=True)
class WebhookConfig:
    timeout: float = DEFAULT_TIMEOUT_SECONDS  # seconds for a whole attempt, connect to answer
    user_agent: str = DEFAULT_USER_AGENT


class WebhookChannel:
    """Sends webhooks through one aiohttp session, made by `session_factory` on first use and
    closed by `close()`. `clock` gives the attempt's `webhook-timestamp`."""

    def __init__(
        self,
        session_factory: SessionFactory = default_session,
        config: WebhookConfig | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._session = LazySession(session_factory)
        self._config = config or WebhookConfig()
        self._clock = clock

    @property
    def channel(self) -> Channel:
        return Channel.WEBHOOK

    @property
    def request_timeout(self) -> int:
        """The longest one send may take, in whole seconds (for the worker's lease)."""
        return max(1, math.ceil(self._config.timeout))

    async def send(self, contact: WebhookContact, outgoing: Outgoing) -> str:
        try:
            body = _compact(message_event(outgoing))
        except (TypeError, ValueError):
            raise Rejected("ValueError", "content is not serialisable as JSON") from None
        return await self._post(contact, outgoing.message_id, body)

    async def send_test(self, contact: WebhookContact) -> str:
        """A signed `webhook.test` event (for `/webhook test`); its id starts with `test_`."""
        event_id = f"test_{secrets.token_hex(12)}"
        event = {
            "type": TEST_EVENT,
            "timestamp": _iso(self._clock()),
            "data": {"id": event_id, "text": "Test event from Libral Gateway"},
        }
        return await self._post(contact, event_id, _compact(event))

    async def check(self) -> None:
        """Each person has their own endpoint: nothing deployment-wide to check."""

    async def close(self) -> None:
        await self._session.close()

    async def _post(self, contact: WebhookContact, msg_id: str, body: bytes) -> str:
        timestamp = int(self._clock().timestamp())
        try:
            request_headers = signed_headers(contact.secret, msg_id, timestamp, body)
        except ValueError:
            # A malformed stored secret: this endpoint cannot be used until re-registered.
            raise DestinationGone("ValueError", "signing secret is malformed") from None
        request_headers["user-agent"] = self._config.user_agent
        timeout = aiohttp.ClientTimeout(total=self._config.timeout)
        session = self._session.get()
        try:
            async with session.post(
                contact.url,
                data=body,
                headers=request_headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    answer = await self._answer_id(response)
                    return answer or msg_id
                error = self._classify(status, response.headers.get("Retry-After"))
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            # Checked at registration; a stored URL that aiohttp cannot use stays unusable.
            raise DestinationGone("InvalidURL", "endpoint URL is invalid") from None
        except TimeoutError:
            log.info("webhook %s: timed out", msg_id)
            raise Transient("TimeoutError", "request timed out") from None
        except aiohttp.ClientError as exc:
            # str(exc) names the host and port: only the class goes into the detail.
            name = type(exc).__name__
            log.info("webhook %s: %s", msg_id, name)
            raise Transient(name, "connection failed") from None
        log.info("webhook %s: HTTP %d", msg_id, status)
        raise error

    def _classify(self, status: int, retry_after: str | None) -> ChannelError:
        if status == 410:
            return DestinationGone("HTTPGone", "endpoint gone (410)")
        if status in RATE_LIMIT_STATUSES:
            delay = retry_after_seconds(retry_after, self._clock())
            return RateLimited(f"HTTP{status}", f"HTTP {status}", delay)
        if 300 <= status < 400:
            return Transient(f"HTTP{status}", f"redirect not followed (HTTP {status})")
        return Transient(f"HTTP{status}", f"HTTP {status}")

    @staticmethod
    async def _answer_id(response: aiohttp.ClientResponse) -> str | None:
        """The receiver's `id` from a small JSON answer, if it gives one that fits."""
        if response.content_type != "application/json":
            return None
        try:
            raw = bytearray()
            async for chunk in response.content.iter_any():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    return None
            answer = json.loads(raw)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None  # delivered all the same: the status said so
        ident = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if isinstance(ident, str) and 0 < len(ident) <= MAX_EXTERNAL_ID and ident.isprintable():
            return ident
        return None
