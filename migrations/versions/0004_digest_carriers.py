"""digest carriers: messages folded into a digest point to the message that carries them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 20:08:49.319388
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carried_by", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_carried_by"), ["carried_by"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_carried_by_messages"),
            "messages",
            ["carried_by"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_messages_carried_by_messages"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_messages_carried_by"))
        batch_op.drop_column("carried_by")
