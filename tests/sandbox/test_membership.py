"""The bot joining, being promoted and removed: my_chat_member updates and service messages."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner

from sandbox.client import SandboxClient
from tests.sandbox.conftest import Scene


async def test_adding_the_bot_emits_my_chat_member_and_new_chat_members(
    bot: Bot, control: SandboxClient
) -> None:
    owner = await control.create_user("Owner")
    group = await control.create_group("Log", owner_id=owner, is_forum=True)
    assert await control.set_bot_membership(
        group, by_id=owner, status="administrator", rights={"can_manage_topics": True}
    )
    updates = await bot.get_updates()
    member_update = next(u.my_chat_member for u in updates if u.my_chat_member)
    assert member_update.chat.id == group
    assert member_update.from_user.id == owner
    assert member_update.old_chat_member.status == "left"
    new = member_update.new_chat_member
    assert isinstance(new, ChatMemberAdministrator)
    assert new.can_manage_topics
    assert not new.can_delete_messages
    joined = next(u.message for u in updates if u.message)
    assert joined.new_chat_members is not None
    assert [m.id for m in joined.new_chat_members] == [bot.id]
    # nothing changes, nothing is sent
    assert not await control.set_bot_membership(
        group, by_id=owner, status="administrator", rights={"can_manage_topics": True}
    )


async def test_removing_the_bot(bot: Bot, control: SandboxClient, scene: Scene) -> None:
    before = await bot.get_updates()
    await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="kicked")
    updates = await bot.get_updates(offset=before[-1].update_id + 1)
    member_update = next(u.my_chat_member for u in updates if u.my_chat_member)
    assert member_update.old_chat_member.status == "administrator"
    assert member_update.new_chat_member.status == "kicked"
    left = next(u.message for u in updates if u.message)
    assert left.left_chat_member is not None
    assert left.left_chat_member.id == bot.id


async def test_get_chat_member_administrators_and_chat(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    owner = await bot.get_chat_member(scene.group_id, scene.user_id)
    assert isinstance(owner, ChatMemberOwner)
    me = await bot.get_chat_member(scene.group_id, bot.id)
    assert isinstance(me, ChatMemberAdministrator)
    assert me.can_manage_topics
    admins = await bot.get_chat_administrators(scene.group_id)
    assert [a.user.id for a in admins] == [scene.user_id, bot.id]
    stranger = await control.create_user("Stranger")
    assert (await bot.get_chat_member(scene.group_id, stranger)).status == "left"
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.get_chat_member(scene.group_id, 42)
    chat = await bot.get_chat(scene.group_id)
    assert chat.type == "supergroup"
    assert chat.is_forum
    assert chat.title == "Ada's log"
    private = await bot.get_chat(scene.user_id)
    assert private.type == "private"
    assert private.username == "ada"
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(stranger)


async def test_membership_control_errors(control: SandboxClient, scene: Scene) -> None:
    from sandbox.client import SandboxControlError

    stranger = await control.create_user("Stranger")
    with pytest.raises(SandboxControlError, match="not an administrator"):
        await control.set_bot_membership(scene.group_id, by_id=stranger, status="member")
    with pytest.raises(SandboxControlError, match="status must be one of"):
        await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="owner")
    with pytest.raises(SandboxControlError, match="unknown administrator rights"):
        await control.set_bot_membership(
            scene.group_id,
            by_id=scene.user_id,
            status="administrator",
            rights={"can_fly": True},
        )
    with pytest.raises(SandboxControlError, match="private chat"):
        await control.set_bot_membership(scene.user_id, by_id=scene.user_id, status="member")


async def test_privacy_mode_hides_plain_group_chatter_from_a_member_bot(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="member")
    seen = await bot.get_updates()
    await control.send_message(scene.user_id, scene.group_id, "just chatting")
    await control.send_message(scene.user_id, scene.group_id, "/help")
    updates = await bot.get_updates(offset=seen[-1].update_id + 1)
    assert [u.message.text for u in updates if u.message] == ["/help"]
