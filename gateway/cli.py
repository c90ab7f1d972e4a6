"""`libral-gateway` command line: serve, migrate, sandbox."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.roles import ROLES, Role
from gateway.settings import Settings, SettingsError, content_key, load_settings, telegram_rates
from storage import migrate as migrations

if TYPE_CHECKING:
    from gateway.channel_wiring import ChannelsConfig
    from gateway.runtime import GatewayConfig

# aiogram takes seconds to import (it builds every Bot API type), so the runtime is imported
# only by the commands that run it: `migrate` and errors in settings answer at once.

log = logging.getLogger("libral_gateway")

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="libral-gateway",
        description="Privacy-first communication gateway with a Telegram personal log.",
        epilog="Configuration comes from LIBRAL_* environment variables and ./.env.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the bot, HTTP API and workers (migrates the database first)",
        description="Run the bot, HTTP API and workers against Telegram. "
        "Needs LIBRAL_BOT_TOKEN; migrates the database to head first.",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: the bot, HTTP API, delivery worker and scheduled work (run one per bot "
        "token); api: only the HTTP API, to run more of beside it on the same database "
        "(share the port with LIBRAL_HTTP_REUSE_PORT=true, or put them behind a load "
        "balancer). An api process does not migrate: the database must be at the newest "
        "schema already (default: all)",
    )
    sub.add_parser("migrate", help="upgrade the database to the newest schema")
    sandbox = sub.add_parser(
        "sandbox",
        help="run a local Telegram Bot API server and the gateway wired to it",
        description="Run everything locally with no Telegram account and no internet: a "
        "faithful Bot API server with a control API to act as users, and the gateway "
        "polling it.",
    )
    sandbox.add_argument(
        "--bot-api-port", type=int, default=8081, help="port of the sandbox Bot API (8081)"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sandbox.add_argument(
        "--demo",
        action="store_true",
        help="walk through the product (a person, a forum group, /setup, /token, sample "
        "messages), print the personal log and exit",
    )
    return parser


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiogram logs every update at INFO; its own lines carry no content but are noisy.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO, the worker's heartbeat four times a
    # minute among them; our jobs log what they do, and a job's failure is still an ERROR.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)


async def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _cmd_migrate(settings: Settings) -> int:
    migrations.upgrade(settings.database_url)
    heads = ", ".join(migrations.current_heads(settings.database_url))
    print(f"database is at the newest schema ({heads})")
    return 0


def _gateway_config(settings: Settings, token: str) -> GatewayConfig:
    from gateway.runtime import GatewayConfig

    return GatewayConfig(
        bot_token=token,
        telegram_api_url=settings.telegram_api_url,
        database_url=settings.database_url,
        http_host=settings.http_host,
        http_port=settings.http_port,
        content_key=content_key(settings),
        public_url=settings.public_url,
        channels=channels_config(settings),
        telegram_rates=telegram_rates(settings),
        telegram_request_timeout=settings.telegram_request_timeout,
        reuse_port=settings.http_reuse_port,
    )


def channels_config(settings: Settings) -> ChannelsConfig:
    """The fallback channels the settings turn on (email and SMS need their LIBRAL_* values)."""
    from gateway.channel_wiring import ChannelsConfig
    from gateway.channels.email import SmtpConfig
    from gateway.channels.sms import SmsConfig
    from gateway.channels.webhook import parse_schedule

    smtp = None
    host, sender = settings.smtp_host, settings.smtp_from
    if bool(host) != bool(sender):
        missing = "LIBRAL_SMTP_FROM" if host else "LIBRAL_SMTP_HOST"
        raise SettingsError(f"{missing}: is needed too, to send email (or unset both)")
    if host and sender:
        # RFC 8058: every email carries a one-click unsubscribe link, which must be https.
        if not (settings.public_url or "").startswith("https://"):
            raise SettingsError(
                "LIBRAL_PUBLIC_URL: must be the gateway's https:// address when email is on "
                "(emails carry an unsubscribe link to it)"
            )
        default_port = {"tls": 465, "starttls": 587, "none": 25}[settings.smtp_security]
        smtp = SmtpConfig(
            host=host,
            port=settings.smtp_port or default_port,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            security=settings.smtp_security,
            sender=sender,
        )
    sms = None
    url, sid, token, number = (
        settings.sms_api_url,
        settings.sms_account_sid,
        settings.sms_auth_token,
        settings.sms_from,
    )
    given = [
        name
        for name, value in (
            ("LIBRAL_SMS_API_URL", url),
            ("LIBRAL_SMS_ACCOUNT_SID", sid),
            ("LIBRAL_SMS_AUTH_TOKEN", token),
            ("LIBRAL_SMS_FROM", number),
        )
        if value
    ]
    if given and len(given) < 4:
        absent = {
            "LIBRAL_SMS_API_URL",
            "LIBRAL_SMS_ACCOUNT_SID",
            "LIBRAL_SMS_AUTH_TOKEN",
            "LIBRAL_SMS_FROM",
        } - set(given)
        raise SettingsError(f"{sorted(absent)[0]}: is needed too, to send SMS (or unset all four)")
    if url and sid and token and number:
        sms = SmsConfig(
            api_url=url, account_sid=sid, auth_token=token.get_secret_value(), sender=number
        )
    schedule = tuple(d.total_seconds() for d in parse_schedule(settings.webhook_retry_schedule))
    return ChannelsConfig(smtp=smtp, sms=sms, webhook_schedule=schedule)


def _cmd_serve(settings: Settings, role: Role) -> int:
    if settings.bot_token is None:
        raise SettingsError(
            "LIBRAL_BOT_TOKEN: is required for serve (use `libral-gateway sandbox` to try the "
            "gateway without Telegram)"
        )
    if role == "all":
        migrations.upgrade(settings.database_url)
    elif not migrations.is_at_head(settings.database_url):
        # Migrating here could race the "all" process doing the same.
        print(
            "libral-gateway: the database is not at the newest schema; start "
            "`libral-gateway serve` (role all) or run `libral-gateway migrate` first",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    config = dataclasses.replace(
        _gateway_config(settings, settings.bot_token.get_secret_value()), role=role
    )

    from gateway.runtime import run_gateway

    async def main() -> None:
        stop = asyncio.Event()
        await _until_signalled(stop)
        await run_gateway(config, stop)

    asyncio.run(main())
    return 0


def _cmd_sandbox(settings: Settings, host: str, bot_api_port: int, demo: bool) -> int:
    from gateway.sandbox_demo import DemoError
    from gateway.sandbox_mode import run_sandbox_with_gateway

    async def main() -> None:
        stop = asyncio.Event()
        await _until_signalled(stop)
        await run_sandbox_with_gateway(settings, host, bot_api_port, stop, demo=demo)

    try:
        asyncio.run(main())
    except DemoError as exc:
        print(f"libral-gateway: demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        _setup_logging()
        if args.command == "migrate":
            return _cmd_migrate(settings)
        if args.command == "serve":
            return _cmd_serve(settings, args.role)
        return _cmd_sandbox(settings, args.host, args.bot_api_port, args.demo)
    except SettingsError as exc:
        print(f"libral-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        # Typically a port already in use: one line, no traceback.
        print(f"libral-gateway: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
