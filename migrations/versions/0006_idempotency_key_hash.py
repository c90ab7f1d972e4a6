"""idempotency keys stored as SHA-256 hashes, not the caller's text

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:00:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _digest(key: str) -> str:
    # Must match gateway.submission.idempotency_digest (not imported: migrations stay frozen).
    return hashlib.sha256(key.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key_hash", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, idempotency_key FROM messages WHERE idempotency_key IS NOT NULL")
    ).fetchall()
    for message_id, key in rows:
        conn.execute(
            sa.text("UPDATE messages SET idempotency_key_hash = :digest WHERE id = :id"),
            {"digest": _digest(key), "id": message_id},
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_sender_token_id_idempotency_key", type_="unique")
        batch_op.drop_column("idempotency_key")
        batch_op.create_unique_constraint(
            batch_op.f("uq_messages_sender_token_id_idempotency_key_hash"),
            ["sender_token_id", "idempotency_key_hash"],
        )


def downgrade() -> None:
    # The keys themselves are gone for good; repeats of old requests are no longer recognised.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_sender_token_id_idempotency_key_hash", type_="unique")
        batch_op.drop_column("idempotency_key_hash")
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_messages_sender_token_id_idempotency_key"),
            ["sender_token_id", "idempotency_key"],
        )
