"""setMyCommands / getMyCommands / deleteMyCommands per scope and language."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat

from tests.sandbox.conftest import Scene

START = BotCommand(command="start", description="Start")
HELP = BotCommand(command="help", description="Help")


async def test_commands_per_scope_and_language(bot: Bot, scene: Scene) -> None:
    assert await bot.get_my_commands() == []
    assert await bot.set_my_commands([START, HELP])
    assert await bot.set_my_commands([HELP], scope=BotCommandScopeAllPrivateChats())
    assert await bot.set_my_commands([START], language_code="de")
    chat_scope = BotCommandScopeChat(chat_id=scene.group_id)
    assert await bot.set_my_commands([HELP], scope=chat_scope)
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["start"]
    private = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats())
    assert [c.command for c in private] == ["help"]
    assert [c.command for c in await bot.get_my_commands(scope=chat_scope)] == ["help"]
    assert await bot.delete_my_commands(scope=BotCommandScopeAllPrivateChats())
    assert await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats()) == []
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]


async def test_invalid_commands(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Not Valid", description="x")])
    with pytest.raises(TelegramBadRequest, match="invalid language code"):
        await bot.set_my_commands([START], language_code="english")
