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


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"smtp_host": "mail.example.org"}, "LIBRAL_SMTP_FROM: is needed too"),
        ({"smtp_from": "gw@example.org"}, "LIBRAL_SMTP_HOST: is needed too"),
        (
            {"smtp_host": "mail.example.org", "smtp_from": "gw@example.org"},
            "LIBRAL_PUBLIC_URL: must be the gateway's https:// address",
        ),
        (
            {
                "smtp_host": "mail.example.org",
                "smtp_from": "gw@example.org",
                "public_url": "http://gateway.example.org",
            },
            "LIBRAL_PUBLIC_URL",
        ),
        ({"sms_api_url": "https://api.twilio.com"}, "LIBRAL_SMS_ACCOUNT_SID: is needed too"),
    ],
)
def test_half_configured_channels_are_refused_with_one_line(
    values: dict[str, str], says: str
) -> None:
    from gateway.cli import channels_config
    from gateway.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as refused:
        channels_config(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    assert str(refused.value).startswith(says)


def test_fully_configured_channels_are_on() -> None:
    from gateway.cli import channels_config
    from gateway.settings import Settings

    config = channels_config(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            smtp_host="mail.example.org",
            smtp_from="gw@example.org",
            public_url="https://gateway.example.org",
            sms_api_url="https://api.twilio.com",
            sms_account_sid="AC123",
            sms_auth_token="secret",
            sms_from="+15550001111",
        )
    )
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == (
        "mail.example.org",
        587,
        "starttls",
    )
    assert config.sms is not None
    assert config.sms.sender == "+15550001111"


def test_an_api_process_refuses_a_database_not_at_the_newest_schema(tmp_path: Path) -> None:
    env = {
        "LIBRAL_BOT_TOKEN": "123456:" + "A" * 35,
        "LIBRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}",
    }
    result = run_cli("serve", "--role", "api", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "libral-gateway: the database is not at the newest schema; start `libral-gateway "
        "serve` (role all) or run `libral-gateway migrate` first"
    ]
    with sqlite3.connect(tmp_path / "new.sqlite3") as conn:  # it did not migrate it either
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    unknown = run_cli("serve", "--role", "worker", env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "invalid choice: 'worker'" in unknown.stderr
