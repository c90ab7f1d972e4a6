"""Push notifications through an ntfy-compatible server.

One message is one `POST {server}/{topic}` whose body is the plain text (UTF-8, at most
`PUSH_MAX_BYTES`, ntfy's default message limit) with the headers

- `Title`: the first line of the text, or the category's topic name when there is no text;
- `Priority`: 1-5 (`PRIORITY_LEVELS`: low → 2, normal → 3, high → 4, urgent → 5);
- `Tags`: the hashtags without `#`, comma-separated;
- `Authorization: Bearer <token>` when the person's contact has a token.

Header values: HTTP headers are Latin-1 at best, and titles and tags are often not (emoji,
accents). A value that is plain printable ASCII is sent as is; any other value is sent as
RFC 2047 encoded words, `=?UTF-8?B?<base64>?=`, each at most 75 characters and separated by a
space. ntfy decodes every header it reads with Go's `mime.WordDecoder.DecodeHeader`, which joins
adjacent encoded words, so the server shows the original text. Control characters and line
breaks are replaced by spaces first (they could never be in a header).

The answer's JSON `id` is the channel's id for the message. 429 → `RateLimited` (Retry-After,
else 0; 503 with Retry-After too); 401/403/404 → `DestinationGone` (the token or topic stopped
working: only the person can fix it); other 5xx, 3xx, network errors, timeouts → `Transient`;
other 4xx → `Rejected`.

The topic name is a secret (anyone who knows it can read the notifications): it, the URL and the
token never appear in error details or logs.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gateway.channels.base import (
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.channels.fallback import Outgoing, PushContact
from gateway.channels.lazy_session import LazySession
from gateway.channels.public_net import public_session
from gateway.channels.sms import retry_after_seconds
from gateway.topics import TOPICS
from storage.enums import Channel, Priority

log = logging.getLogger("gateway.channels.push")

PRIORITY_LEVELS: dict[Priority, int] = {
    Priority.LOW: 2,
    Priority.NORMAL: 3,
    Priority.HIGH: 4,
    Priority.URGENT: 5,
}
# ntfy's default message-size-limit; a longer body would be turned into an attachment.
PUSH_MAX_BYTES = 4096
ELLIPSIS = "…"

TOPIC_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_HOST_LABELS = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")
_TOKEN = re.compile(r"[\x21-\x7e]+")
# Bytes of UTF-8 per encoded word: base64 of 45 bytes is 60 characters, 72 with `=?UTF-8?B?`
# and `?=`, within RFC 2047's 75.
_WORD_BYTES = 45
_EXAMPLE = "https://ntfy.sh/your-secret-topic"


# --- the person's push URL -------------------------------------------------------------------


def _is_internal(host: str) -> bool:
    """localhost, or an IP literal that is not a public address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not ip.is_global


def validate_push_url(url: str, *, allow_local: bool = False) -> str:
    """`url` as the normalised `{scheme}://{host[:port]}/{topic}`, or ValueError with a hint.

    HTTPS only; plain HTTP is accepted for localhost/127.0.0.1/::1 when `allow_local` (the
    sandbox, tests). Without `allow_local`, localhost and private, loopback or link-local IP
    literals are refused too (the gateway would POST into its own network). The path is exactly
    one non-empty segment, the topic: letters, digits, `-` and `_`, at most 64 characters (a
    single trailing `/` is dropped). No user info, query or fragment. Messages never quote the
    URL: the topic is a secret.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"that is not a valid URL; it should look like {_EXAMPLE}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("https", "http"):
        raise ValueError(f"the push URL must start with https://, like {_EXAMPLE}")
    if not host:
        raise ValueError(f"the push URL needs a server name, like {_EXAMPLE}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "leave the user name and password out of the push URL; set a token instead"
        )
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"the push URL takes no ?query or #fragment, just {_EXAMPLE}")
    local = host in LOCAL_HOSTS
    if scheme == "http" and not (allow_local and local):
        raise ValueError(
            "the push URL must use https://: the topic is a secret, not for clear text"
        )
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(
                f"the push server name is not valid; use one like {_EXAMPLE}"
            ) from None
        if not _HOST_LABELS.fullmatch(host):
            raise ValueError(f"the push server name is not valid; use one like {_EXAMPLE}")
    if not allow_local and _is_internal(host):
        raise ValueError(
            "the push server must be a public server, not localhost or a private address"
        )
    path = parts.path
    if path.endswith("/") and path != "/":
        path = path[:-1]
    segments = path.split("/")[1:] if path.startswith("/") else []
    if not segments or segments == [""]:
        raise ValueError(f"the push URL needs a topic after the server, like {_EXAMPLE}")
    if len(segments) != 1 or not segments[0]:
        raise ValueError(f"the push URL is the server and one topic, like {_EXAMPLE}, nothing more")
    topic = segments[0]
    if not TOPIC_PATTERN.fullmatch(topic):
        raise ValueError(
            "the topic may only use letters, digits, '-' and '_', at most 64 characters"
        )
    netloc = f"[{host}]" if ip is not None and ip.version == 6 else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}/{topic}"


# --- what the notification carries --------------------------------------------------------------


def header_value(text: str) -> str:
    """`text` as a header value any HTTP stack accepts: printable ASCII as is, otherwise RFC 2047
    `=?UTF-8?B?...?=` words (which ntfy decodes). Control characters become spaces."""
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    if cleaned.isascii() and "=?" not in cleaned:
        return cleaned
    words: list[bytes] = []
    chunk = b""
    for ch in cleaned:
        encoded = ch.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def push_title(outgoing: Outgoing) -> str:
    """The first line of the text, or the category's topic name when the text has none."""
    return outgoing.first_line() or TOPICS[outgoing.category].name


