"""Render sandbox state as Bot API objects (User, Chat, ChatFullInfo, Message, ChatMember...).

Optional fields are left out when empty, as Telegram does; every dict produced here is checked
against the reference schema by the tests.
"""

from __future__ import annotations

from typing import Any

from sandbox.world import Chat, Member, Message, StoredFile, Topic, User, World

ADMIN_RIGHTS_REQUIRED = (
    "is_anonymous",
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
ADMIN_RIGHTS_SUPERGROUP_OPTIONAL = ("can_pin_messages", "can_manage_topics", "can_manage_tags")
ADMIN_RIGHTS_NEWER_THAN_REFERENCE = ("can_send_welcome_messages",)
"""Rights of Bot API versions after the 10.1 reference that aiogram 3.31 (Bot API 10.3)
requires in ChatMemberAdministrator; Telegram sends them, so the sandbox does too."""
ADMIN_RIGHTS = (
    ADMIN_RIGHTS_REQUIRED + ADMIN_RIGHTS_SUPERGROUP_OPTIONAL + ADMIN_RIGHTS_NEWER_THAN_REFERENCE
)
"""Every right the control API accepts in `rights` for a supergroup administrator."""

_GROUP_PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_invite_users",
)


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def user(u: User) -> dict[str, Any]:
    return _compact(
        {
            "id": u.id,
            "is_bot": u.is_bot,
            "first_name": u.first_name,
            "last_name": u.last_name,
            "username": u.username,
            "language_code": u.language_code,
        }
    )


def bot_user_full(u: User) -> dict[str, Any]:
    """getMe's answer: the bot's User with its capabilities."""
    return user(u) | {
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
        "has_topics_enabled": False,
    }


def chat(world: World, c: Chat) -> dict[str, Any]:
    if c.is_private:
        u = world.user(c.id)
        assert u is not None
        return _compact(
            {
                "id": c.id,
                "type": "private",
                "first_name": u.first_name,
                "last_name": u.last_name,
                "username": u.username,
            }
        )
    return _compact({"id": c.id, "type": c.type, "title": c.title, "is_forum": c.is_forum or None})


def chat_full_info(world: World, c: Chat) -> dict[str, Any]:
    info = chat(world, c) | {
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }
    if not c.is_private:
        info["permissions"] = dict.fromkeys(_GROUP_PERMISSIONS, True) | {
            "can_change_info": False,
            "can_pin_messages": False,
            "can_manage_topics": False,
        }
        info["has_visible_history"] = True
    return info


def chat_member(world: World, m: Member) -> dict[str, Any]:
    u = world.user(m.user_id)
    assert u is not None
    base: dict[str, Any] = {"status": m.status, "user": user(u)}
    if m.status == "creator":
        return base | {"is_anonymous": False}
    if m.status == "administrator":
        rights = {r: bool(m.rights.get(r, False)) for r in ADMIN_RIGHTS}
        rights["can_manage_chat"] = True  # implied by any other administrator right
        return base | {"can_be_edited": False} | rights
    if m.status == "kicked":
        return base | {"until_date": m.until_date}
    return base


def forum_topic(t: Topic) -> dict[str, Any]:
    return _compact(
        {
            "message_thread_id": t.thread_id,
            "name": t.name,
            "icon_color": t.icon_color,
            "icon_custom_emoji_id": t.icon_custom_emoji_id,
        }
    )


def document(f: StoredFile) -> dict[str, Any]:
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "file_name": f.file_name,
        "mime_type": f.mime_type,
        "file_size": f.file_size,
    }


def file(f: StoredFile) -> dict[str, Any]:
    return {
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "file_size": f.file_size,
        "file_path": f.file_path,
    }


def message(world: World, c: Chat, m: Message, *, with_reply: bool = True) -> dict[str, Any]:
    sender = world.user(m.from_id)
    assert sender is not None
    out: dict[str, Any] = {
        "message_id": m.message_id,
        "from": user(sender),
        "chat": chat(world, c),
        "date": m.date,
    }
    if m.message_thread_id is not None:
        out["message_thread_id"] = m.message_thread_id
    if m.is_topic_message:
        out["is_topic_message"] = True
    if with_reply and m.reply_to_message_id is not None:
        target = c.messages.get(m.reply_to_message_id)
        if target is not None and not target.is_deleted:
            out["reply_to_message"] = message(world, c, target, with_reply=False)
    if m.edit_date is not None:
        out["edit_date"] = m.edit_date
    if m.protect_content:
        out["has_protected_content"] = True
    if m.text is not None:
        out["text"] = m.text
        if m.entities:
            out["entities"] = m.entities
        if m.link_preview_options:
            out["link_preview_options"] = m.link_preview_options
    if m.document_file_id is not None:
        out["document"] = document(world.files[m.document_file_id])
    if m.caption:
        out["caption"] = m.caption
        if m.caption_entities:
            out["caption_entities"] = m.caption_entities
    out.update(m.extra)
    # Telegram returns only inline keyboards in Message.reply_markup.
    if m.reply_markup is not None and "inline_keyboard" in m.reply_markup:
        out["reply_markup"] = m.reply_markup
    return out
