"""partial indexes for due work: the worker's look for due rows skips digest members

The members of a burst digest stay queued (carried_by set) until the digest settles. In the
old index on (status, next_attempt_at) every look for due work, and for the next wake-up, had
to walk past all of them; the new one holds only rows that are not carried. The index on
carried_by (now ix_messages_carried) holds only carried rows: with every other row in it,
SQLite used it for "carried_by IS NULL" and walked all delivered messages instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 07:05:00.000000
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CARRIED = sa.text("carried_by IS NULL")
CARRIED = sa.text("carried_by IS NOT NULL")


def _concurrently() -> bool:
    """On PostgreSQL the indexes are built without blocking writes to messages (an "api"
    process may go on accepting while the "all" process migrates); that cannot run inside a
    transaction, so those statements run in an autocommit block."""
    return op.get_bind().dialect.name == "postgresql"


def _swap(
    create: Sequence[tuple[str, list[str], sa.TextClause | None]], drop: Sequence[str]
) -> None:
    """Create the new indexes first, then drop the old: no moment without an index."""
    concurrently = _concurrently()
    block = op.get_context().autocommit_block() if concurrently else contextlib.nullcontext()
    with block:
        for name, columns, where in create:
            op.create_index(
                name,
                "messages",
                columns,
                unique=False,
                sqlite_where=where,
                postgresql_where=where,
                postgresql_concurrently=concurrently,
            )
        for name in drop:
            op.drop_index(name, table_name="messages", postgresql_concurrently=concurrently)


def upgrade() -> None:
    _swap(
        [
            ("ix_messages_due", ["status", "next_attempt_at"], NOT_CARRIED),
            ("ix_messages_carried", ["carried_by"], CARRIED),
        ],
        ["ix_messages_status_next_attempt_at", "ix_messages_carried_by"],
    )


def downgrade() -> None:
    _swap(
        [
            ("ix_messages_status_next_attempt_at", ["status", "next_attempt_at"], None),
            ("ix_messages_carried_by", ["carried_by"], None),
        ],
        ["ix_messages_due", "ix_messages_carried"],
    )
