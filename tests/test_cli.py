"""The command line as an operator meets it: bad settings, migrate, help."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIBRAL_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LIBRAL_HTTP_PORT", "eighty", "valid integer"),
        ("LIBRAL_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("LIBRAL_DATABASE_URL", "mysql://x", "sqlite+aiosqlite://"),
        ("LIBRAL_BOT_TOKEN", "not-a-token", "digits, a colon"),
        ("LIBRAL_ADMIN_IDS", "12,abc", "comma-separated"),
        ("LIBRAL_TELEGRAM_API_URL", "ftp://x", "http"),
    ],
)
def test_bad_setting_exits_2_with_one_line(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    result = run_cli("migrate", env={variable: value}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"libral-gateway: {variable}: ")
    assert says in lines[0]
    assert "Traceback" not in result.stderr
    if variable == "LIBRAL_BOT_TOKEN":
        assert value not in result.stderr  # secrets are never echoed


def test_bad_setting_in_dotenv_is_named_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LIBRAL_HTTP_PORT=abc\n")
    result = run_cli("migrate", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("libral-gateway: LIBRAL_HTTP_PORT:")


def test_serve_without_token_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "libral-gateway: LIBRAL_BOT_TOKEN: is required for serve (use `libral-gateway sandbox` "
        "to try the gateway without Telegram)"
    ]


def test_migrate_creates_default_database_under_var(tmp_path: Path) -> None:
    result = run_cli("migrate", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "var" / "libral-gateway.sqlite3"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "messages" in tables
    again = run_cli("migrate", env={}, cwd=tmp_path)
    assert again.returncode == 0
    assert "newest schema" in again.stdout


def test_no_command_prints_usage(tmp_path: Path) -> None:
    result = run_cli(env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert "serve" in result.stderr
    assert "sandbox" in result.stderr
