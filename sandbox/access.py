"""Who may do what where: resolving chat ids, the bot's membership, threads and messages."""

from __future__ import annotations

from typing import Any

from sandbox.errors import BotAPIError, bad_request
from sandbox.state import SandboxState
from sandbox.world import Chat, Message


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad_request(f"invalid {name} specified")


def chat_id_of(value: Any) -> int:
    """A chat_id parameter as an int; `@username` chats do not exist in the sandbox."""
    if isinstance(value, str) and value.startswith("@"):
        raise bad_request("chat not found")
    try:
        return as_int(value, "chat_id")
    except BotAPIError:
        raise bad_request("chat not found") from None


def bot_chat(state: SandboxState, chat_id_value: Any) -> Chat:
    """The chat the bot addresses, if the bot may act in it (send, read, manage)."""
    chat_id = chat_id_of(chat_id_value)
    world = state.world
    chat = world.chats.get(chat_id)
    if chat is None:
        if chat_id > 0 and chat_id in world.users:
            raise BotAPIError(403, "Forbidden: bot can't initiate conversation with a user")
        raise bad_request("chat not found")
    if chat.is_private:
        return chat
    status = chat.member(state.bot.id).status
    if status == "kicked":
        raise BotAPIError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
    if status == "left":
        raise BotAPIError(403, f"Forbidden: bot is not a member of the {chat.type} chat")
    return chat


def thread_of(chat: Chat, thread_id_value: Any) -> tuple[int | None, bool]:
    """(message_thread_id, is_topic_message) for a message sent with this message_thread_id.

    In a forum, only live created topics are threads: General has no usable thread id (send
    without one to post there). Elsewhere a thread is a reply chain rooted at a live message.
    """
    if thread_id_value is None:
        return None, False
    thread_id = as_int(thread_id_value, "message_thread_id")
    if chat.is_forum:
        if chat.live_topic(thread_id) is None:
            raise bad_request("message thread not found")
        return thread_id, True
    if chat.live_message(thread_id) is None:
        raise bad_request("message thread not found")
    return thread_id, False


def message_in(chat: Chat, message_id_value: Any, missing: str) -> Message:
    message = chat.live_message(as_int(message_id_value, "message_id"))
    if message is None:
        raise bad_request(missing)
    return message
