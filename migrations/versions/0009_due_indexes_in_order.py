"""the worker's looks read the first rows in index order and stop: due indexes in its order,
one of the urgent and high, and one of each person's queue

The worker takes urgent and high messages before normal and low ones, each class by due time,
then age, then id. ix_messages_due held (status, next_attempt_at) only, so its look for due
work sorted every due row to find the first hundred: 5.6 ms a pass with 16,000 due, and the
messages of a paced group all share one due time. ix_messages_due_in_order holds the whole
order, and the partial ix_messages_due_urgent only urgent and high rows, so the look reads the
first rows of each in index order and stops.

Folding a burst read a person's queue oldest first: every due row of every person, sorted (24
ms a pass with 25,000 queued). ix_messages_waiting holds each person's queued rows that are
not carried, in that order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 09:50:00.000000
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CARRIED = sa.text("carried_by IS NULL")
# As storage.models.URGENT_NOT_CARRIED and QUEUED_NOT_CARRIED when this revision was written.
URGENT_NOT_CARRIED = sa.text("carried_by IS NULL AND priority IN ('urgent', 'high')")
QUEUED_NOT_CARRIED = sa.text("carried_by IS NULL AND status = 'queued'")
IN_ORDER = ["status", "next_attempt_at", "created_at", "id"]


def _swap(create: Sequence[tuple[str, list[str], sa.TextClause]], drop: Sequence[str]) -> None:
    """Create the new indexes first, then drop the old: no moment without an index. On
    PostgreSQL without blocking writes to messages (an "api" process may go on accepting
    meanwhile), which cannot run inside a transaction."""
    concurrently = op.get_bind().dialect.name == "postgresql"
    block = op.get_context().autocommit_block() if concurrently else contextlib.nullcontext()
    with block:
        for name, columns, where in create:
            # A CREATE INDEX CONCURRENTLY that was interrupted leaves an invalid index of that
            # name behind (nothing rolls it back): a second run starts afresh.
            op.drop_index(
                name, table_name="messages", if_exists=True, postgresql_concurrently=concurrently
            )
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
            ("ix_messages_due_in_order", IN_ORDER, NOT_CARRIED),
            ("ix_messages_due_urgent", IN_ORDER, URGENT_NOT_CARRIED),
            ("ix_messages_waiting", ["recipient_id", "created_at", "id"], QUEUED_NOT_CARRIED),
        ],
        ["ix_messages_due"],
    )


def downgrade() -> None:
    _swap(
        [("ix_messages_due", ["status", "next_attempt_at"], NOT_CARRIED)],
        ["ix_messages_due_in_order", "ix_messages_due_urgent", "ix_messages_waiting"],
    )