def push_tags(outgoing: Outgoing) -> list[str]:
    """The hashtags without their `#`."""
    return [tag.removeprefix("#") for tag in outgoing.hashtags()]


def push_body(outgoing: Outgoing, limit: int = PUSH_MAX_BYTES) -> str:
    """The plain text, at most `limit` bytes of UTF-8 (cut with "…" when longer)."""
    text = outgoing.plain_text().strip()
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[: limit - len(ELLIPSIS.encode("utf-8"))].decode("utf-8", "ignore")
    return cut.rstrip() + ELLIPSIS


def push_headers(outgoing: Outgoing, token: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Title": header_value(push_title(outgoing)),
        "Priority": str(PRIORITY_LEVELS[outgoing.priority]),
    }
    tags = push_tags(outgoing)
    if tags:
        headers["Tags"] = header_value(",".join(tags))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


# --- the answer -------------------------------------------------------------------------------


def _error_code(payload: Any) -> int | None:
    code = payload.get("code") if isinstance(payload, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def classify(status: int, payload: Any, retry_after: float | None) -> ChannelError:
    """The channel error for a non-success answer (reads only the status and ntfy's numeric
    error `code`, never the server's text)."""
    code = _error_code(payload)
    name = f"Ntfy{code}" if code is not None else f"HTTP{status}"
    coded = f"HTTP {status}" + (f", error {code}" if code is not None else "")
    if status == 429:
        return RateLimited(name, f"push server rate limit ({coded})", retry_after or 0.0)
    if status == 503 and retry_after is not None:
        return RateLimited(name, f"push server unavailable ({coded})", retry_after)
    if status == 401:
        return DestinationGone(name, f"the push server refused the token ({coded})")
    if status == 403:
        return DestinationGone(name, f"the push server forbids publishing to the topic ({coded})")
    if status == 404:
        return DestinationGone(name, f"the push server has no such topic ({coded})")
    if status >= 500 or status < 400:
        return Transient(name, f"push server answered {coded}")
    return Rejected(name, f"push server refused the message ({coded})")


ANSWER_LIMIT = 64 * 1024  # a server the person chose may answer anything: read this much


async def _small_json(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON if it is small and readable; None otherwise (never raises)."""
    try:
        raw = await response.content.read(ANSWER_LIMIT)
        return json.loads(raw)
    except (ValueError, aiohttp.ClientError, TimeoutError):
        return None


class PushChannel:
    """FallbackChannel[PushContact]. Uses `session` if given (the caller closes it), else opens
    its own on first use; `close()` closes only a session it opened. `timeout` bounds each
    request (seconds); `allow_local` admits http://localhost URLs (sandbox, tests)."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 10,
        allow_local: bool = False,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._allow_local = allow_local
        # Public addresses only: a push server is whatever the person named.
        self._session = LazySession(
            lambda: public_session(allow_local=allow_local, timeout=self._timeout), session
        )
        self.request_timeout = timeout

    @property
    def channel(self) -> Channel:
        return Channel.PUSH

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> PushChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, contact: PushContact, outgoing: Outgoing) -> str:
        try:
            url = validate_push_url(contact.url, allow_local=self._allow_local)
        except ValueError:
            raise DestinationGone("InvalidPushUrl", "the push URL is not valid") from None
        if contact.token is not None and not _TOKEN.fullmatch(contact.token):
            raise DestinationGone("InvalidPushToken", "the push token is malformed")
        try:
            body = push_body(outgoing)
            headers = push_headers(outgoing, contact.token)
        except (TypeError, ValueError):
            raise Rejected("UnrenderableContent", "the content cannot be shown as text") from None
        if not body:
            raise Rejected("EmptyBody", "the message has no text to push")
        try:
            async with self._session.get().post(
                url,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = retry_after_seconds(response.headers)
                payload = await _small_json(response)
        except TimeoutError:
            raise Transient("TimeoutError", "push server request timed out") from None
        except aiohttp.ClientError as exc:
            # str(exc) may carry the URL, and with it the topic.
            raise Transient(type(exc).__name__, "push server unreachable") from None
        if 200 <= status < 300:
            # Accepted is accepted: a push sent again because its answer was odd is a
            # duplicate on the person's phone.
            push_id = payload.get("id") if isinstance(payload, dict) else None
            external = push_id if isinstance(push_id, str) and push_id else outgoing.message_id
            log.info("message %s pushed as %s", outgoing.message_id, external)
            return external
        error = classify(status, payload, retry_after)
        log.warning("message %s not pushed: %s", outgoing.message_id, error)
        raise error

    async def check(self) -> None:
        """Push servers are the people's own: nothing deployment-wide to check."""
        return
