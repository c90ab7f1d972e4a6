"""The gateway's tables, as typed SQLAlchemy 2 models.

Person-owned rows cascade from `users`, so erasing a person is one DELETE and leaves nothing
that refers to them. Message content is only ever stored encrypted, and only while queued.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.enums import (
    AttemptOutcome,
    Category,
    Channel,
    ContactState,
    MessageStatus,
    Priority,
)
from storage.types import UTCDateTime, utcnow

# Deterministic constraint names: Alembic batch mode on SQLite needs them to alter tables, and
# they keep migrations identical between SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _enum(enum_cls: type[StrEnum]) -> Enum:
    # Stored as plain strings (no native ENUM type) so adding a value needs no type migration.
    return Enum(
        enum_cls,
        native_enum=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    log_group: Mapped[LogGroup | None] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )


class LogGroup(Base):
    """A person's personal log: their forum supergroup. One per person."""

    __tablename__ = "log_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    is_forum: Mapped[bool] = mapped_column(default=False)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the bot is removed from the group; kept (with its topics) so that adding the bot
    # back relinks the same topics instead of creating duplicates.
    unlinked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User] = relationship(back_populates="log_group")
    topics: Mapped[list[Topic]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )


class Topic(Base):
    """A forum topic per category; `general` has no thread id (the group's General topic)."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("group_id", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("log_groups.id", ondelete="CASCADE"))
    category: Mapped[Category] = mapped_column(_enum(Category))
    message_thread_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(128))

    group: Mapped[LogGroup] = relationship(back_populates="topics")


class UserPreferences(Base):
    """How, when and what reaches a person. No row means every default (gateway.routing)."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # Category value -> on/off; categories missing here take their default.
    categories: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    channel_order: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled_channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    quiet_enabled: Mapped[bool] = mapped_column(default=True)
    quiet_start: Mapped[str] = mapped_column(String(5), default="22:00")  # HH:MM, local time
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    quiet_mode: Mapped[str] = mapped_column(String(8), default="silent")  # silent | defer
    urgent_bypass: Mapped[bool] = mapped_column(default=True)
    default_ephemeral: Mapped[bool] = mapped_column(default=False)
    read_receipts: Mapped[bool] = mapped_column(default=False)
    # Applied when a request sets no retention_seconds; None: the gateway's default (a day).
    default_retention_seconds: Mapped[int | None] = mapped_column(Integer)
    # Audit lines in the log for messages delivered elsewhere carry their content too.
    audit_with_content: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiToken(Base):
    """A bearer token. Only its hash is stored; the prefix is for display."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Rows of the urgent and high priorities, not carried by a digest: ix_messages_due_urgent's
# predicate, which queries must repeat word for word to use it.
URGENT_NOT_CARRIED = (
    f"carried_by IS NULL AND priority IN ('{Priority.URGENT.value}', '{Priority.HIGH.value}')"
)
# Queued rows not carried by a digest, a person's queue: ix_messages_waiting's predicate.
QUEUED_NOT_CARRIED = f"carried_by IS NULL AND status = '{MessageStatus.QUEUED.value}'"


class Message(Base):
    """One accepted message: routing metadata, plus encrypted content until it is delivered."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("sender_token_id", "idempotency_key_hash"),
        # The worker's look for due work: rows of one status in the order it takes them
        # (due time, then age, then id, all three, so that it reads a pass's first thousand and
        # stops: thousands of a paced group's messages share one due time). Only rows not
        # carried by a digest: the members of a burst stay queued until their digest settles,
        # and with them in the index every look for due work walked past all of them (a pass
        # took 15 ms with 50,000 members waiting, on the event loop).
        Index(
            "ix_messages_due_in_order",
            "status",
            "next_attempt_at",
            "created_at",
            "id",
            sqlite_where=text("carried_by IS NULL"),
            postgresql_where=text("carried_by IS NULL"),
        ),
        # The urgent and high ones among them: the worker takes those first, and finding them
        # (or that there are none) without an index of their own meant sorting every due row,
        # 5.6 ms a pass with 16,000 due. Normal and low messages, nearly all of them, are not
        # in it, so it costs their inserts nothing. outbox.due repeats the predicate word for
        # word, which is how SQLite and PostgreSQL see that the index applies.
        Index(
            "ix_messages_due_urgent",
            "status",
            "next_attempt_at",
            "created_at",
            "id",
            sqlite_where=text(URGENT_NOT_CARRIED),
            postgresql_where=text(URGENT_NOT_CARRIED),
        ),
        # A person's queue, oldest first: what a burst digest folds. Without it the fold read
        # every due row of every person and sorted them (24 ms a pass with 25,000 queued, on
        # the event loop). Rows leave it when they are claimed or folded, so it stays small.
        Index(
            "ix_messages_waiting",
            "recipient_id",
            "created_at",
            "id",
            sqlite_where=text(QUEUED_NOT_CARRIED),
            postgresql_where=text(QUEUED_NOT_CARRIED),
        ),
        # A digest's members, by digest. Only carried rows: nearly every row is not carried,
        # and with those in it SQLite chose this index for "carried_by IS NULL" and walked the
        # whole history of delivered messages to find due ones.
        Index(
            "ix_messages_carried",
            "carried_by",
            sqlite_where=text("carried_by IS NOT NULL"),
            postgresql_where=text("carried_by IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[Category] = mapped_column(_enum(Category))
    priority: Mapped[Priority] = mapped_column(_enum(Priority))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    encrypted_content: Mapped[bytes | None] = mapped_column(LargeBinary)
    # SHA-256 (hex) of the sender's idempotency key: keys are the caller's free text (they may
    # hold an address or a name), and the hash is all a repeat needs to be recognised.
    idempotency_key_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retention_expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker holds a claimed row until this time; a crashed worker's claim simply runs out.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    # Set when the message was folded into a digest: the message that carries its content now.
    # Such a row is never sent itself; it settles when its carrier does.
    # CASCADE: without its carrier a carried message has nothing to deliver (its content went
    # into the digest); it never outlives it anyway (the digest keeps the longest retention).
    carried_by: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # The fallback chain decided at submission (channel values, in order), where the message
    # stands in it, since when it tries that channel, and the channel that delivered it.
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: [Channel.TELEGRAM.value])
    channel_index: Mapped[int] = mapped_column(Integer, default=0)
    channel_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_via: Mapped[Channel | None] = mapped_column(_enum(Channel))

    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="message",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DeliveryAttempt.id",
    )

    @classmethod
    def being_sent(cls, now: datetime) -> ColumnElement[bool]:
        """A message a worker holds a live lease on: its send's outcome is still to come."""
        return and_(cls.status == MessageStatus.SENDING, cls.claimed_until >= now)


