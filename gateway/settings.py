"""Deployment settings from `LIBRAL_*` environment variables and `.env` (DESIGN.md contracts).

Built once in the composition root (`gateway.cli`) and passed down; never a module global.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from gateway.delivery.pacing import TelegramRates

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/libral-gateway.sqlite3"

# Telegram tokens look like "123456:AA...": digits, a colon, then URL-safe characters.
_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIBRAL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = DEFAULT_DATABASE_URL
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # SO_REUSEPORT: several processes (`serve` and `serve --role api`) share the port (Linux).
    http_reuse_port: bool = False
    # NoDecode: "1,2,3" is split by the validator below instead of being parsed as JSON.
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    public_url: str | None = None
    # AES key for message content at rest; without it a key file is created beside the data.
    content_key: SecretStr | None = None
    content_key_file: Path = Path("./var/content.key")
    # Email (all of host and from needed to turn email on).
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # default by security
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_from: str | None = None
    # SMS through a Twilio-compatible API (all four needed to turn SMS on).
    sms_api_url: str | None = None
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    sms_from: str | None = None
    # Webhook retry delays, e.g. "5s,5m,30m,2h,5h,10h,10h".
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"
    # Telegram's limits the delivery worker paces to; 0 lifts a limit (benchmarks, sandbox).
    telegram_global_rate: float = Field(default=30.0, ge=0)  # messages a second, whole bot
    telegram_group_rate: float = Field(default=20.0, ge=0)  # messages a minute, per group
    telegram_chat_rate: float = Field(default=1.0, ge=0)  # messages a second, per chat
    # Seconds one Bot API send may take; past it the send's outcome is unknown (it is retried,
    # and may arrive twice), so not much shorter than Telegram's slowest answers.
    telegram_request_timeout: int = Field(default=20, ge=1, le=300)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not _TOKEN_RE.match(value.get_secret_value()):
            # Never echo the token itself: it is a credential.
            raise ValueError("must look like 123456789:ABC... (digits, a colon, the secret)")
        return value

    @field_validator("content_key")
    @classmethod
    def _content_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        from gateway.content_cipher import ContentKeyError, decode_key

        try:
            decode_key(value.get_secret_value())
        except ContentKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("smtp_from")
    @classmethod
    def _from_address(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$", value):
            raise ValueError("must be an address like gateway@example.org")
        return value

    @field_validator("sms_from")
    @classmethod
    def _sms_from(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^\+[1-9][0-9]{6,14}$", value):
            raise ValueError("must be a phone number in E.164 form, like +15551234567")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from gateway.channels.webhook import parse_schedule

        parse_schedule(value)  # raises ValueError with a hint
        return value

    @field_validator("telegram_api_url", "public_url", "sms_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(the async drivers the gateway uses)"
            )
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            for part in parts:
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"must be comma-separated Telegram user ids, got {part!r}")
            return [int(p) for p in parts]
        return value


def telegram_rates(settings: Settings) -> TelegramRates:
    """The pacing limits the settings ask for (serve and the sandbox alike)."""
    from gateway.delivery.pacing import TelegramRates

    return TelegramRates(
        global_per_second=settings.telegram_global_rate,
        group_per_minute=settings.telegram_group_rate,
        chat_per_second=settings.telegram_chat_rate,
    )


class SettingsError(Exception):
    """A setting is missing or malformed; `str()` is the one line shown to the operator."""


def content_key(settings: Settings) -> bytes:
    """The content encryption key: LIBRAL_CONTENT_KEY, else the key file (created if new)."""
    from gateway.content_cipher import decode_key, load_or_create_key_file

    if settings.content_key is not None:
        return decode_key(settings.content_key.get_secret_value())
    return load_or_create_key_file(settings.content_key_file)


def load_settings() -> Settings:

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"LIBRAL_{field.upper()}: {message}") from None
