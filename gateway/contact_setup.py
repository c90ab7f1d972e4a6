"""Setting up a person's channels besides Telegram: email (verified with a mailed code), an
outbound webhook, a phone number for SMS and a push URL; listing them masked; and the one-click
email unsubscribe.

The bot calls this service (and the HTTP API its `unsubscribe`); each method takes the caller's
session and commits itself before it returns, so what a reply announces is already durable, and
an email code is committed before it is mailed. Every failure the person can fix raises
`SetupError` with a one-line hint (plain text, no HTML).

Addresses, phone numbers, URLs, push topics and secrets are sealed in `contacts.sealed`
(gateway.contacts) and never logged; log lines carry user and contact ids only. An email code is
stored as its SHA-256 only, valid for 15 minutes and for `MAX_CODE_ATTEMPTS` wrong tries.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import contacts as sealing
from gateway.channels.base import ChannelError, DestinationGone, RateLimited, Rejected
from gateway.channels.email import EmailChannel
from gateway.channels.fallback import WebhookContact
from gateway.channels.push import validate_push_url
from gateway.channels.webhook import WebhookChannel, validate_endpoint_url
from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.email_message import VERIFICATION_VALIDITY
from gateway.webhook_signing import new_secret
from storage.enums import Channel, ContactState
from storage.models import Contact
from storage.repositories import contacts
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

CODE_DIGITS = 6
CODE_VALIDITY = VERIFICATION_VALIDITY  # 15 minutes, as the verification email says
MAX_CODE_ATTEMPTS = 5
# A new code for the same person at most this often (mail to someone else's address is the
# abuse to limit); a code that could not be sent does not count.
RESEND_INTERVAL = timedelta(seconds=60)
UNSUBSCRIBED_REASON = "unsubscribed by one-click link"
MAX_TOKEN_LENGTH = 256

EMAIL_EXAMPLE = "/email you@example.org"
VERIFY_EXAMPLE = "/email verify 123456"

# A pragmatic address check: one @, a dot-atom local part (ASCII), a domain of labels with a
# dot. Deliverability is what the mailed code proves.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
_PUSH_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_URL_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")


class SetupError(ValueError):
    """The person's input or the deployment keeps a setup from happening; the message is a
    one-line hint for them (plain text; escape it for HTML)."""


@dataclass(frozen=True)
class EmailStarted:
    shown: str  # the masked address, e.g. a***@example.org
    already_verified: bool  # the same address was verified already: no code was sent
    expires_at: datetime | None  # when the mailed code stops counting


@dataclass(frozen=True)
class ContactSummary:
    """One contact as the person may see it in a list: never an address in full."""

    channel: Channel
    state: ContactState
    reason: str | None
    shown: str  # masked address, host, or the last digits of a phone number


# --- pure helpers -------------------------------------------------------------------------------


def normalise_email(text: str) -> str:
    """The address as stored (domain lower-cased), or SetupError with a hint."""
    text = text.strip()
    hint = f"that does not look like an email address; send e.g. {EMAIL_EXAMPLE}"
    if not text or len(text) > 254 or parseaddr(text)[1] != text:
        raise SetupError(hint)
    local, at, domain = text.rpartition("@")
    if not at or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise SetupError(hint)
    try:
        domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise SetupError(hint) from None
    if not _DOMAIN.fullmatch(domain):
        raise SetupError(hint)
    return f"{local}@{domain}"


def normalise_phone(text: str) -> str:
    """A phone number as E.164 (`+4915112345678`). Telegram's contact sharing gives the digits
    with or without `+`; `00` as the international prefix is accepted too."""
    number = _PHONE_NOISE.sub("", text.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    elif not number.startswith("+"):
        number = "+" + number
    if not _E164.fullmatch(number):
        raise SetupError("that is not a phone number in international format (e.g. +4915112345678)")
    return number


def mask_email(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    return f"number ending in {phone[-2:]}"


def url_host(url: str) -> str:
    """Only the host (and a port) of a URL: paths and queries may hold secrets."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _mask(channel: Channel, data: dict[str, Any]) -> str:
    if channel is Channel.EMAIL:
        return mask_email(str(data["address"]))
    if channel is Channel.SMS:
        return mask_phone(str(data["phone"]))
    if channel in (Channel.WEBHOOK, Channel.PUSH):
        return url_host(str(data["url"]))
    return "?"


