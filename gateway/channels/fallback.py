"""What the channels besides Telegram share: the message as they send it, each channel's
contact (the person's verified address), and the adapter interface.

An adapter sends one message to one contact and either returns the channel's id for it or raises
one of gateway.channels.base's errors, which the delivery worker acts on:

- `Transient`: try again on this channel later (server error, timeout, SMTP 4xx);
- `RateLimited(retry_after)`: the channel asked us to wait (HTTP 429/503 with Retry-After);
- `DestinationGone`: this contact is unusable for good (SMTP 5xx bounce, webhook 410); the
  worker marks the contact and falls through to the next channel;
- `Rejected`: this message can never go through this channel (e.g. 400 for its body); the
  worker falls through to the next channel.

Error `detail`s must be safe to store and log: never the address, the content or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from gateway.outbox_payload import OutboxPayload
from gateway.rendering import hashtags_for, render_body, visible_text
from storage.enums import Category, Channel, Priority

ContactT_contra = TypeVar("ContactT_contra", contravariant=True)

TITLE_LENGTH = 80


@dataclass(frozen=True)
class Outgoing:
    """One message as a fallback channel sends it (everything but the address)."""

    message_id: str  # also the idempotency id receivers may deduplicate on
    category: Category
    priority: Priority
    created_at: datetime  # aware UTC
    payload: OutboxPayload

    def html(self) -> str:
        """The body as (Telegram-subset) HTML; raises TypeError/ValueError if unrenderable."""
        return render_body(self.payload.kind, self.payload.value)

    def plain_text(self) -> str:
        return visible_text(self.html())

    def hashtags(self) -> list[str]:
        """`#tag`s: the category's, then the sender's (normalised)."""
        return hashtags_for(self.category.value, self.payload.hashtags)

    def first_line(self) -> str:
        """The first non-empty line of the text, shortened for a subject or title."""
        for line in self.plain_text().splitlines():
            line = line.strip()
            if line:
                return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"
        return ""


@dataclass(frozen=True)
class EmailContact:
    address: str
    unsubscribe_url: str  # HTTPS, one-click (RFC 8058) for this address


@dataclass(frozen=True)
class WebhookContact:
    url: str
    secret: str  # "whsec_" + base64 of the signing key


@dataclass(frozen=True)
class SmsContact:
    phone: str  # E.164, e.g. +4915112345678


@dataclass(frozen=True)
class PushContact:
    url: str  # {server}/{topic}; the topic is a secret
    token: str | None = None  # Bearer token, if the server wants one


class FallbackChannel(Protocol[ContactT_contra]):
    @property
    def channel(self) -> Channel: ...

    async def send(self, contact: ContactT_contra, outgoing: Outgoing) -> str:
        """Deliver; the channel's id for the message. Raises a base.ChannelError subclass."""
        ...

    async def check(self) -> None:
        """Is the deployment's service reachable (for GET /channels and health)? Raises a
        base.ChannelError subclass if not. Never sends anything to a person."""
        ...
