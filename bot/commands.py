"""The command menus Telegram shows: different in private chats and in groups."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

PRIVATE_COMMANDS: tuple[BotCommand, ...] = (
    BotCommand(command="start", description="Register and see what I do"),
    BotCommand(command="help", description="What I can do"),
    BotCommand(command="token", description="Create a personal API token"),
    BotCommand(command="tokens", description="List and revoke your API tokens"),
    BotCommand(command="status", description="Your personal log and message counts"),
    BotCommand(command="prefs", description="Preferences: categories, channels, quiet hours"),
    BotCommand(command="quiet", description="Quiet hours: /quiet 22:00 07:30, off, defer, silent"),
    BotCommand(command="timezone", description="Your time zone, e.g. /timezone Europe/Berlin"),
    BotCommand(command="test", description="Send a test message to each enabled topic"),
    BotCommand(command="channels", description="Your email, webhook, SMS and push channels"),
    BotCommand(command="email", description="Email: /email you@example.org, verify, off"),
    BotCommand(command="webhook", description="Signed webhooks: /webhook https://..., test, off"),
    BotCommand(command="phone", description="Share your phone number for urgent SMS"),
    BotCommand(command="push", description="Push via ntfy: /push https://ntfy.sh/topic, off"),
    BotCommand(command="retention", description="How long I keep message records: /retention 7d"),
    BotCommand(command="export", description="Everything I store about you, as a JSON file"),
    BotCommand(command="erase", description="Erase everything I store about you"),
)

GROUP_COMMANDS: tuple[BotCommand, ...] = (
    BotCommand(command="setup", description="Link this group as your personal log"),
    BotCommand(command="help", description="What I can do"),
)


async def register_commands(bot: Bot) -> None:
    """Hooked to Dispatcher.startup: publish both menus (setMyCommands is idempotent)."""
    await bot.set_my_commands(list(PRIVATE_COMMANDS), scope=BotCommandScopeAllPrivateChats())
    await bot.set_my_commands(list(GROUP_COMMANDS), scope=BotCommandScopeAllGroupChats())
