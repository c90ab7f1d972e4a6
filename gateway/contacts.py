"""A person's contacts: sealing their addresses and secrets, and opening them for a channel.

The address (and a webhook's signing secret, a push token, the email unsubscribe token) lives
sealed in `contacts.sealed`, with the user and channel as associated data, so a sealed blob
cannot be moved to another person or channel.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from gateway.channels.fallback import EmailContact, PushContact, SmsContact, WebhookContact
from gateway.content_cipher import ContentCipher
from storage.enums import Channel
from storage.models import Contact

AnyContact = EmailContact | WebhookContact | SmsContact | PushContact
UNSUBSCRIBE_PATH = "/api/v1/communication/unsubscribe"


def _aad(user_id: int, channel: Channel) -> str:
    return f"contact:{user_id}:{channel.value}"


def seal(cipher: ContentCipher, user_id: int, channel: Channel, data: dict[str, Any]) -> bytes:
    return cipher.seal(_aad(user_id, channel), data)


def open_data(cipher: ContentCipher, contact: Contact) -> dict[str, Any]:
    """Raises gateway.content_cipher.ContentDecryptError if it does not open."""
    return cipher.open(_aad(contact.user_id, contact.channel), contact.sealed)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_unsubscribe_token() -> tuple[str, str]:
    """(token for the link, its hash for the database)."""
    token = secrets.token_urlsafe(24)
    return token, token_hash(token)


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}/{token}"


def for_channel(cipher: ContentCipher, contact: Contact, public_url: str) -> AnyContact:
    """The contact as its channel adapter takes it."""
    data = open_data(cipher, contact)
    if contact.channel is Channel.EMAIL:
        return EmailContact(data["address"], unsubscribe_url(public_url, data["unsubscribe"]))
    if contact.channel is Channel.WEBHOOK:
        return WebhookContact(data["url"], data["secret"])
    if contact.channel is Channel.SMS:
        return SmsContact(data["phone"])
    if contact.channel is Channel.PUSH:
        return PushContact(data["url"], data.get("token"))
    raise ValueError(f"no contact for {contact.channel.value}")