def _code_hash(code: str) -> str:
    return sealing.token_hash(code)


# --- the service --------------------------------------------------------------------------------


class ContactSetup:
    """`email` is None when this deployment has no SMTP relay configured; `allow_local_urls`
    admits http://localhost webhook and push URLs (the sandbox)."""

    def __init__(
        self,
        cipher: ContentCipher,
        email: EmailChannel | None,
        webhook: WebhookChannel,
        *,
        clock: Clock = utcnow,
        public_url: str,
        allow_local_urls: bool = False,
    ) -> None:
        self._cipher = cipher
        self._email = email
        self._webhook = webhook
        self._clock = clock
        self._public_url = public_url
        self._allow_local = allow_local_urls
        if email is not None and not public_url.lower().startswith("https://"):
            # build_email refuses non-https List-Unsubscribe links (RFC 8058).
            log.warning("LIBRAL_PUBLIC_URL is not https: emails cannot carry unsubscribe links")

    @property
    def email_available(self) -> bool:
        return self._email is not None

    def _seal(self, user_id: int, channel: Channel, data: dict[str, Any]) -> bytes:
        return sealing.seal(self._cipher, user_id, channel, data)

    def _open(self, contact: Contact) -> dict[str, Any] | None:
        try:
            return sealing.open_data(self._cipher, contact)
        except ContentDecryptError:
            log.warning("contact %s of user %s does not open", contact.id, contact.user_id)
            return None

    async def _upsert(
        self, session: AsyncSession, user_id: int, channel: Channel, data: dict[str, Any]
    ) -> Contact:
        """The person's contact on `channel` holding `data`, verified now, nothing pending."""
        now = self._clock()
        contact = await contacts.of(session, user_id, channel)
        if contact is None:
            contact = Contact(user_id=user_id, channel=channel, code_attempts=0)
            session.add(contact)
        contact.sealed = self._seal(user_id, channel, data)
        contact.state = ContactState.VERIFIED
        contact.verified_at = now
        contact.state_reason = None
        contact.failing_since = None
        contact.code_hash = None
        contact.code_expires_at = None
        contact.code_attempts = 0
        contact.unsubscribe_hash = None
        await session.flush()
        return contact

    # --- email ----------------------------------------------------------------------------------

    async def start_email(self, session: AsyncSession, user_id: int, address: str) -> EmailStarted:
        """Store `address` as pending and mail it a fresh code (committed before it is sent)."""
        if self._email is None:
            raise SetupError("email is not available on this gateway (no mail server configured)")
        address = normalise_email(address)
        now = self._clock()
        contact = await contacts.of(session, user_id, Channel.EMAIL)
        if contact is not None:
            data = self._open(contact)
            same = data is not None and data.get("address") == address
            if same and contact.state is ContactState.VERIFIED:
                return EmailStarted(mask_email(address), already_verified=True, expires_at=None)
            if (
                contact.code_hash is not None
                and contact.code_expires_at is not None
                and contact.code_expires_at - CODE_VALIDITY + RESEND_INTERVAL > now
            ):
                raise SetupError(
                    "a code was mailed less than a minute ago; wait a moment before asking again"
                )
        else:
            contact = Contact(user_id=user_id, channel=Channel.EMAIL)
            session.add(contact)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        token, token_hash = sealing.new_unsubscribe_token()
        expires_at = now + CODE_VALIDITY
        contact.sealed = self._seal(
            user_id, Channel.EMAIL, {"address": address, "unsubscribe": token}
        )
        contact.state = ContactState.PENDING
        contact.state_reason = None
        contact.failing_since = None
        contact.verified_at = None
        contact.code_hash = _code_hash(code)
        contact.code_expires_at = expires_at
        contact.code_attempts = 0
        contact.unsubscribe_hash = token_hash
        await session.commit()  # the code counts before it can arrive
        contact_id = contact.id
        try:
            await self._email.send_verification(address, code)
        except ChannelError as error:
            # The code never arrived: forget it, so that asking again is not held back.
            contact.code_hash = None
            contact.code_expires_at = None
            await session.commit()
            log.info(
                "verification email for contact %s of user %s not sent: %s",
                contact_id,
                user_id,
                error.error_class,
            )
            if isinstance(error, DestinationGone | Rejected):
                raise SetupError(
                    f"the mail server refused this address ({error.detail}); check it and try again"
                ) from None
            raise SetupError(
                "the verification email could not be sent right now; try again in a few minutes"
            ) from None
        log.info("verification code mailed for contact %s of user %s", contact_id, user_id)
        return EmailStarted(mask_email(address), already_verified=False, expires_at=expires_at)

    async def verify_email(self, session: AsyncSession, user_id: int, code: str) -> str:
        """Check the mailed code; the masked address once it is verified."""
        code = code.strip()
        if not _CODE.fullmatch(code):
            raise SetupError(
                f"the code is the {CODE_DIGITS} digits from the email: {VERIFY_EXAMPLE}"
            )
        contact = await contacts.of(session, user_id, Channel.EMAIL)
        if contact is None:
            raise SetupError(f"add an address first: {EMAIL_EXAMPLE}")
        data = self._open(contact)
        if data is None:
            raise SetupError(f"set your address again: {EMAIL_EXAMPLE}")
        shown = mask_email(str(data["address"]))
        if contact.state is ContactState.VERIFIED:
            return shown
        if contact.code_hash is None or contact.code_expires_at is None:
            raise SetupError(f"there is no code waiting; ask for a new one: {EMAIL_EXAMPLE}")
        if contact.code_attempts >= MAX_CODE_ATTEMPTS:
            raise SetupError(f"too many wrong codes; ask for a new one: {EMAIL_EXAMPLE}")
        if self._clock() >= contact.code_expires_at:
            raise SetupError(f"that code has expired; ask for a new one: {EMAIL_EXAMPLE}")
        if not hmac.compare_digest(_code_hash(code), contact.code_hash):
            contact.code_attempts += 1
            left = MAX_CODE_ATTEMPTS - contact.code_attempts
            if left <= 0:
                contact.code_hash = None
                contact.code_expires_at = None
            await session.commit()
            log.info("wrong email code for contact %s of user %s", contact.id, user_id)
            if left <= 0:
                raise SetupError(
                    f"wrong code, and that was the last try; ask for a new one: {EMAIL_EXAMPLE}"
                )
            raise SetupError(f"wrong code; {left} {'try' if left == 1 else 'tries'} left")
        contact.state = ContactState.VERIFIED
        contact.verified_at = self._clock()
        contact.state_reason = None
        contact.failing_since = None
        contact.code_hash = None
        contact.code_expires_at = None
        contact.code_attempts = 0
        await session.commit()
        log.info("email contact %s of user %s verified", contact.id, user_id)
        return shown

    # --- webhook --------------------------------------------------------------------------------

    async def set_webhook(self, session: AsyncSession, user_id: int, url: str) -> str:
        """Register the endpoint with a new signing secret; returns the secret (show it once).
        Registering is the verification: the person chose the URL."""
        try:
            url = validate_endpoint_url(url, allow_local=self._allow_local)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        secret = new_secret()
        contact = await self._upsert(
            session, user_id, Channel.WEBHOOK, {"url": url, "secret": secret}
        )
        await session.commit()
        log.info("webhook contact %s of user %s registered", contact.id, user_id)
        return secret

    async def test_webhook(self, session: AsyncSession, user_id: int) -> str:
        """Send a signed `webhook.test` event; a short outcome for the person. A disabled
        endpoint that accepts it is in use again."""
        contact = await contacts.of(session, user_id, Channel.WEBHOOK)
        if contact is None:
            raise SetupError(
                "no webhook registered yet; send e.g. /webhook https://example.org/hook"
            )
        data = self._open(contact)
        if data is None:
            raise SetupError("register your webhook again: /webhook https://example.org/hook")
        contact_id, was = contact.id, contact.state
        await session.commit()  # no transaction held open across the request
        target = WebhookContact(str(data["url"]), str(data["secret"]))
        try:
            event_id = await self._webhook.send_test(target)
        except RateLimited as error:
            log.info(
                "test webhook for contact %s of user %s: %s", contact_id, user_id, error.error_class
            )
            return f"❌ Your endpoint asked to wait ({error.detail})."
        except ChannelError as error:
            log.info(
                "test webhook for contact %s of user %s: %s", contact_id, user_id, error.error_class
            )
            return f"❌ The test event was not accepted: {error.detail}."
        if was is not ContactState.VERIFIED:
            await contacts.set_state(
                session, contact_id, ContactState.VERIFIED, None, failing_since=None
            )
            await session.commit()
        log.info("test webhook for contact %s of user %s accepted", contact_id, user_id)
        suffix = " Deliveries to it are on again." if was is not ContactState.VERIFIED else ""
        return f"✅ Your endpoint accepted the test event ({event_id}).{suffix}"

    # --- SMS and push ---------------------------------------------------------------------------

    async def set_phone(self, session: AsyncSession, user_id: int, phone: str) -> str:
        """Store the person's own number (from Telegram's contact sharing); its masked form."""
        phone = normalise_phone(phone)
        contact = await self._upsert(session, user_id, Channel.SMS, {"phone": phone})
        await session.commit()
        log.info("sms contact %s of user %s set", contact.id, user_id)
        return mask_phone(phone)

    async def set_push(
        self, session: AsyncSession, user_id: int, url: str, token: str | None = None
    ) -> str:
        """Store the push URL ({server}/{topic}) and an optional Bearer token; the server host."""
        try:
            url = validate_push_url(url, allow_local=self._allow_local)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        data: dict[str, Any] = {"url": url}
        if token is not None:
            token = token.strip()
            if not _PUSH_TOKEN.fullmatch(token):
                raise SetupError(
                    "the token is up to 256 printable characters without spaces, e.g. tk_..."
                )
            data["token"] = token
        contact = await self._upsert(session, user_id, Channel.PUSH, data)
        await session.commit()
        log.info("push contact %s of user %s set", contact.id, user_id)
        return url_host(url)

    # --- all channels ---------------------------------------------------------------------------

    async def remove(self, session: AsyncSession, user_id: int, channel: Channel) -> bool:
        """Forget the person's contact on `channel`; whether there was one."""
        result = await session.execute(
            delete(Contact).where(Contact.user_id == user_id, Contact.channel == channel),
            execution_options={"synchronize_session": False},
        )
        await session.commit()
        removed = bool(getattr(result, "rowcount", 0))
        if removed:
            log.info("%s contact of user %s removed", channel.value, user_id)
        return removed

    async def describe(
        self, session: AsyncSession, user_id: int, channel: Channel
    ) -> ContactSummary | None:
        contact = await contacts.of(session, user_id, channel)
        return None if contact is None else self._summary(contact)

    async def describe_all(self, session: AsyncSession, user_id: int) -> list[ContactSummary]:
        return [self._summary(c) for c in await contacts.all_of(session, user_id)]

    def _summary(self, contact: Contact) -> ContactSummary:
        data = self._open(contact)
        shown = "(unreadable: set it again)" if data is None else _mask(contact.channel, data)
        return ContactSummary(contact.channel, contact.state, contact.state_reason, shown)

    # --- one-click unsubscribe ------------------------------------------------------------------

    async def unsubscribe(self, session: AsyncSession, token: str) -> bool:
        """Stop email to the address whose List-Unsubscribe link carries `token`; whether a
        contact matched. Idempotent: an unsubscribed address stays so (and still matches)."""
        if not _URL_TOKEN.fullmatch(token):
            return False
        contact = await contacts.by_unsubscribe_hash(session, sealing.token_hash(token))
        if contact is None or contact.channel is not Channel.EMAIL:
            return False
        if contact.state is ContactState.DISABLED and contact.state_reason == UNSUBSCRIBED_REASON:
            return True
        await contacts.set_state(
            session,
            contact.id,
            ContactState.DISABLED,
            UNSUBSCRIBED_REASON,
            code_hash=None,
            code_expires_at=None,
        )
        await session.commit()
        log.info("email contact %s of user %s unsubscribed by link", contact.id, contact.user_id)
        return True
