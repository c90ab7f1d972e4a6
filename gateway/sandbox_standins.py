"""The sandbox's stand-ins for the fallback channels: an SMTP server (aiosmtpd), a webhook
receiver, a Twilio-compatible SMS API and an ntfy-like push server, all on this machine, and
the gateway's channel settings pointing at them (composition root, like gateway.sandbox_mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gateway import webhook_signing
from gateway.channel_wiring import ChannelsConfig
from gateway.channels.email import SmtpConfig
from gateway.channels.sms import SmsConfig
from sandbox.push_server import TopicMaskingAccessLogger, create_push_server_app
from sandbox.sms_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, create_sms_api_app
from sandbox.smtp import SmtpStandIn
from sandbox.webhook_receiver import create_webhook_receiver_app

SMS_FROM = "+15550000000"
MAIL_FROM = "Libral Gateway sandbox <gateway@sandbox.localhost>"


@dataclass(frozen=True)
class StandIns:
    smtp: str  # host:port
    mailbox: str  # base URL of the page listing the mail the SMTP stand-in received
    webhooks: str  # base URL: register {webhooks}/hooks/<name> with /webhook
    sms: str
    push: str  # register {push}/<topic> with /push
    channels: ChannelsConfig

    def banner_lines(self) -> list[str]:
        return [
            f"  SMTP stand-in   {self.smtp}  (read what arrived: {self.mailbox}/mail)",
            f"  webhook target  {self.webhooks}/hooks/<name>",
            f"                  (what arrived: {self.webhooks}/hooks/<name>/requests)",
            f"  SMS API         {self.sms}  (see {self.sms}/sandbox/messages)",
            f"  push server     {self.push}/<topic>  (see {self.push}/sandbox/messages)",
        ]


async def _serve(
    stack: contextlib.AsyncExitStack, app: web.Application, host: str, **options: object
) -> str:
    runner = web.AppRunner(app, shutdown_timeout=1.0, **options)  # type: ignore[arg-type]
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return f"http://{host}:{port}"


def _mailbox_app(smtp: SmtpStandIn) -> web.Application:
    """GET /mail: what the SMTP stand-in received (e.g. a verification code), newest last."""

    async def mail(_request: web.Request) -> web.Response:
        listed = []
        for received in smtp.messages:
            body = received.message.get_body(("plain",))
            listed.append(
                {
                    "to": list(received.recipients),
                    "subject": str(received.message["Subject"]),
                    "list_unsubscribe": received.message["List-Unsubscribe"],
                    "text": body.get_content() if body is not None else None,
                }
            )
        return web.json_response({"mail": listed})

    app = web.Application()
    app.router.add_get("/mail", mail)
    return app


@contextlib.asynccontextmanager
async def stand_ins(host: str = "127.0.0.1") -> AsyncIterator[StandIns]:
    async with contextlib.AsyncExitStack() as stack:
        smtp = SmtpStandIn()
        await smtp.start(host, 0)
        stack.push_async_callback(smtp.stop)
        mailbox = await _serve(stack, _mailbox_app(smtp), host)
        webhooks = await _serve(
            stack, create_webhook_receiver_app(verifier=webhook_signing.verify), host
        )
        sms = await _serve(
            stack,
            create_sms_api_app(account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN),
            host,
        )
        # The topic in a push URL is a secret: the default access log would print it.
        push = await _serve(
            stack, create_push_server_app(), host, access_log_class=TopicMaskingAccessLogger
        )
        yield StandIns(
            smtp=f"{host}:{smtp.port}",
            mailbox=mailbox,
            webhooks=webhooks,
            sms=sms,
            push=push,
            channels=ChannelsConfig(
                smtp=SmtpConfig(
                    host=host,
                    port=smtp.port,
                    username=None,
                    password=None,
                    security="none",
                    sender=MAIL_FROM,
                ),
                sms=SmsConfig(
                    api_url=sms,
                    account_sid=DEFAULT_ACCOUNT_SID,
                    auth_token=DEFAULT_AUTH_TOKEN,
                    sender=SMS_FROM,
                ),
                allow_local_urls=True,
            ),
        )
