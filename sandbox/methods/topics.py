"""createForumTopic, editForumTopic, deleteForumTopic.

A topic's message_thread_id is the id of the forum_topic_created service message that opens
it, as in Telegram. Error texts follow Telegram's (MTProto-style codes where Telegram uses them).
"""

from __future__ import annotations

from typing import Any

from sandbox import objects
from sandbox.access import as_int, bot_chat
from sandbox.errors import bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.state import SandboxState
from sandbox.world import Chat, Topic

methods = MethodGroup()

TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
MAX_TOPIC_NAME = 128


def _forum(state: SandboxState, chat_id: Any) -> Chat:
    chat = bot_chat(state, chat_id)
    if not chat.is_forum:
        raise bad_request("the chat is not a forum")
    return chat


def _topic_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise bad_request("TOPIC_TITLE_EMPTY")
    if len(name) > MAX_TOPIC_NAME:
        raise bad_request("TOPIC_TITLE_TOO_LONG")
    return name


def _topic(chat: Chat, thread_id: Any) -> Topic:
    topic = chat.live_topic(as_int(thread_id, "message_thread_id"))
    if topic is None:
        raise bad_request("message thread not found")
    return topic


def _emoji(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@methods.add("createForumTopic", required=("chat_id", "name"))
async def create_forum_topic(state: SandboxState, params: Params) -> Any:
    chat = _forum(state, params["chat_id"])
    if not chat.member(state.bot.id).can("can_manage_topics"):
        raise bad_request("not enough rights to create a topic")
    name = _topic_name(params["name"])
    color = as_int(params.get("icon_color", TOPIC_ICON_COLORS[0]), "icon_color")
    if color not in TOPIC_ICON_COLORS:
        raise bad_request("TOPIC_ICON_COLOR_INVALID")
    emoji = _emoji(params.get("icon_custom_emoji_id"))
    created = {"name": name, "icon_color": color}
    if emoji:
        created["icon_custom_emoji_id"] = emoji
    thread_id = chat.next_message_id
    chat.add_message(
        from_id=state.bot.id,
        date=state.clock.timestamp(),
        message_thread_id=thread_id,
        is_topic_message=True,
        extra={"forum_topic_created": created},
    )
    topic = Topic(thread_id, name, color, emoji, created_by=state.bot.id)
    chat.topics[thread_id] = topic
    return objects.forum_topic(topic)


@methods.add("editForumTopic", required=("chat_id", "message_thread_id"))
async def edit_forum_topic(state: SandboxState, params: Params) -> Any:
    chat = _forum(state, params["chat_id"])
    topic = _topic(chat, params["message_thread_id"])
    if topic.created_by != state.bot.id and not chat.member(state.bot.id).can("can_manage_topics"):
        raise bad_request("not enough rights to edit a topic")
    edited: dict[str, Any] = {}
    if params.get("name") is not None:
        name = _topic_name(params["name"])
        if name != topic.name:
            edited["name"] = name
    if "icon_custom_emoji_id" in params:
        emoji = _emoji(params["icon_custom_emoji_id"])
        if emoji != topic.icon_custom_emoji_id:
            edited["icon_custom_emoji_id"] = emoji or ""
    if not edited:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.name = edited.get("name", topic.name)
    if "icon_custom_emoji_id" in edited:
        topic.icon_custom_emoji_id = edited["icon_custom_emoji_id"] or None
    chat.add_message(
        from_id=state.bot.id,
        date=state.clock.timestamp(),
        message_thread_id=topic.thread_id,
        is_topic_message=True,
        extra={"forum_topic_edited": edited},
    )
    return True


@methods.add("deleteForumTopic", required=("chat_id", "message_thread_id"))
async def delete_forum_topic(state: SandboxState, params: Params) -> Any:
    chat = _forum(state, params["chat_id"])
    topic = _topic(chat, params["message_thread_id"])
    if not chat.member(state.bot.id).can("can_delete_messages"):
        raise bad_request("not enough rights to delete a topic")
    now = state.clock.timestamp()
    topic.deleted_at = now
    for message in chat.messages.values():
        if message.message_thread_id == topic.thread_id and message.deleted_at is None:
            message.deleted_at = now
    return True
