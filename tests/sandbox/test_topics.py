"""createForumTopic, editForumTopic, deleteForumTopic."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from sandbox.client import SandboxClient
from sandbox.methods.topics import TOPIC_ICON_COLORS
from tests.sandbox.conftest import Scene


async def test_topics_get_increasing_thread_ids_and_a_service_message(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    first = await bot.create_forum_topic(scene.group_id, "Auth", icon_color=TOPIC_ICON_COLORS[1])
    await bot.send_message(scene.group_id, "between", message_thread_id=first.message_thread_id)
    second = await bot.create_forum_topic(scene.group_id, "Payments")
    assert first.message_thread_id > 1
    assert second.message_thread_id > first.message_thread_id
    assert first.icon_color == TOPIC_ICON_COLORS[1]
    chat = await control.get_chat(scene.group_id)
    created = chat.message(first.message_thread_id)
    assert created.service == {
        "forum_topic_created": {"name": "Auth", "icon_color": TOPIC_ICON_COLORS[1]}
    }
    assert created.message_thread_id == first.message_thread_id
    assert [t.name for t in chat.topics] == ["Auth", "Payments"]
    in_topic = await bot.send_message(
        scene.group_id, "hello", message_thread_id=second.message_thread_id
    )
    assert in_topic.message_thread_id == second.message_thread_id
    assert in_topic.is_topic_message


@pytest.mark.parametrize("color", TOPIC_ICON_COLORS)
async def test_every_allowed_icon_color_works(bot: Bot, scene: Scene, color: int) -> None:
    assert (await bot.create_forum_topic(scene.group_id, "t", icon_color=color)).icon_color == color


async def test_forum_rights_name_and_color_checks(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    with pytest.raises(TelegramBadRequest, match="TOPIC_ICON_COLOR_INVALID"):
        await bot.create_forum_topic(scene.group_id, "t", icon_color=0xFF0000)
    with pytest.raises(TelegramBadRequest, match="TOPIC_TITLE_TOO_LONG"):
        await bot.create_forum_topic(scene.group_id, "x" * 129)
    assert (await bot.create_forum_topic(scene.group_id, "x" * 128)).name == "x" * 128
    plain = await control.create_group("Plain", owner_id=scene.user_id, is_forum=False)
    await control.set_bot_membership(
        plain, by_id=scene.user_id, status="administrator", rights={"can_manage_topics": True}
    )
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(plain, "t")
    await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="member")
    with pytest.raises(TelegramBadRequest, match="not enough rights to create a topic"):
        await bot.create_forum_topic(scene.group_id, "t")
    await control.set_bot_membership(
        scene.group_id,
        by_id=scene.user_id,
        status="administrator",
        rights={"can_delete_messages": True},
    )
    with pytest.raises(TelegramBadRequest, match="not enough rights to create a topic"):
        await bot.create_forum_topic(scene.group_id, "t")


async def test_edit_and_delete_topic(bot: Bot, control: SandboxClient, scene: Scene) -> None:
    topic = await bot.create_forum_topic(scene.group_id, "Old name")
    note = await bot.send_message(scene.group_id, "note", message_thread_id=topic.message_thread_id)
    assert await bot.edit_forum_topic(scene.group_id, topic.message_thread_id, name="New name")
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.edit_forum_topic(scene.group_id, topic.message_thread_id, name="New name")
    chat = await control.get_chat(scene.group_id)
    assert chat.topics[0].name == "New name"
    assert await bot.delete_forum_topic(scene.group_id, topic.message_thread_id)
    chat = await control.get_chat(scene.group_id)
    assert chat.topics[0].deleted_at is not None
    assert chat.message(note.message_id).deleted_at is not None
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(scene.group_id, "x", message_thread_id=topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.delete_forum_topic(scene.group_id, topic.message_thread_id)
