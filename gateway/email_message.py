"""Emails as the gateway sends them: pure functions, no I/O.

`build_email` turns one fallback message into a multipart/alternative email (a text/plain part
and a text/html part) with the headers mailbox providers look for: a stable `Message-ID` (a
retry of the same message reuses it), `Date`, `Auto-Submitted`, and one-click unsubscribe per
RFC 8058 (`List-Unsubscribe: <https://...>` plus `List-Unsubscribe-Post`).
`build_verification_email` is the short text mail carrying an address verification code.

Headers are made with `EMAIL_POLICY`: the standard policy, except that `List-Unsubscribe` and
`Message-ID` are written on one line as given. The standard policy folds at 78 characters and
encodes a long unbreakable value (a URL) as `=?utf-8?q?...?=`, which mail clients do not decode
in List-Unsubscribe, so their unsubscribe button would break.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import re
import secrets
from datetime import datetime, timedelta
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from urllib.parse import urlsplit

from gateway.channels.fallback import EmailContact, Outgoing
from storage.enums import Category

# Subject prefixes: short names of the categories (the topic names without emoji are long).
CATEGORY_TITLES: dict[Category, str] = {
    Category.AUTH: "Security",
    Category.PLUGIN: "Plugin",
    Category.PAYMENT: "Payment",
    Category.COMMUNICATION: "Communication",
    Category.SYSTEM: "System",
    Category.GENERAL: "General",
}

PRODUCT_NAME = "Libral Gateway"
VERIFICATION_VALIDITY = timedelta(minutes=15)

ONE_CLICK = "List-Unsubscribe=One-Click"

# Left part of a Message-ID (RFC 5322 dot-atom-text, kept to a conservative subset).
_ID_LEFT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# Characters that may not appear inside <...> in List-Unsubscribe (RFC 2369): whitespace,
# controls, the brackets themselves and the list separator.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>,\"]")
_CODE = re.compile(r"[A-Za-z0-9]{4,16}")


class InvalidUnsubscribeUrl(ValueError):
    """The unsubscribe link is not an absolute HTTPS URL usable in List-Unsubscribe. The
    message never names the URL (it carries the person's token)."""


class _VerbatimHeader(UnstructuredHeader, BaseHeader):
    """A header written on one line exactly as given: no folding, no encoded words."""

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _registry() -> HeaderRegistry:
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _VerbatimHeader)
    # Ours are ASCII without spaces; folded, a long one would start its line with a space.
    registry.map_to_type("message-id", _VerbatimHeader)
    return registry


EMAIL_POLICY = email.policy.default.clone(header_factory=_registry())


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_unsubscribe_url(url: str) -> str:
    """`url` if it can go into List-Unsubscribe for RFC 8058 one-click; else
    InvalidUnsubscribeUrl. The link must be https, absolute, ASCII, without whitespace."""
    if not url.isascii() or _URL_FORBIDDEN.search(url):
        raise InvalidUnsubscribeUrl("unsubscribe URL has characters List-Unsubscribe cannot carry")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidUnsubscribeUrl("unsubscribe URL is malformed") from None
    # RFC 8058 wants https; plain http is let through only for a gateway on this machine (the
    # sandbox), whose link no mailbox provider will ever follow anyway.
    local = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not local:
        raise InvalidUnsubscribeUrl("unsubscribe URL must be https (RFC 8058)")
    if not parts.hostname:
        raise InvalidUnsubscribeUrl("unsubscribe URL has no host")
    return url


def check_domain(domain: str) -> str:
    if not _DOMAIN.fullmatch(domain):
        raise ValueError("the Message-ID domain must be a host name")
    return domain


def message_id_for(message_id: str, domain: str) -> str:
    """The `Message-ID` of a message: the same for every attempt, so receivers and threads can
    tell a retry from a new message. `<{message_id}@{domain}>` when the id is a plain token (a
    UUID), else a digest of it."""
    check_domain(domain)
    left = message_id if _ID_LEFT.fullmatch(message_id) else _digest(message_id)
    return f"<{left}@{domain}>"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def subject_for(outgoing: Outgoing) -> str:
    """`[Security] First line of the text` (the first line is shortened by Outgoing)."""
    title = f"[{CATEGORY_TITLES[outgoing.category]}]"
    first = outgoing.first_line()
    return f"{title} {first}" if first else title


