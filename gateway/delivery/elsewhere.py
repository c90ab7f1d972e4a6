"""One attempt on a channel besides Telegram (email, webhook, SMS, push).

The worker's Deliverer claims the message and settles the outcome; this module finds the
person's verified contact for the channel, sends through the channel's adapter and decides:
delivered (with an audit line for the person's log), retry on this channel, or give up on it
(the chain moves to its next channel). A contact that fails for good is marked (an email
address bouncing, a webhook gone) and not used again until the person sets it up anew.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway import audit
from gateway.channels.base import ChannelError, DestinationGone, RateLimited, Transient
from gateway.channels.fallback import FallbackChannel, Outgoing
from gateway.contacts import for_channel
from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.delivery.chain import DEFAULT_POLICIES, RetryPolicy
from gateway.delivery.claim import Claim, Handled
from gateway.notices import notice
from gateway.outbox_payload import OutboxPayload
from storage.enums import Channel, ContactState
from storage.models import Contact
from storage.repositories import contacts, groups

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# A webhook endpoint that keeps failing this long is disabled, and its owner told.
DISABLE_FAILING_AFTER = timedelta(days=5)


class Settler(Protocol):
    """What this module needs of the Deliverer to settle an attempt."""

    async def give_up(
        self,
        claim: Claim,
        error_class: str,
        reason: str,
        err: ChannelError | None = None,
        sent: list[str] | None = None,
    ) -> Handled | None: ...

    async def after_transient(
        self,
        claim: Claim,
        err: ChannelError,
        policy: RetryPolicy,
        sent: list[str] | None = None,
        *,
        retry_after: float | None = None,
    ) -> Handled | None: ...

    async def delivered_elsewhere(self, claim: Claim, external_id: str) -> Handled | None: ...


def _disabled_text(channel: Channel, reason: str) -> str:
    how = {
        Channel.EMAIL: "Send /email with the address to verify it again.",
        Channel.WEBHOOK: "Register it again with /webhook and its URL.",
        Channel.SMS: "Share your number again with /phone.",
        Channel.PUSH: "Set it again with /push and its URL.",
    }.get(channel, "")
    return f"⚠️ Your {channel.value} contact is no longer used: {html.escape(reason)}. {how}"


class Elsewhere:
    def __init__(
        self,
        adapters: Mapping[Channel, FallbackChannel[Any]],
        cipher: ContentCipher,
        *,
        clock: Clock,
        public_url: str | None,
        policies: Mapping[Channel, RetryPolicy] = DEFAULT_POLICIES,
    ) -> None:
        """`adapters`: the channels this deployment has set up (no entry: not configured)."""
        self._adapters = adapters
        self._cipher = cipher
        self._clock = clock
        self._public_url = public_url or ""
        self._policies = policies

    async def attempt(
        self, settler: Settler, claim: Claim, payload: OutboxPayload
    ) -> Handled | None:
        channel = claim.channel
        adapter = self._adapters.get(channel)
        if adapter is None:
            reason = f"{channel.value} is not set up on this gateway"
            return await settler.give_up(claim, "NotConfigured", reason)
        row = await contacts.of(claim.session, claim.message.recipient_id, channel)
        if row is None or row.state is not ContactState.VERIFIED:
            return await settler.give_up(
                claim, "NoVerifiedAddress", f"no verified {channel.value} contact"
            )
        try:
            contact = for_channel(self._cipher, row, self._public_url)
        except (ContentDecryptError, KeyError, ValueError) as exc:
            reason = f"the {channel.value} contact does not decrypt"
            return await settler.give_up(claim, type(exc).__name__, reason)
        message = claim.message
        outgoing = Outgoing(
            message.id, message.category, message.priority, message.created_at, payload
        )
        policy = self._policies[channel]
        try:
            external_id = await adapter.send(contact, outgoing)
        except DestinationGone as err:
            await self._retire(claim, row, err.detail)
            return await settler.give_up(claim, err.error_class, err.detail, err)
        except (RateLimited, Transient) as err:
            if await self._failing_too_long(claim, row):
                reason = "it kept failing for 5 days"
                await self._retire(claim, row, reason, state=ContactState.DISABLED)
                return await settler.give_up(claim, err.error_class, reason, err)
            # A channel asking for a pause names it; 0 means "soon": the policy decides.
            wait = err.retry_after if isinstance(err, RateLimited) and err.retry_after else None
            return await settler.after_transient(claim, err, policy, retry_after=wait)
        except ChannelError as err:  # Rejected: this message cannot go this way
            return await settler.give_up(claim, err.error_class, err.detail, err)
        now = self._clock()
        await contacts.note_success(claim.session, row.id)
        await audit.record(
            claim.session,
            self._cipher,
            user_id=message.recipient_id,
            message_id=message.id,
            channel=channel,
            category=message.category,
            payload=payload,
            at=now,
        )
        return await settler.delivered_elsewhere(claim, external_id[:64])

    async def _failing_too_long(self, claim: Claim, row: Contact) -> bool:
        since = await contacts.note_failure(claim.session, row.id, self._clock())
        return row.channel is Channel.WEBHOOK and self._clock() - since >= DISABLE_FAILING_AFTER

    async def _retire(
        self, claim: Claim, row: Contact, reason: str, *, state: ContactState | None = None
    ) -> None:
        """Stop using the contact (an email bounces; any other is disabled); tell the person."""
        if state is None:
            state = ContactState.BOUNCING if row.channel is Channel.EMAIL else ContactState.DISABLED
        await contacts.set_state(claim.session, row.id, state, reason)
        log.warning(
            "user %s: %s contact now %s (%s)", row.user_id, row.channel.value, state.value, reason
        )
        if await groups.linked_group_of(claim.session, row.user_id) is not None:
            claim.session.add(
                notice(
                    self._cipher, row.user_id, _disabled_text(row.channel, reason), self._clock()
                )
            )
