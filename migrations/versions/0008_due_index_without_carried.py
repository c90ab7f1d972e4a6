"""partial indexes for due work: the worker's look for due rows skips digest members

The members of a burst digest stay queued (carried_by set) until the digest settles. In the
old index on (status, next_attempt_at) every look for due work, and for the next wake-up, had
to walk past all of them; the new one holds only rows that are not carried. The index on
carried_by now holds only carried rows: with every other row in it, SQLite used it for
"carried_by IS NULL" and walked all delivered messages instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 07:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CARRIED = sa.text("carried_by IS NULL")
CARRIED = sa.text("carried_by IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_next_attempt_at")
        batch_op.create_index(
            "ix_messages_due",
            ["status", "next_attempt_at"],
            unique=False,
            sqlite_where=NOT_CARRIED,
            postgresql_where=NOT_CARRIED,
        )
        batch_op.drop_index("ix_messages_carried_by")
        batch_op.create_index(
            "ix_messages_carried_by",
            ["carried_by"],
            unique=False,
            sqlite_where=CARRIED,
            postgresql_where=CARRIED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_carried_by")
        batch_op.create_index("ix_messages_carried_by", ["carried_by"], unique=False)
        batch_op.drop_index("ix_messages_due")
        batch_op.create_index(
            "ix_messages_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