class DeliveryAttempt(Base):
    """One try at one channel; `external_id` is e.g. the Telegram message id."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("message_id", "channel", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[AttemptOutcome] = mapped_column(_enum(AttemptOutcome))
    external_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attempts")


class TelegramCopy(Base):
    """A message the bot put into a person's personal log, kept (ids and times, no content)
    while Telegram still lets the bot delete it (48 hours), so that self-destruct, the
    ephemeral button, DELETE and /erase can remove it. `delete_at` set: a deletion is due then.
    """

    __tablename__ = "telegram_copies"
    __table_args__ = (UniqueConstraint("chat_id", "telegram_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The gateway message it carries; NULL once that record is purged (the copy may outlive it).
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    telegram_message_id: Mapped[int] = mapped_column(BigInteger)
    # The Telegram id of the first part of the same message: links the parts of a long message
    # even after its record is gone (the ephemeral button deletes all of them).
    first_part_id: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delete_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # After a failed deletion: when to try again (delete_at stays, for lateness figures).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delete_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))


class Contact(Base):
    """A person's address on a channel besides Telegram (email, webhook, SMS, push).

    The address and any secret are sealed with the content key (personal data stays encrypted
    at rest); `channel` and `state` are all the queries need.
    """

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("user_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[ContactState] = mapped_column(_enum(ContactState))
    # Email verification: the hash of the code mailed, until when it counts, wrong tries.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Email: the hash of the one-click unsubscribe token in List-Unsubscribe links.
    unsubscribe_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Since when deliveries keep failing (a webhook failing for days is disabled).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """A message delivered by another channel, waiting to be noted in the person's log
    ("📡 Communication Logs") once the log is reachable. Content only if the person chose so,
    sealed."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The line goes with its message: erased or past its retention, nothing of it is noted.
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    category: Mapped[Category] = mapped_column(_enum(Category))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sealed_content: Mapped[bytes | None] = mapped_column(LargeBinary)


class WorkerHeartbeat(Base):
    """The delivery worker's state as its process last wrote it, every few seconds: how a
    `serve --role api` process, which runs no worker, tells in its health whether one runs."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    running: Mapped[bool]
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An exception class name, never its text (as the worker's own health).
    last_error: Mapped[str | None] = mapped_column(String(100))
    unknown_send_outcomes: Mapped[int] = mapped_column(Integer)
