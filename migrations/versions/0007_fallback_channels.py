"""fallback channels: contacts, the fallback chain on messages, audit entries for the log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 20:58:22.659354
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "telegram",
                "email",
                "webhook",
                "sms",
                "push",
                name="channel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "category",
            sa.Enum(
                "auth",
                "plugin",
                "payment",
                "communication",
                "system",
                "general",
                name="category",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("delivered_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sealed_content", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_audit_entries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_audit_entries_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_entries_message_id"), ["message_id"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "telegram",
                "email",
                "webhook",
                "sms",
                "push",
                name="channel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "verified",
                "bouncing",
                "disabled",
                name="contactstate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("verified_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unsubscribe_hash", sa.String(length=64), nullable=True),
        sa.Column("failing_since", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_contacts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("unsubscribe_hash", name=op.f("uq_contacts_unsubscribe_hash")),
        sa.UniqueConstraint("user_id", "channel", name=op.f("uq_contacts_user_id_channel")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        # Existing messages were all bound for Telegram alone.
        batch_op.add_column(
            sa.Column("channels", sa.JSON(), nullable=False, server_default='["telegram"]')
        )
        batch_op.add_column(
            sa.Column("channel_index", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("channel_since", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "delivered_via",
                sa.Enum(
                    "telegram",
                    "email",
                    "webhook",
                    "sms",
                    "push",
                    name="channel",
                    native_enum=False,
                    length=16,
                ),
                nullable=True,
            )
        )

    with op.batch_alter_table("user_preferences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audit_with_content", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("user_preferences", schema=None) as batch_op:
        batch_op.drop_column("audit_with_content")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("delivered_via")
        batch_op.drop_column("channel_since")
        batch_op.drop_column("channel_index")
        batch_op.drop_column("channels")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_user_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_message_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_user_id"))

    op.drop_table("audit_entries")
