"""telegram copies (for scheduled and requested deletion) and a default retention per person

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 20:24:03.295838
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=False),
        sa.Column("first_part_id", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delete_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retry_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delete_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_telegram_copies_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_copies_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_copies")),
        sa.UniqueConstraint(
            "chat_id",
            "telegram_message_id",
            name=op.f("uq_telegram_copies_chat_id_telegram_message_id"),
        ),
    )
    with op.batch_alter_table("telegram_copies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_copies_delete_at"), ["delete_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_telegram_copies_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_telegram_copies_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("user_preferences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_retention_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_preferences", schema=None) as batch_op:
        batch_op.drop_column("default_retention_seconds")

    with op.batch_alter_table("telegram_copies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_copies_user_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_copies_message_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_copies_delete_at"))

    op.drop_table("telegram_copies")
