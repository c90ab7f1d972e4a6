"""The adapter interface and the errors every adapter speaks."""

from __future__ import annotations

from typing import Protocol, TypeVar

from gateway.outbox_payload import OutboxPayload
from storage.enums import Category, Channel

AddressT_contra = TypeVar("AddressT_contra", contravariant=True)


class ChannelError(Exception):
    """A send failed. `error_class` names the cause for logs (an exception class, never content);
    `detail` is a short reason safe to store on the message (no content, no tokens)."""

    def __init__(self, error_class: str, detail: str) -> None:
        super().__init__(f"{error_class}: {detail}")
        self.error_class = error_class
        self.detail = detail


class RateLimited(ChannelError):
    """The channel asks us to wait `retry_after` seconds; not a failure of the message."""

    def __init__(self, error_class: str, detail: str, retry_after: float) -> None:
        super().__init__(error_class, detail)
        self.retry_after = retry_after


class Transient(ChannelError):
    """Server error, network error or timeout: worth retrying with backoff."""


class OutcomeUnknown(Transient):
    """The request may have reached the channel and taken effect before it failed (it timed out
    or the connection broke after it was sent): retried like any transient failure, but the
    retry may deliver the message a second time. Adapters count and log these."""


class AddressGone(ChannelError):
    """The place inside the destination (e.g. a forum topic) no longer exists; it can be
    recreated and the send retried."""


class DestinationGone(ChannelError):
    """The destination itself is gone or refuses us (bot removed, chat deleted)."""


class Rejected(ChannelError):
    """The channel refused this message for good (e.g. a malformed request)."""


class ChannelAdapter(Protocol[AddressT_contra]):
    """Render a message for the channel, then send it part by part."""

    @property
    def channel(self) -> Channel: ...

    @property
    def request_timeout(self) -> int:
        """The longest one `send` may take, in seconds (the worker sizes its lease with it)."""
        ...

    def render(self, payload: OutboxPayload, category: Category) -> list[str]:
        """The parts to send, in order. Raises TypeError/ValueError for unrenderable content."""
        ...

    def forget_rendered(self, payload: OutboxPayload, category: Category) -> None:
        """The message is settled: whatever `render` kept of it may go."""
        ...

    async def send(
        self, address: AddressT_contra, part: str, payload: OutboxPayload, *, last: bool
    ) -> str:
        """Send one part (`last`: the final one); returns the channel's id for it. Raises a
        ChannelError subclass."""
        ...