def _html_document(title: str, body_html: str, tags: str, unsubscribe_url: str) -> str:
    # body_html is already safe (Telegram-subset) HTML: it goes in as it is. Telegram marks line
    # breaks with "\n", not <br>, hence white-space: pre-wrap.
    tags_line = f'<p style="color: #555555">{html.escape(tags)}</p>\n' if tags else ""
    return (
        "<!DOCTYPE html>\n"
        '<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f'<div style="white-space: pre-wrap">{body_html}</div>\n'
        f"{tags_line}"
        '<p style="color: #555555; font-size: smaller">'
        f'<a href="{html.escape(unsubscribe_url)}">Unsubscribe from these emails</a></p>\n'
        "</body>\n</html>\n"
    )


def _plain_text(text: str, tags: str, unsubscribe_url: str) -> str:
    parts = [text.strip("\n")]
    if tags:
        parts.append(tags)
    parts.append(f"-- \nUnsubscribe from these emails: {unsubscribe_url}")
    return "\n\n".join(parts) + "\n"


def _text_part(text: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=EMAIL_POLICY)
    part.set_content(text, subtype=subtype, charset="utf-8", cte="quoted-printable")
    del part["MIME-Version"]  # only the message as a whole carries it
    return part


def _common_headers(
    msg: EmailMessage, *, subject: str, sender: str, to: str, msg_id: str, now: datetime
) -> None:
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = msg_id
    # RFC 3834: a machine wrote this; auto-responders should not answer it.
    msg["Auto-Submitted"] = "auto-generated"


def build_email(
    outgoing: Outgoing, contact: EmailContact, *, sender: str, domain: str, now: datetime
) -> EmailMessage:
    """The email for `outgoing` to `contact`. `sender` is the From address, `domain` the
    Message-ID's right part, `now` (aware) the Date.

    Raises InvalidUnsubscribeUrl (a ValueError) when the contact's unsubscribe link is not
    https, ValueError for a bad domain, and TypeError/ValueError for unrenderable content.
    """
    unsubscribe = check_unsubscribe_url(contact.unsubscribe_url)
    msg_id = message_id_for(outgoing.message_id, domain)
    subject = subject_for(outgoing)
    body_html = outgoing.html()
    tags = " ".join(outgoing.hashtags())

    msg = EmailMessage(policy=EMAIL_POLICY)
    _common_headers(msg, subject=subject, sender=sender, to=contact.address, msg_id=msg_id, now=now)
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = ONE_CLICK
    # Parts built on their own: add_alternative would leave a MIME-Version in the HTML part.
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(_text_part(_plain_text(outgoing.plain_text(), tags, unsubscribe), "plain"))
    msg.attach(_text_part(_html_document(subject, body_html, tags, unsubscribe), "html"))
    return msg


def verification_text(code: str, valid_for: timedelta = VERIFICATION_VALIDITY) -> str:
    minutes = max(1, int(valid_for.total_seconds() // 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Your {PRODUCT_NAME} verification code is {code}; it expires in {minutes} {unit}.\n"
        "\n"
        f"To confirm this address, send the bot: /email verify {code}\n"
        "\n"
        "If you did not ask for this, ignore this email: the address will not be used.\n"
    )


def build_verification_email(
    address: str,
    code: str,
    *,
    sender: str,
    domain: str,
    now: datetime,
    valid_for: timedelta = VERIFICATION_VALIDITY,
) -> EmailMessage:
    """The email carrying an address verification code (text/plain only; no List-Unsubscribe,
    as the address is not subscribed to anything yet). ValueError for a code that is not 4-16
    letters or digits, or a bad domain."""
    if not _CODE.fullmatch(code):
        raise ValueError("a verification code is 4 to 16 letters or digits")
    msg = EmailMessage(policy=EMAIL_POLICY)
    _common_headers(
        msg,
        subject=f"Your {PRODUCT_NAME} verification code",
        sender=sender,
        to=address,
        msg_id=f"<verify.{secrets.token_hex(12)}@{check_domain(domain)}>",
        now=now,
    )
    msg.set_content(
        verification_text(code, valid_for), subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    return msg
