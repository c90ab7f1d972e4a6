"""Linking a forum group as a personal log: setup, its checks, relinking and moving."""

from __future__ import annotations

from sqlalchemy import select

from gateway.personal_log import create_topic
from gateway.topics import CREATED_TOPICS
from storage.enums import Category
from storage.models import LogGroup, Topic
from storage.repositories import groups
from tests.bot.conftest import TOPIC_RIGHTS, WELCOME, RunningBot, buttons, has_text


async def stored_topics(running: RunningBot, chat_id: int) -> dict[Category, int | None]:
    async with running.sessionmaker() as session:
        group = await groups.by_chat_id(session, chat_id)
        assert group is not None
        return {t.category: t.message_thread_id for t in group.topics}


async def test_adding_the_bot_sets_up_topics_and_welcomes(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.forum_log(owner, "Ada's log")

    chat = await running.control.get_chat(group_id)
    live = [t for t in chat.topics if t.deleted_at is None]
    assert [(t.name, t.icon_color) for t in live] == [
        (s.name, s.icon_color) for s in CREATED_TOPICS
    ]
    welcome = next(m for m in chat.bot_messages() if has_text(m, WELCOME))
    assert welcome.message_thread_id is None  # the General topic
    for spec in CREATED_TOPICS:
        assert spec.name in (welcome.text or "")

    stored = await stored_topics(running, group_id)
    by_name = {t.name: t.message_thread_id for t in live}
    assert stored == {
        **{s.category: by_name[s.name] for s in CREATED_TOPICS},
        Category.GENERAL: None,
    }


async def test_setup_again_changes_nothing(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.forum_log(owner)
    before = await stored_topics(running, group_id)

    reply = await running.reply_after(owner, group_id, "/setup", lambda m: has_text(m, "already"))
    assert reply.message_thread_id is None
    chat = await running.control.get_chat(group_id)
    assert len(chat.topics) == 5
    assert await stored_topics(running, group_id) == before


async def test_setup_from_a_topic_answers_in_that_topic(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.forum_log(owner)
    thread = (await stored_topics(running, group_id))[Category.SYSTEM]
    assert thread is not None
    await running.control.send_message(owner, group_id, "/setup", message_thread_id=thread)
    reply = await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, "already"))
    assert reply.message_thread_id == thread


async def test_not_a_forum(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.control.create_group("Plain", owner_id=owner, is_forum=False)
    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    hint = await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, "change"))
    assert "Turn on Topics in the group settings" in (hint.text or "")
    assert "Manage topics" not in (hint.text or "")
    await running.settled()
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(LogGroup))).all() == []


async def test_bot_without_the_topics_right(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.control.create_group("Log", owner_id=owner, is_forum=True)
    await running.control.set_bot_membership(group_id, by_id=owner, status="member")
    hint = await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, "change"))
    assert "Make me an administrator with the “Manage topics” right" in (hint.text or "")
    assert "Topics in the group settings" not in (hint.text or "")
    # promoting the bot with the right runs setup by itself
    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, WELCOME))
    assert len((await running.control.get_chat(group_id)).topics) == 5


async def test_sender_not_admin_and_unregistered_person(running: RunningBot) -> None:
    owner = await running.control.create_user("Owner")  # never started the bot
    group_id = await running.control.create_group("Club", owner_id=owner, is_forum=True)
    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    hint = await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, "/start"))
    assert "private" in (hint.text or "")

    member = await running.register("Member")
    reply = await running.reply_after(member, group_id, "/setup", lambda m: has_text(m, "change"))
    assert "Only an administrator of this group can link it" in (reply.text or "")
    assert len((await running.control.get_chat(group_id)).topics) == 0
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(LogGroup))).all() == []


