"""SMS through a Twilio-compatible REST API.

One message is one `POST {api_url}/2010-04-01/Accounts/{sid}/Messages.json` with the form fields
`To`, `From` and `Body`, authenticated with HTTP basic auth (account sid, auth token). The
provider answers 201 with the message resource; its `sid` is the channel's id for the message.

The body is the message's plain text without hashtags, shortened to `SMS_MAX_LENGTH`
characters. Length is counted in UTF-16 code units, so a text with emoji is cut a little early
rather than rejected by a provider that counts them as two (GSM-7/UCS-2 encoding).

How answers map onto the channel errors (gateway.channels.fallback):

- 429 → `RateLimited` (its Retry-After, else 0); 503 with Retry-After → `RateLimited` too;
- other 5xx, 3xx, network errors, timeouts, an unreadable 2xx → `Transient`;
- 401/403 → `Transient`: the deployment's credentials are wrong, not this message;
- 400 with an error code saying the number cannot take SMS (invalid, not mobile, unreachable,
  unsubscribed by STOP) → `DestinationGone`;
- any other 4xx → `Rejected`.

Error details and logs carry status codes and provider error codes only: never the phone
number, the body, the account sid or the auth token (Twilio's own error `message` quotes the
number, so it is never read).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy

from gateway.channels.base import (
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.channels.fallback import Outgoing, SmsContact
from gateway.channels.lazy_session import LazySession
from storage.enums import Channel

log = logging.getLogger("gateway.channels.sms")

API_VERSION = "2010-04-01"
# Twilio's limit for one (concatenated) message body.
SMS_MAX_LENGTH = 1600
ELLIPSIS = "…"

# Twilio error codes that mean this number cannot receive our SMS: the contact is unusable.
GONE_CODES: dict[int, str] = {
    21211: "the 'To' number is not a valid phone number",
    21214: "the 'To' number cannot be reached",
    21217: "the 'To' number does not appear to be valid",
    21610: "the recipient unsubscribed (replied STOP)",
    21612: "the 'To' number is not reachable via SMS",
    21614: "the 'To' number is not a mobile number",
}
_CREDENTIALS_HINT = (
    "the SMS provider refused the deployment's credentials; "
    "check LIBRAL_SMS_ACCOUNT_SID and LIBRAL_SMS_AUTH_TOKEN"
)


@dataclass(frozen=True)
class SmsConfig:
    """The deployment's SMS account (LIBRAL_SMS_*). `sender` is the `From` number (E.164) or an
    alphanumeric sender id; `timeout` bounds each request, in seconds."""

    api_url: str  # e.g. https://api.twilio.com
    account_sid: str
    auth_token: str = field(repr=False)
    sender: str
    timeout: float = 10


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _joins_previous(text: str, i: int) -> bool:
    """Whether text[i] belongs to the grapheme before it (a cut before it would split one)."""
    ch = text[i]
    if ch == "\u200d" or text[i - 1] == "\u200d":  # zero-width joiner sequences
        return True
    if "\ufe00" <= ch <= "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff":  # selectors, skin tones
        return True
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")


def shorten(text: str, limit: int = SMS_MAX_LENGTH) -> str:
    """`text` stripped and, when longer than `limit` UTF-16 code units, cut (never inside a
    grapheme, trailing spaces dropped) and ended with "…" so the whole fits in `limit`."""
    text = text.strip()
    if sum(_utf16_units(ch) for ch in text) <= limit:
        return text
    budget = limit - len(ELLIPSIS)
    cut = used = 0
    while cut < len(text) and used + _utf16_units(text[cut]) <= budget:
        used += _utf16_units(text[cut])
        cut += 1
    while cut > 0 and _joins_previous(text, cut):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def sms_body(outgoing: Outgoing) -> str:
    """What an SMS carries: the plain text, no hashtags, at most SMS_MAX_LENGTH long."""
    return shorten(outgoing.plain_text())


def retry_after_seconds(headers: CIMultiDictProxy[str]) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date); None if absent/bad."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_code(payload: Any) -> int | None:
    code = payload.get("code") if isinstance(payload, dict) else None
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    try:
        return int(code)
    except ValueError:
        return None


def classify(status: int, payload: Any, headers: CIMultiDictProxy[str]) -> ChannelError:
    """The channel error for a non-success answer; reads only the status, Twilio's numeric
    error `code` and Retry-After (never the error message: it quotes the number)."""
    code = _error_code(payload)
    name = f"Twilio{code}" if code is not None else f"HTTP{status}"
    coded = f"HTTP {status}" + (f", error {code}" if code is not None else "")
    retry_after = retry_after_seconds(headers)
    if status == 429:
        return RateLimited(name, f"SMS provider rate limit ({coded})", retry_after or 0.0)
    if status == 503 and retry_after is not None:
        return RateLimited(name, f"SMS provider unavailable ({coded})", retry_after)
    if status in (401, 403):
        return Transient(name, f"{_CREDENTIALS_HINT} ({coded})")
    if status >= 500 or status < 400:
        return Transient(name, f"SMS provider answered {coded}")
    if code in GONE_CODES:
        return DestinationGone(name, f"{GONE_CODES[code]} ({coded})")
    return Rejected(name, f"SMS provider refused the message ({coded})")


async def _read_json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:  # includes json.JSONDecodeError and aiohttp's ContentTypeError
        return None


class SmsChannel:
    """FallbackChannel[SmsContact]. Uses `session` if given (the caller closes it), else opens
    its own on first use; `close()` closes only a session it opened."""

    def __init__(self, config: SmsConfig, *, session: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._base = config.api_url.rstrip("/")
        self._account = f"{self._base}/{API_VERSION}/Accounts/{quote(config.account_sid, safe='')}"
        self._auth = {
            "Authorization": aiohttp.encode_basic_auth(config.account_sid, config.auth_token)
        }
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._session = LazySession(lambda: aiohttp.ClientSession(timeout=self._timeout), session)

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    @property
    def request_timeout(self) -> float:
        """The longest one `send` may take, in seconds."""
        return self._config.timeout

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> SmsChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, contact: SmsContact, outgoing: Outgoing) -> str:
        try:
            body = sms_body(outgoing)
        except (TypeError, ValueError):
            raise Rejected("UnrenderableContent", "the content cannot be shown as text") from None
        if not body:
            raise Rejected("EmptyBody", "the message has no text to send by SMS")
        form = {"To": contact.phone, "From": self._config.sender, "Body": body}
        try:
            async with self._session.get().post(
                f"{self._account}/Messages.json",
                data=form,
                headers=self._auth,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                payload = await _read_json(response)
                headers = response.headers
        except TimeoutError:
            raise Transient("TimeoutError", "SMS provider request timed out") from None
        except aiohttp.ClientError as exc:
            # str(exc) may name the URL; the class name is enough to act on.
            raise Transient(type(exc).__name__, "SMS provider unreachable") from None
        if 200 <= status < 300:
            # Accepted is accepted: sending again because the answer lacks its sid would make
            # the person pay for (and read) the same SMS twice.
            sid = payload.get("sid") if isinstance(payload, dict) else None
            external = sid if isinstance(sid, str) and sid else outgoing.message_id
            log.info("message %s sent by SMS as %s", outgoing.message_id, external)
            return external
        error = classify(status, payload, headers)
        log.warning("message %s not sent by SMS: %s", outgoing.message_id, error)
        raise error

    async def check(self) -> None:
        """GET the account resource: 200 means the API is reachable and the credentials work."""
        try:
            async with self._session.get().get(
                f"{self._account}.json",
                headers=self._auth,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
        except TimeoutError:
            raise Transient("TimeoutError", "SMS provider request timed out") from None
        except aiohttp.ClientError as exc:
            raise Transient(type(exc).__name__, "SMS provider unreachable") from None
        if status == 200:
            return
        if status in (401, 403):
            raise Transient(f"HTTP{status}", f"{_CREDENTIALS_HINT} (HTTP {status})")
        raise Transient(f"HTTP{status}", f"SMS provider account check answered HTTP {status}")
