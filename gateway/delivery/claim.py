"""A claimed message in the middle of an attempt, and what an attempt comes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AttemptOutcome, Channel
from storage.models import Message


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