async def test_removing_the_bot_unlinks_and_adding_it_back_relinks(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.forum_log(owner, "Ada's log")
    before = await stored_topics(running, group_id)

    await running.control.set_bot_membership(group_id, by_id=owner, status="kicked")
    notice = await running.control.wait_for_bot_message(owner, lambda m: has_text(m, "removed"))
    assert "Ada&#x27;s log" not in (notice.text or "")  # escaped HTML was parsed, not shown
    assert "Ada's log" in (notice.text or "")
    await running.settled()
    async with running.sessionmaker() as session:
        group = await groups.by_chat_id(session, group_id)
        assert group is not None
        assert group.unlinked_at is not None

    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    await running.control.wait_for_chat(
        group_id, lambda c: sum(has_text(m, WELCOME) for m in c.bot_messages()) == 2
    )
    await running.settled()
    async with running.sessionmaker() as session:
        group = await groups.by_chat_id(session, group_id)
        assert group is not None
        assert group.unlinked_at is None
    assert await stored_topics(running, group_id) == before
    assert len((await running.control.get_chat(group_id)).topics) == 5


async def test_moving_the_log_needs_the_owners_confirmation(running: RunningBot) -> None:
    owner = await running.register("Ada")
    first = await running.forum_log(owner, "Old log")
    second = await running.control.create_group("New log", owner_id=owner, is_forum=True)
    await running.control.set_bot_membership(
        second, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    ask = await running.control.wait_for_bot_message(second, lambda m: bool(m.reply_markup))
    assert "Old log" in (ask.text or "")
    [(_, data)] = buttons(ask)
    await running.settled()
    assert len((await running.control.get_chat(second)).topics) == 0
    async with running.sessionmaker() as session:
        assert [g.chat_id for g in (await session.scalars(select(LogGroup))).all()] == [first]

    stranger = await running.register("Eve")
    await running.control.send_message(stranger, second, "hi")  # joins the group
    answer = await running.press(stranger, second, ask, data)
    assert answer["show_alert"] is True
    assert answer["text"] == "This button is not for you."
    async with running.sessionmaker() as session:
        assert [g.chat_id for g in (await session.scalars(select(LogGroup))).all()] == [first]

    answer = await running.press(owner, second, ask, data)
    assert answer["show_alert"] is False
    chat = await running.control.get_chat(second)
    assert chat.message(ask.message_id).reply_markup is None  # the button is gone
    assert any(has_text(m, WELCOME) for m in chat.bot_messages())
    assert len(chat.topics) == 5
    async with running.sessionmaker() as session:
        rows = (await session.scalars(select(LogGroup))).all()
        assert [g.chat_id for g in rows] == [second]
        assert len((await session.scalars(select(Topic))).all()) == 6  # old topics deleted


async def test_create_topic_recreates_a_lost_topic(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.forum_log(owner)
    old = (await stored_topics(running, group_id))[Category.PAYMENT]
    async with running.sessionmaker() as session, session.begin():
        group = await session.scalar(select(LogGroup).where(LogGroup.chat_id == group_id))
        assert group is not None  # loaded without its topics, as the delivery worker may
        topic = await create_topic(session, running.bot, group, Category.PAYMENT)
        assert topic.message_thread_id not in (None, old)
    stored = await stored_topics(running, group_id)
    assert stored[Category.PAYMENT] == topic.message_thread_id
    assert len(stored) == 6


async def test_quick_membership_changes_do_not_duplicate_topics(running: RunningBot) -> None:
    owner = await running.register("Ada")
    group_id = await running.control.create_group("Log", owner_id=owner, is_forum=True)
    # Both updates reach the bot in one getUpdates batch and are handled concurrently.
    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights={"can_manage_topics": False}
    )
    await running.control.set_bot_membership(
        group_id, by_id=owner, status="administrator", rights=TOPIC_RIGHTS
    )
    await running.control.wait_for_bot_message(group_id, lambda m: has_text(m, WELCOME))
    await running.settled()
    assert len((await running.control.get_chat(group_id)).topics) == 5
    assert len(await stored_topics(running, group_id)) == 6
