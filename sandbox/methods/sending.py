"""What every sending method shares: target chat and thread, replies, keyboards, flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.access import as_int, bot_chat, thread_of
from sandbox.errors import bad_request
from sandbox.methods.registry import Params
from sandbox.state import SandboxState
from sandbox.world import Chat, Message


@dataclass(frozen=True)
class Target:
    chat: Chat
    message_thread_id: int | None
    is_topic_message: bool
    reply_to_message_id: int | None


def _reply_target(chat: Chat, reply: Any) -> int | None:
    if reply is None:
        return None
    if not isinstance(reply, dict) or "message_id" not in reply:
        raise bad_request("can't parse reply parameters")
    if reply.get("chat_id") not in (None, chat.id, str(chat.id)):
        raise bad_request("replies to other chats are not supported by the sandbox")
    target = chat.live_message(as_int(reply["message_id"], "message_id"))
    if target is None:
        if reply.get("allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return target.message_id


def target_of(state: SandboxState, params: Params) -> Target:
    """Resolve chat_id, message_thread_id and reply_parameters of a sending method."""
    chat = bot_chat(state, params["chat_id"])
    thread_id, is_topic = thread_of(chat, params.get("message_thread_id"))
    reply_to = _reply_target(chat, params.get("reply_parameters"))
    if reply_to is not None and thread_id is None:
        # A reply without an explicit thread lands in the replied message's topic.
        replied = chat.messages[reply_to]
        thread_id, is_topic = replied.message_thread_id, replied.is_topic_message
    return Target(chat, thread_id, is_topic, reply_to)


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """The reply_markup to store (parse_params has already validated keyboards and buttons)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def flag(params: Params, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def add_bot_message(state: SandboxState, target: Target, params: Params, **fields: Any) -> Message:
    return target.chat.add_message(
        from_id=state.bot.id,
        date=state.clock.timestamp(),
        message_thread_id=target.message_thread_id,
        is_topic_message=target.is_topic_message,
        reply_to_message_id=target.reply_to_message_id,
        reply_markup=check_reply_markup(params.get("reply_markup")),
        disable_notification=flag(params, "disable_notification"),
        protect_content=flag(params, "protect_content"),
        **fields,
    )
