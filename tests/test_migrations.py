"""Migrations and models agree, and the schema goes down to base and back up, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect, text

from storage import migrate
from storage.models import Base

pytestmark = pytest.mark.both_databases

TABLES = {"users", "log_groups", "topics", "api_tokens", "messages", "delivery_attempts"}


_on = migrate.on_connection  # `work` on a connection, in a transaction that commits


def _diff(url: str, metadata: MetaData) -> list[tuple[object, ...]]:
    def compare(conn: Connection) -> list[tuple[object, ...]]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        assert ctx.get_current_heads() == migrate.current_heads(url)
        return list(compare_metadata(ctx, metadata))

    return _on(url, compare)


def _tables(url: str) -> set[str]:
    return _on(url, lambda conn: set(inspect(conn).get_table_names()))


def test_upgrade_to_head_matches_models(database_url: str) -> None:
    migrate.upgrade(database_url)
    diff = _diff(database_url, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    assert _tables(database_url) >= TABLES


def test_diff_detects_a_model_change(database_url: str) -> None:
    """The check above can fail: a column the migrations lack shows up as a diff."""
    from sqlalchemy import Column, Integer, Table

    migrate.upgrade(database_url)
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("users", extra, Column("shoe_size", Integer), extend_existing=True)
    diff = _diff(database_url, extra)
    assert any(d[0] == "add_column" and d[3].name == "shoe_size" for d in diff)


def test_downgrade_to_base_and_back(database_url: str) -> None:
    assert migrate.database_heads(database_url) == ()
    migrate.upgrade(database_url)
    assert migrate.database_heads(database_url) == migrate.current_heads(database_url)
    migrate.downgrade(database_url, "-1")
    assert migrate.database_heads(database_url) not in ((), migrate.current_heads(database_url))
    migrate.downgrade(database_url, "base")
    assert _tables(database_url) & TABLES == set()
    assert migrate.database_heads(database_url) == ()
    migrate.upgrade(database_url)
    assert _tables(database_url) >= TABLES
    assert _diff(database_url, Base.metadata) == []


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_foreign_keys(migrated_url: str) -> None:
    db = Path(migrated_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stored_idempotency_keys_become_hashes(database_url: str) -> None:
    """0006 replaces the callers' key text by its hash; a repeat is still recognised."""
    from gateway.submission import idempotency_digest

    migrate.upgrade(database_url, "0005")

    def seed(conn: Connection) -> None:
        conn.execute(
            text("INSERT INTO users (id, telegram_id, created_at) VALUES (1, 7, '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO messages (id, recipient_id, category, priority, status, created_at,"
                " retention_expires_at, next_attempt_at, attempt_count, idempotency_key)"
                " VALUES ('m1', 1, 'general', 'normal', 'delivered', '2026-01-01', '2026-01-02',"
                " '2026-01-01', 1, 'order:ada@example.org')"
            )
        )

    _on(database_url, seed)
    migrate.upgrade(database_url)
    columns = _on(database_url, lambda conn: inspect(conn).get_columns("messages"))
    [(stored,)] = _on(
        database_url,
        lambda conn: conn.execute(text("SELECT idempotency_key_hash FROM messages")).all(),
    )
    assert "idempotency_key" not in {column["name"] for column in columns}
    assert stored == idempotency_digest("order:ada@example.org")


def test_0009_starts_afresh_over_an_index_an_interrupted_run_left(database_url: str) -> None:
    # On PostgreSQL an interrupted CREATE INDEX CONCURRENTLY leaves its index behind (invalid):
    # the leftover here stands for it.
    migrate.upgrade(database_url, "0008")
    _on(
        database_url,
        lambda conn: conn.execute(text("CREATE INDEX ix_messages_waiting ON messages (category)")),
    )
    migrate.upgrade(database_url, "0009")
    indexes = _on(database_url, lambda conn: inspect(conn).get_indexes("messages"))
    [waiting] = [index for index in indexes if index["name"] == "ix_messages_waiting"]
    assert waiting["column_names"] == ["recipient_id", "created_at", "id"]
