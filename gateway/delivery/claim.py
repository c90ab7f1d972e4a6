"""A claimed message in the middle of an attempt, and what an attempt comes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AttemptOutcome, Channel
from storage.models import Message

if TYPE_CHECKING:
    from gateway.delivery.routes import Route
    from gateway.outbox_payload import OutboxPayload


@dataclass(frozen=True)
class Handled:
    outcome: AttemptOutcome
    # Set for a retry: the earliest time anything more should be sent to this recipient.
    retry_at: datetime | None = None
    # Held back by the pacer before its (next) part went out: not an attempt, nothing failed.
    paced: bool = False


@dataclass(frozen=True)
class Policy:
    lease: timedelta
    max_attempts: int


@dataclass(frozen=True)
class Claimed:
    """A message this worker took (its attempt not started yet)."""

    message: Message
    token: datetime  # the claimed_until set
    attempt: int  # the number its attempt gets


@dataclass(frozen=True)
class SentSoFar:
    """The parts of a message Telegram has taken, as of the last one this attempt sent: kept
    through an unexpected error (the outcome's commit refused, say), so that the parts are not
    sent again and their copies are recorded (deletable by self-destruct, DELETE, /erase)."""

    route: Route
    sealed: dict[str, Any]
    payload: OutboxPayload
    parts: tuple[str, ...]  # ids of the parts taken, earlier attempts' included
    total: int  # the message's parts
    new_from: int  # parts[new_from:] were sent by this attempt (their copies not recorded yet)

    @property
    def complete(self) -> bool:
        return len(self.parts) == self.total


@dataclass
class Claim:
    session: AsyncSession
    message: Message
    token: datetime  # the claimed_until we set: proof we still own the row
    attempt: int  # the DeliveryAttempt number of the current try
    channel: Channel  # where in its fallback chain the message stands
    # Attempt and kept-copy rows recorded so far, written with the outcome (Deliverer._settle,
    # or a delivery's shared commit, DeliveredCommits): as Core INSERTs, one per table, not
    # through the ORM's flush.
    attempt_rows: list[dict[str, Any]] = field(default_factory=list)
    copy_rows: list[dict[str, Any]] = field(default_factory=list)
    sent: SentSoFar | None = None

    def drop_rows(self) -> None:
        """Forget the recorded rows (written, or rolled back with the transaction)."""
        self.attempt_rows.clear()
        self.copy_rows.clear()

    @property
    def carries_none(self) -> bool:
        """Only the gateway's own messages are digests: a message a token sent carries no
        others (and the queries for its members are spared)."""
        return self.message.sender_token_id is not None

    @property
    def has_next(self) -> bool:
        return self.message.channel_index + 1 < len(self.message.channels)


def current_channel(message: Message) -> Channel:
    """The channel the message tries now (old rows without a chain: Telegram)."""
    if message.channel_index < len(message.channels):
        return Channel(message.channels[message.channel_index])
    return Channel.TELEGRAM
