"""Telegram sends whose outcome is unknowable (a timeout or a connection broken after the request
went out) are told apart from failures that certainly sent nothing, counted per bot and logged
without content."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.channels.base import (
    ChannelError,
    DestinationGone,
    OutcomeUnknown,
    Rejected,
    Transient,
)
from gateway.channels.telegram import TelegramAddress, TelegramChannel, refuses_content
from gateway.outbox_payload import OutboxPayload
from gateway.runtime import build_bot
from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
PAYLOAD = OutboxPayload(kind="text", value="unused: parts are sent as given")
SECRET = "the launch code is 0000"


class Sandbox:
    def __init__(self, control: SandboxClient, bot: Bot, chat_id: int) -> None:
        self.control = control
        self.bot = bot
        self.chat_id = chat_id

    async def texts(self) -> list[str | None]:
        return [m.text for m in (await self.control.get_chat(self.chat_id)).bot_messages()]


@pytest.fixture
async def sandbox(aiohttp_server: ServerFactory) -> AsyncIterator[Sandbox]:
    server = await aiohttp_server(create_sandbox_app())
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        control = SandboxClient(url, http)
        user = await control.create_user("Ada")
        await control.send_message(user, user, "/start")  # the bot may write to Ada now
        bot = build_bot(DEFAULT_BOT_TOKEN, url)
        try:
            yield Sandbox(control, bot, user)
        finally:
            await control.clear_faults()  # answers any withheld call
            await bot.session.close()


async def test_a_timeout_after_telegram_took_the_send_is_an_unknown_outcome(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    channel = TelegramChannel(sandbox.bot, request_timeout=1)
    await sandbox.control.add_fault("sendMessage", kind="timeout", delay=10, times=1)
    address = TelegramAddress(sandbox.chat_id, None)

    with (
        caplog.at_level(logging.WARNING, logger="gateway.channels.telegram"),
        pytest.raises(OutcomeUnknown) as raised,
    ):
        await channel.send(address, SECRET, PAYLOAD, last=True)

    assert isinstance(raised.value, Transient)  # retried like any transient failure
    assert raised.value.error_class == "OutcomeUnknown"
    assert "may have been delivered" in raised.value.detail
    assert await sandbox.texts() == [SECRET]  # it was, indeed
    assert channel.outcomes.unknown == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert f"chat {sandbox.chat_id}" in line
    assert "outcome unknown" in line
    assert "twice" in line
    assert SECRET not in line
    assert DEFAULT_BOT_TOKEN.split(":")[1] not in line


@pytest.mark.parametrize("takes_effect", [True, False])
async def test_a_connection_dropped_after_sending_is_an_unknown_outcome(
    sandbox: Sandbox, takes_effect: bool
) -> None:
    channel = TelegramChannel(sandbox.bot)
    await sandbox.control.add_fault(
        "sendMessage", kind="disconnect", takes_effect=takes_effect, times=1
    )
    with pytest.raises(OutcomeUnknown, match="ServerDisconnectedError"):
        await channel.send(TelegramAddress(sandbox.chat_id, None), "hello", PAYLOAD, last=True)
    # Delivered or not, the client cannot tell the two apart: both count.
    assert await sandbox.texts() == (["hello"] if takes_effect else [])
    assert channel.outcomes.unknown == 1
    assert await channel.send(TelegramAddress(sandbox.chat_id, None), "again", PAYLOAD, last=True)


async def test_a_connection_that_could_not_be_opened_sent_nothing(
    unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    bot = build_bot(DEFAULT_BOT_TOKEN, f"http://127.0.0.1:{unused_tcp_port}")
    try:
        channel = TelegramChannel(bot)
        with (
            caplog.at_level(logging.WARNING, logger="gateway.channels.telegram"),
            pytest.raises(Transient) as raised,
        ):
            await channel.send(TelegramAddress(1, None), "hello", PAYLOAD, last=True)
    finally:
        await bot.session.close()
    assert not isinstance(raised.value, OutcomeUnknown)
    assert raised.value.error_class == "TelegramNetworkError"
    assert raised.value.detail == "ClientConnectorError: could not connect"  # no URL, no token
    assert channel.outcomes.unknown == 0
    assert caplog.records == []


async def test_server_errors_are_known_outcomes(sandbox: Sandbox) -> None:
    channel = TelegramChannel(sandbox.bot)
    await sandbox.control.add_fault(
        "sendMessage", error_code=502, description="Bad Gateway", times=1
    )
    with pytest.raises(Transient) as raised:
        await channel.send(TelegramAddress(sandbox.chat_id, None), "hello", PAYLOAD, last=True)
    assert not isinstance(raised.value, OutcomeUnknown)
    assert channel.outcomes.unknown == 0


@pytest.mark.parametrize(
    ("error", "of_content"),
    [
        (Rejected("TelegramBadRequest", "Bad Request: can't parse entities"), True),
        (Rejected("TelegramBadRequest", "Bad Request: message is too long"), True),
        (Rejected("TelegramBadRequest", "Bad Request: text must be non-empty"), True),
        (Rejected("TelegramBadRequest", "Bad Request: message text is empty"), True),
        (Rejected("TelegramEntityTooLarge", "request entity too large"), True),
        (Rejected("TelegramBadRequest", "Bad Request: ENTITIES_TOO_LONG"), True),
        (Rejected("TelegramBadRequest", "Bad Request: MESSAGE_TOO_LONG"), True),
        (Rejected("TelegramBadRequest", "Bad Request: MESSAGE_EMPTY"), True),
        # The chat, the topic or the bot's rights: any other text is refused the same.
        (Rejected("TelegramBadRequest", "Bad Request: not enough rights to send text"), False),
        (Rejected("TelegramBadRequest", "Bad Request: TOPIC_CLOSED"), False),
        (Rejected("NoPersonalLog", "no personal log linked"), False),
        (DestinationGone("TelegramForbiddenError", "Forbidden: bot was kicked"), False),
        (Transient("TelegramServerError", "message is too long"), False),  # not a refusal
    ],
)
def test_refuses_content_tells_a_refused_text_from_a_refused_chat(
    error: ChannelError, of_content: bool
) -> None:
    assert refuses_content(error) is of_content


async def test_an_answer_that_is_not_the_bot_apis_is_an_unknown_outcome(
    aiohttp_server: ServerFactory,
) -> None:
    # A proxy's error page in place of Telegram's JSON: the request got somewhere, so the
    # message may have been sent; retried as unknown, not escaping as an unexpected error.
    async def error_page(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/{path:.*}", error_page)
    server = await aiohttp_server(app)
    bot = build_bot(DEFAULT_BOT_TOKEN, str(server.make_url("")).rstrip("/"))
    try:
        channel = TelegramChannel(bot)
        with pytest.raises(OutcomeUnknown, match="ClientDecodeError"):
            await channel.send(TelegramAddress(1, None), "hello", PAYLOAD, last=True)
    finally:
        await bot.session.close()
    assert channel.outcomes.unknown == 1
