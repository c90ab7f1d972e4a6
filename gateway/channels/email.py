"""Email: one multipart/alternative message per send over SMTP (aiosmtplib), one connection each.

Errors are classified for the worker (gateway.channels.fallback):

- the recipient refused with 5xx (`550 5.1.1` and the like), or the message refused at DATA
  with a 5.1.x/5.2.x status (mailbox unknown, disabled, full): `DestinationGone`, the address
  bounces and is not used again until re-verified;
- any other 5xx at DATA (policy, size, content): `Rejected`, this message cannot go by email but
  the address is fine;
- 4xx anywhere, connection refused or lost, timeouts, TLS failures: `Transient`;
- authentication refused, the sender refused, a missing extension (STARTTLS, AUTH): `Transient`
  too: a deployment problem that the operator can fix within the retry window, not the
  person's; the detail says so.

Details carry the SMTP code and enhanced status only, never the server's text (servers echo the
address back), the address, the content or the credentials.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal

import aiosmtplib

from gateway.channels.base import ChannelError, DestinationGone, Rejected, Transient
from gateway.channels.fallback import EmailContact, Outgoing
from gateway.email_message import (
    InvalidUnsubscribeUrl,
    build_email,
    build_verification_email,
    check_domain,
)
from storage.enums import Channel
from storage.types import utcnow

Clock = Callable[[], datetime]
Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = ("starttls", "tls", "none")

MAX_EXTERNAL_ID = 64  # delivery_attempts.external_id

_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_DEPLOYMENT = "deployment problem, check LIBRAL_SMTP_*"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    security: Security
    sender: str  # the From header, e.g. "Libral Gateway <noreply@example.org>"
    timeout: float = 20.0  # seconds, for a whole send (connect to QUIT)


def _status(code: int, message: str) -> str:
    """`SMTP 550 5.1.1`: the reply code and its enhanced status (RFC 3463), nothing else."""
    enhanced = _ENHANCED.match(message)
    return f"SMTP {code} {'.'.join(enhanced.groups())}" if enhanced else f"SMTP {code}"


def _enhanced_class(message: str) -> tuple[int, int] | None:
    """(class, subject) of an enhanced status such as 5.1.1, if the reply starts with one."""
    enhanced = _ENHANCED.match(message)
    return (int(enhanced.group(1)), int(enhanced.group(2))) if enhanced else None


def classify(exc: Exception) -> ChannelError:
    """An aiosmtplib (or socket) error as the channel-neutral error the worker acts on."""
    name = type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # One recipient per message: its refusal is the whole story.
        if exc.recipients:
            return _recipient(name, exc.recipients[0])
        return Transient(name, "recipient refused")
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _recipient(name, exc)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Transient(
            name, f"{_status(exc.code, exc.message)} authentication failed; {_DEPLOYMENT}"
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Transient(name, f"{_status(exc.code, exc.message)} sender refused; {_DEPLOYMENT}")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        status = _status(exc.code, exc.message)
        if exc.code >= 500:
            if _enhanced_class(exc.message) in {(5, 1), (5, 2)}:
                return DestinationGone(name, f"{status} mailbox refused the message")
            return Rejected(name, f"{status} message refused")
        return Transient(name, f"{status} message deferred")
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError):
        return Transient(name, f"{_status(exc.code, exc.message)} server refused the session")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = "server error" if exc.code >= 500 else "temporary failure"
        return Transient(name, f"{_status(exc.code, exc.message)} {kind}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        if "SMTPUTF8" in exc.message:
            # The address is not ASCII and this server cannot carry it: it never will.
            return DestinationGone(name, "server cannot deliver to a non-ASCII address")
        return Transient(name, f"server lacks a required extension; {_DEPLOYMENT}")
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts and ours
        return Transient(name, "SMTP timed out")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Transient(name, "SMTP server disconnected")
    if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionError):
        return Transient(name, "cannot connect to the SMTP server")
    if isinstance(exc, aiosmtplib.SMTPException):  # e.g. no usable AUTH method offered
        return Transient(name, f"SMTP error; {_DEPLOYMENT}")
    # OSError: ssl.SSLError (certificate, handshake), DNS failure, network unreachable.
    return Transient(name, "SMTP connection failed")


def _recipient(name: str, exc: aiosmtplib.SMTPRecipientRefused) -> ChannelError:
    status = _status(exc.code, exc.message)
    if exc.code >= 500:
        return DestinationGone(name, f"{status} recipient refused")
    return Transient(name, f"{status} recipient deferred")


def external_id(message: EmailMessage) -> str:
    """The Message-ID, or its left part if the whole does not fit the column (the right part is
    the deployment's domain, so nothing is lost)."""
    msg_id = str(message["Message-ID"])
    if len(msg_id) <= MAX_EXTERNAL_ID:
        return msg_id
    return msg_id.strip("<>").rpartition("@")[0][:MAX_EXTERNAL_ID]


def envelope_sender(sender: str) -> tuple[str, str]:
    """(address, domain) of the From header; ValueError if it holds no usable address."""
    address = parseaddr(sender)[1]
    local, at, domain = address.rpartition("@")
    if not (local and at and domain):
        raise ValueError("the SMTP sender (LIBRAL_SMTP_FROM) must be an email address")
    return address, check_domain(domain)


class EmailChannel:
    """Sends through one SMTP server (the deployment's relay), a fresh connection per send."""

    def __init__(self, config: SmtpConfig, *, clock: Clock = utcnow) -> None:
        if config.security not in SECURITY_MODES:
            raise ValueError(f"SMTP security must be one of {', '.join(SECURITY_MODES)}")
        self._config = config
        self._clock = clock
        self._envelope_from, self._domain = envelope_sender(config.sender)

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    @property
    def request_timeout(self) -> int:
        return math.ceil(self._config.timeout)

    async def send(self, contact: EmailContact, outgoing: Outgoing) -> str:
        """Deliver `outgoing` to `contact`; returns the Message-ID (the same on a retry)."""
        try:
            message = build_email(
                outgoing,
                contact,
                sender=self._config.sender,
                domain=self._domain,
                now=self._clock(),
            )
        except InvalidUnsubscribeUrl as exc:
            raise Rejected(type(exc).__name__, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise Rejected(type(exc).__name__, "message cannot be rendered as an email") from None
        await self._deliver(message, contact.address)
        return external_id(message)

    async def send_verification(self, address: str, code: str) -> str:
        """Mail `code` to `address` (not yet verified); returns the Message-ID. Raises the same
        errors as `send` (a 5xx here means the address cannot receive mail)."""
        try:
            message = build_verification_email(
                address, code, sender=self._config.sender, domain=self._domain, now=self._clock()
            )
        except (TypeError, ValueError) as exc:
            raise Rejected(type(exc).__name__, "verification email cannot be built") from None
        await self._deliver(message, address)
        return external_id(message)

    async def check(self) -> None:
        """Connect, greet (and STARTTLS, log in, as configured), QUIT; Transient if that fails."""

        async def greet(client: aiosmtplib.SMTP) -> None:
            if client.last_ehlo_response is None:
                await client.ehlo()

        await self._session(greet)

    async def _deliver(self, message: EmailMessage, recipient: str) -> None:
        async def transfer(client: aiosmtplib.SMTP) -> None:
            await client.send_message(message, sender=self._envelope_from, recipients=[recipient])

        await self._session(transfer)

    def _client(self) -> aiosmtplib.SMTP:
        config = self._config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password if config.username else None,
            use_tls=config.security == "tls",
            # True: STARTTLS or fail (never log in in clear text by surprise); False: never.
            start_tls=config.security == "starttls",
            timeout=config.timeout,
        )

    async def _session(self, work: Callable[[aiosmtplib.SMTP], Awaitable[None]]) -> None:
        """Connect, do `work`, QUIT, all within the configured timeout. Once `work` is done the
        message is the server's: a failing QUIT does not make it a failure."""
        client = self._client()
        done = False
        try:
            async with asyncio.timeout(self._config.timeout):
                await client.connect()
                await work(client)
                done = True
                await client.quit()
        except (aiosmtplib.SMTPException, OSError) as exc:
            # OSError includes TimeoutError, ConnectionError and ssl.SSLError.
            if not done:
                raise classify(exc) from None
        finally:
            client.close()
