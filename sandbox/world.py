"""The sandbox's state: users, chats with members, topics and messages, files, callback queries.

Plain dataclasses, no I/O and no Bot API rendering (that is `sandbox.objects`). Ids follow
Telegram's shapes: users are positive, supergroups are `-100` followed by ten digits, message ids
count up per chat, and a topic's thread id is the id of the service message that created it.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

SUPERGROUP_ID_BASE = -1_000_000_000_000
FIRST_USER_ID = 100_000_001

GENERAL_TOPIC_NAME = "General"
BOT_FIRST_NAME = "Libral Sandbox Bot"
BOT_USERNAME = "libral_sandbox_bot"


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    @property
    def phone_number(self) -> str:
        """A made-up but stable phone number for contact sharing."""
        return f"+1555{self.id % 10_000_000:07d}"


@dataclass
class Member:
    user_id: int
    status: str  # creator | administrator | member | left | kicked
    rights: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0

    @property
    def is_present(self) -> bool:
        return self.status in ("creator", "administrator", "member")

    @property
    def is_admin(self) -> bool:
        return self.status in ("creator", "administrator")

    def can(self, right: str) -> bool:
        if self.status == "creator":
            return True
        return self.status == "administrator" and self.rights.get(right, False)


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None
    created_by: int
    deleted_at: int | None = None


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    data: bytes
    file_path: str

    @property
    def file_size(self) -> int:
        return len(self.data)


@dataclass
class Message:
    message_id: int
    chat_id: int
    from_id: int
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    parse_mode: str | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    message_thread_id: int | None = None
    is_topic_message: bool = False
    reply_to_message_id: int | None = None
    reply_markup: dict[str, Any] | None = None
    disable_notification: bool = False
    protect_content: bool = False
    link_preview_options: dict[str, Any] | None = None
    document_file_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Already-rendered Bot API fields of service messages and contacts (new_chat_members...)."""
    edit_date: int | None = None
    deleted_at: int | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class Chat:
    id: int
    type: str  # private | supergroup
    title: str | None = None
    is_forum: bool = False
    members: dict[int, Member] = field(default_factory=dict)
    topics: dict[int, Topic] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    next_message_id: int = 1

    @property
    def is_private(self) -> bool:
        return self.type == "private"

    def member(self, user_id: int) -> Member:
        return self.members.get(user_id) or Member(user_id=user_id, status="left")

    def live_message(self, message_id: int) -> Message | None:
        message = self.messages.get(message_id)
        if message is None or message.is_deleted:
            return None
        return message

    def live_topic(self, thread_id: int) -> Topic | None:
        topic = self.topics.get(thread_id)
        if topic is None or topic.deleted_at is not None:
            return None
        return topic

    def add_message(self, *, from_id: int, date: int, **fields: Any) -> Message:
        message = Message(
            message_id=self.next_message_id, chat_id=self.id, from_id=from_id, date=date, **fields
        )
        self.next_message_id += 1
        self.messages[message.message_id] = message
        return message


@dataclass
class CallbackQuery:
    id: str
    from_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float
    answered_at: float | None = None
    answer: dict[str, Any] | None = None


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    ip_address: str | None


@dataclass
class World:
    """Everything the sandbox remembers, apart from the update queue and the call log."""

    bot: User
    users: dict[int, User] = field(default_factory=dict)
    chats: dict[int, Chat] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    callbacks: dict[str, CallbackQuery] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    webhook: Webhook | None = None
    _user_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_USER_ID))
    _group_seqs: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1_000_000_001)
    )
    _file_seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def user(self, user_id: int) -> User | None:
        if user_id == self.bot.id:
            return self.bot
        return self.users.get(user_id)

    def add_user(
        self,
        first_name: str,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> User:
        user = User(next(self._user_ids), first_name, last_name, username, language_code)
        self.users[user.id] = user
        return user

    def add_supergroup(self, title: str, *, is_forum: bool, owner_id: int, date: int) -> Chat:
        chat = Chat(id=SUPERGROUP_ID_BASE - next(self._group_seqs), type="supergroup")
        chat.title = title
        chat.is_forum = is_forum
        chat.members[owner_id] = Member(owner_id, "creator")
        # Message 1 of every supergroup is its creation notice, so created topics start at 2.
        chat.add_message(from_id=owner_id, date=date, extra={"supergroup_chat_created": True})
        self.chats[chat.id] = chat
        return chat

    def private_chat(self, user: User) -> Chat:
        """The user's chat with the bot, opened the first time the user writes to it."""
        chat = self.chats.get(user.id)
        if chat is None:
            chat = Chat(id=user.id, type="private")
            chat.members[user.id] = Member(user.id, "member")
            chat.members[self.bot.id] = Member(self.bot.id, "member")
            self.chats[chat.id] = chat
        return chat

    def add_file(self, file_name: str, mime_type: str, data: bytes) -> StoredFile:
        seq = next(self._file_seqs)
        suffix = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = StoredFile(
            file_id=f"BQACAgIAAx{seq:06d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AgAD{seq:06d}{secrets.token_urlsafe(4)}",
            file_name=file_name,
            mime_type=mime_type,
            data=data,
            file_path=f"documents/file_{seq}.{suffix}",
        )
        self.files[stored.file_id] = stored
        return stored

    def file_by_path(self, path: str) -> StoredFile | None:
        return next((f for f in self.files.values() if f.file_path == path), None)
