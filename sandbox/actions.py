"""What the world does to the bot: users write, press buttons, share contacts, add the bot.

Each action changes the state and emits the updates Telegram would send. Problems raise
`ControlError` (the control API turns it into `{"error": ...}` with its status).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from sandbox import objects
from sandbox.formatting import utf16_len
from sandbox.objects import ADMIN_RIGHTS
from sandbox.state import SandboxState
from sandbox.world import CallbackQuery, Chat, Member, Message, User

BOT_MEMBERSHIP_STATUSES = ("administrator", "member", "left", "kicked")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def known_user(state: SandboxState, user_id: int) -> User:
    user = state.world.users.get(user_id)
    if user is None:
        raise ControlError(404, f"unknown user {user_id}")
    return user


def known_chat(state: SandboxState, chat_id: int) -> Chat:
    chat = state.world.chats.get(chat_id)
    if chat is None:
        raise ControlError(404, f"unknown chat {chat_id}")
    return chat


def known_group(state: SandboxState, chat_id: int) -> Chat:
    chat = known_chat(state, chat_id)
    if chat.is_private:
        raise ControlError(400, f"chat {chat_id} is a private chat, not a group")
    return chat


def create_group(state: SandboxState, title: str, *, is_forum: bool, owner_id: int) -> Chat:
    known_user(state, owner_id)
    return state.world.add_supergroup(
        title, is_forum=is_forum, owner_id=owner_id, date=state.clock.timestamp()
    )


def _command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


def _bot_sees_group_message(state: SandboxState, chat: Chat, message: Message) -> bool:
    """Privacy mode: a non-admin bot sees commands, replies to it and service messages only."""
    bot_member = chat.member(state.bot.id)
    if not bot_member.is_present:
        return False
    if bot_member.is_admin or message.extra:
        return True
    if message.text is not None and message.text.startswith("/"):
        command = message.text.split(maxsplit=1)[0]
        return "@" not in command or command.endswith(f"@{state.bot.username}")
    replied = chat.messages.get(message.reply_to_message_id or 0)
    return replied is not None and replied.from_id == state.bot.id


def _emit_message(state: SandboxState, chat: Chat, message: Message) -> None:
    if chat.is_private or _bot_sees_group_message(state, chat, message):
        state.emit("message", objects.message(state.world, chat, message))
    else:
        state.changes.bump()


def _writable_chat_for(state: SandboxState, user: User, chat_id: int) -> Chat:
    if chat_id == user.id:
        return state.world.private_chat(user)
    if chat_id > 0:
        raise ControlError(
            400, "a user writes to the bot in its own private chat (chat_id = its id)"
        )
    chat = known_group(state, chat_id)
    member = chat.member(user.id)
    if member.status == "kicked":
        raise ControlError(400, f"user {user.id} is banned from chat {chat_id}")
    if not member.is_present:
        chat.members[user.id] = Member(user.id, "member")
    return chat


def user_message(
    state: SandboxState, from_id: int, chat_id: int, text: str, thread_id: int | None
) -> Message:
    user = known_user(state, from_id)
    if not text:
        raise ControlError(400, "text must be non-empty")
    chat = _writable_chat_for(state, user, chat_id)
    is_topic = False
    if thread_id is not None:
        if chat.is_forum and chat.live_topic(thread_id) is None:
            raise ControlError(404, f"unknown topic {thread_id} in chat {chat_id}")
        if not chat.is_forum and chat.live_message(thread_id) is None:
            raise ControlError(404, f"unknown thread {thread_id} in chat {chat_id}")
        is_topic = chat.is_forum
    message = chat.add_message(
        from_id=user.id,
        date=state.clock.timestamp(),
        text=text,
        entities=_command_entities(text),
        message_thread_id=thread_id,
        is_topic_message=is_topic,
    )
    _emit_message(state, chat, message)
    return message


def share_contact(state: SandboxState, from_id: int) -> Message:
    user = known_user(state, from_id)
    chat = state.world.private_chat(user)
    contact: dict[str, Any] = {"phone_number": user.phone_number, "first_name": user.first_name}
    if user.last_name:
        contact["last_name"] = user.last_name
    contact["user_id"] = user.id
    message = chat.add_message(
        from_id=user.id, date=state.clock.timestamp(), extra={"contact": contact}
    )
    _emit_message(state, chat, message)
    return message


def _callback_data_of(message: Message) -> set[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard") or []
    return {
        button["callback_data"]
        for row in rows
        for button in row
        if isinstance(button, dict) and isinstance(button.get("callback_data"), str)
    }


def press_button(
    state: SandboxState, from_id: int, chat_id: int, message_id: int, data: str
) -> str:
    user = known_user(state, from_id)
    chat = known_chat(state, chat_id)
    if chat.is_private and chat.id != user.id:
        raise ControlError(400, f"user {from_id} cannot see private chat {chat_id}")
    if not chat.is_private and not chat.member(user.id).is_present:
        raise ControlError(400, f"user {from_id} is not a member of chat {chat_id}")
    message = chat.live_message(message_id)
    if message is None:
        raise ControlError(404, f"unknown message {message_id} in chat {chat_id}")
    if message.from_id != state.bot.id:
        raise ControlError(400, f"message {message_id} was not sent by the bot")
    if data not in _callback_data_of(message):
        raise ControlError(400, f"message {message_id} has no button with this callback_data")
    query = CallbackQuery(
        id=str(secrets.randbits(63)),
        from_id=user.id,
        chat_id=chat.id,
        message_id=message.message_id,
        data=data,
        created_at=state.clock.now(),
    )
    state.world.callbacks[query.id] = query
    state.emit(
        "callback_query",
        {
            "id": query.id,
            "from": objects.user(user),
            "message": objects.message(state.world, chat, message),
            "chat_instance": _chat_instance(state, chat),
            "data": data,
        },
    )
    return query.id


def _chat_instance(state: SandboxState, chat: Chat) -> str:
    digest = hashlib.sha256(f"{state.bot.id}:{chat.id}".encode()).hexdigest()
    return str(int(digest[:15], 16))


def _rights(status: str, rights: Mapping[str, Any]) -> dict[str, bool]:
    unknown = sorted(set(rights) - set(ADMIN_RIGHTS))
    if unknown:
        raise ControlError(400, f"unknown administrator rights: {', '.join(unknown)}")
    if not all(isinstance(v, bool) for v in rights.values()):
        raise ControlError(400, "administrator rights are booleans")
    if status != "administrator":
        return {}
    return {k: bool(v) for k, v in rights.items()}


def set_bot_membership(
    state: SandboxState, chat_id: int, by_id: int, status: str, rights: Mapping[str, Any]
) -> bool:
    """Change the bot's status in a group; False (and no update) if nothing changed."""
    if status not in BOT_MEMBERSHIP_STATUSES:
        raise ControlError(400, f"status must be one of {', '.join(BOT_MEMBERSHIP_STATUSES)}")
    chat = known_group(state, chat_id)
    bot_id = state.bot.id
    if by_id == bot_id:
        if status != "left":
            raise ControlError(400, "the bot itself can only leave a chat")
        by = state.bot
    else:
        by = known_user(state, by_id)
        if not chat.member(by_id).is_admin:
            raise ControlError(400, f"user {by_id} is not an administrator of chat {chat_id}")
    new_rights = _rights(status, rights)
    old = chat.member(bot_id)
    if old.status == status and old.rights == new_rights:
        return False
    new = Member(bot_id, status, new_rights)
    chat.members[bot_id] = new
    date = state.clock.timestamp()
    state.emit(
        "my_chat_member",
        {
            "chat": objects.chat(state.world, chat),
            "from": objects.user(by),
            "date": date,
            "old_chat_member": objects.chat_member(state.world, old),
            "new_chat_member": objects.chat_member(state.world, new),
        },
    )
    bot = objects.user(state.bot)
    extra: dict[str, Any] | None = None
    if not old.is_present and new.is_present:
        extra = {"new_chat_members": [bot]}
    elif old.is_present and not new.is_present:
        extra = {"left_chat_member": bot}
    if extra is not None:
        message = chat.add_message(from_id=by.id, date=date, extra=extra)
        state.emit("message", objects.message(state.world, chat, message))
    return True
