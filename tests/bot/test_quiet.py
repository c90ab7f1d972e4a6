"""/quiet and /timezone: good input is stored and confirmed, bad input gets a one-line hint."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import UserPreferences
from tests.bot.conftest import RunningBot, has_text


async def _row(running: RunningBot) -> UserPreferences | None:
    async with running.sessionmaker() as session:
        return (await session.scalars(select(UserPreferences))).one_or_none()


async def test_quiet_commands_store_the_setting(running: RunningBot) -> None:
    user = await running.register("Ada")
    reply = await running.reply_after(user, user, "/quiet 23:00 6:30", lambda m: True)
    assert "Saved" in (reply.text or "")
    assert "23:00–06:30 (silent)" in (reply.text or "")
    row = await _row(running)
    assert row is not None
    assert (row.quiet_start, row.quiet_end, row.quiet_enabled) == ("23:00", "06:30", True)

    await running.reply_after(user, user, "/quiet defer", lambda m: has_text(m, "Saved"))
    await running.reply_after(user, user, "/quiet off", lambda m: has_text(m, "Saved"))
    row = await _row(running)
    assert row is not None
    assert (row.quiet_mode, row.quiet_enabled) == ("defer", False)


@pytest.mark.parametrize("args", ["25:00 07:00", "22:00", "sometimes", "22:00 7:75"])
async def test_bad_quiet_input_gets_a_hint_and_changes_nothing(
    running: RunningBot, args: str
) -> None:
    user = await running.register("Bo")
    reply = await running.reply_after(user, user, f"/quiet {args}", lambda m: True)
    assert "/quiet 22:00 07:30" in (reply.text or "")
    assert "Saved" not in (reply.text or "")
    assert await _row(running) is None


async def test_timezone_good_and_bad(running: RunningBot) -> None:
    user = await running.register("Cy")
    bad = await running.reply_after(user, user, "/timezone Mars/Olympus", lambda m: True)
    assert "/timezone Europe/Berlin" in (bad.text or "")
    assert await _row(running) is None
    good = await running.reply_after(user, user, "/timezone Europe/Berlin", lambda m: True)
    assert "Europe/Berlin" in (good.text or "")
    row = await _row(running)
    assert row is not None
    assert row.timezone == "Europe/Berlin"


async def test_quiet_needs_registration(running: RunningBot) -> None:
    stranger = await running.control.create_user("Eve")
    reply = await running.reply_after(stranger, stranger, "/quiet off", lambda m: True)
    assert "/start" in (reply.text or "")
