"""Migrations and models agree, and the schema goes down to base and back up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect

from storage import migrate
from storage.models import Base

TABLES = {"users", "log_groups", "topics", "api_tokens", "messages", "delivery_attempts"}


def _sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite")


def test_upgrade_to_head_matches_models(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = create_sync_engine(_sync_url(database_url))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert ctx.get_current_heads() == migrate.current_heads(database_url)
        assert set(inspect(conn).get_table_names()) >= TABLES
    engine.dispose()


def test_diff_detects_a_model_change(database_url: str) -> None:
    """The check above can fail: a column the migrations lack shows up as a diff."""
    from sqlalchemy import Column, Integer, MetaData, Table

    migrate.upgrade(database_url)
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("users", extra, Column("shoe_size", Integer), extend_existing=True)
    engine = create_sync_engine(_sync_url(database_url))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, extra)
    engine.dispose()
    assert any(d[0] == "add_column" and d[3].name == "shoe_size" for d in diff)


def test_downgrade_to_base_and_back(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "base")
    db = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names & TABLES == set()
    migrate.upgrade(database_url)
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names >= TABLES


def test_sqlite_runs_in_wal_mode_with_foreign_keys(migrated_url: str) -> None:
    db = Path(migrated_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stored_idempotency_keys_become_hashes(database_url: str) -> None:
    """0006 replaces the callers' key text by its hash; a repeat is still recognised."""
    from gateway.submission import idempotency_digest

    migrate.upgrade(database_url, "0005")
    db = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, telegram_id, created_at) VALUES (1, 7, '2026-01-01')")
        conn.execute(
            "INSERT INTO messages (id, recipient_id, category, priority, status, created_at,"
            " retention_expires_at, next_attempt_at, attempt_count, idempotency_key)"
            " VALUES ('m1', 1, 'general', 'normal', 'delivered', '2026-01-01', '2026-01-02',"
            " '2026-01-01', 1, 'order:ada@example.org')"
        )
    migrate.upgrade(database_url)
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(messages)")]
        [(stored,)] = conn.execute("SELECT idempotency_key_hash FROM messages").fetchall()
    assert "idempotency_key" not in columns
    assert stored == idempotency_digest("order:ada@example.org")
