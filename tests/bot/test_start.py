"""/start, /help and the command menus."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import User
from tests.bot.conftest import RunningBot, has_text


async def test_start_registers_and_tells_the_next_step(running: RunningBot) -> None:
    user_id = await running.control.create_user("Ada", last_name="Lovelace", language_code="de")
    reply = await running.reply_after(user_id, user_id, "/start", lambda m: True)
    assert reply.text is not None
    assert "Topics" in reply.text
    assert "“Manage topics”" in reply.text
    assert "/setup" in reply.text
    async with running.sessionmaker() as session:
        users = (await session.scalars(select(User))).all()
    assert [(u.telegram_id, u.language) for u in users] == [(user_id, "de")]
    # /start again keeps one row
    await running.reply_after(user_id, user_id, "/start", lambda m: True)
    async with running.sessionmaker() as session:
        assert len((await session.scalars(select(User))).all()) == 1


async def test_commands_are_registered_per_scope(running: RunningBot) -> None:
    calls = [c for c in await running.control.get_calls() if c.method == "setMyCommands"]
    by_scope = {
        c.params["scope"]["type"]: [cmd["command"] for cmd in c.params["commands"]] for c in calls
    }
    assert by_scope == {
        "all_private_chats": [
            "start",
            "help",
            "token",
            "tokens",
            "status",
            "prefs",
            "quiet",
            "timezone",
            "test",
            "channels",
            "email",
            "webhook",
            "phone",
            "push",
            "retention",
            "export",
            "erase",
        ],
        "all_group_chats": ["setup", "help"],
    }
    assert all(c.status == 200 for c in calls)


async def test_help_lists_the_commands(running: RunningBot) -> None:
    user_id = await running.control.create_user("Ada")
    reply = await running.reply_after(user_id, user_id, "/help", lambda m: has_text(m, "/token"))
    assert reply.text is not None
    for command in ("/start", "/help", "/token", "/tokens", "/status", "/prefs", "/setup"):
        assert command in reply.text
