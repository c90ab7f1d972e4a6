"""A typed client for the sandbox's control API (/sandbox/...), for tests and tools."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


class SandboxControlError(Exception):
    """The control API answered `{"error": ...}` with a 4xx status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class MemberView:
    user_id: int
    status: str
    rights: dict[str, bool]
    user: dict[str, Any] | None


@dataclass(frozen=True)
class TopicView:
    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None
    created_by: int
    deleted_at: int | None


@dataclass(frozen=True)
class MessageView:
    message_id: int
    from_user: dict[str, Any]
    text: str | None
    entities: list[dict[str, Any]]
    parse_mode: str | None
    caption: str | None
    caption_entities: list[dict[str, Any]]
    message_thread_id: int | None
    is_topic_message: bool
    reply_to_message_id: int | None
    reply_markup: dict[str, Any] | None
    disable_notification: bool
    protect_content: bool
    link_preview_options: dict[str, Any] | None
    document: dict[str, Any] | None
    service: dict[str, Any] | None
    date: int
    edited_at: int | None
    deleted_at: int | None

    def entity_texts(self, kind: str) -> list[str]:
        """The text each entity of type `kind` covers (offsets count UTF-16 code units)."""
        return [entity_text(self.text or "", e) for e in self.entities if e["type"] == kind]

    @property
    def from_id(self) -> int:
        return int(self.from_user["id"])

    @property
    def from_bot(self) -> bool:
        return bool(self.from_user.get("is_bot"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageView:
        return cls(
            message_id=data["message_id"],
            from_user=data["from"],
            text=data["text"],
            entities=data["entities"],
            parse_mode=data["parse_mode"],
            caption=data["caption"],
            caption_entities=data["caption_entities"],
            message_thread_id=data["message_thread_id"],
            is_topic_message=data["is_topic_message"],
            reply_to_message_id=data["reply_to_message_id"],
            reply_markup=data["reply_markup"],
            disable_notification=data["disable_notification"],
            protect_content=data["protect_content"],
            link_preview_options=data["link_preview_options"],
            document=data["document"],
            service=data["service"],
            date=data["date"],
            edited_at=data["edited_at"],
            deleted_at=data["deleted_at"],
        )


@dataclass(frozen=True)
class CallbackQueryView:
    id: str
    from_id: int
    message_id: int
    data: str
    answered: bool
    answer: dict[str, Any] | None


@dataclass(frozen=True)
class ChatView:
    id: int
    type: str
    title: str | None
    is_forum: bool
    version: int
    members: list[MemberView]
    topics: list[TopicView]
    messages: list[MessageView]
    callback_queries: list[CallbackQueryView]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatView:
        return cls(
            id=data["id"],
            type=data["type"],
            title=data["title"],
            is_forum=data["is_forum"],
            version=data["version"],
            members=[MemberView(**m) for m in data["members"]],
            topics=[TopicView(**t) for t in data["topics"]],
            messages=[MessageView.from_json(m) for m in data["messages"]],
            callback_queries=[CallbackQueryView(**q) for q in data["callback_queries"]],
        )

    def message(self, message_id: int) -> MessageView:
        return next(m for m in self.messages if m.message_id == message_id)

    def bot_messages(self) -> list[MessageView]:
        """Messages the bot sent and has not deleted, service messages excluded."""
        return [
            m for m in self.messages if m.from_bot and m.deleted_at is None and m.service is None
        ]

    def member(self, user_id: int) -> MemberView | None:
        return next((m for m in self.members if m.user_id == user_id), None)


@dataclass(frozen=True)
class CallView:
    method: str
    params: dict[str, Any]
    status: int
    time: float
    description: str | None


@dataclass(frozen=True)
class FloodSettings:
    enabled: bool
    private_chat_per_second: int
    group_per_minute: int
    global_per_second: int


@dataclass(frozen=True)
class FloodRefusal:
    """A send the sandbox's flood control refused with 429: "limit" (a window was full) or
    "retry_after" (sent before an earlier 429's retry_after ran out)."""

    chat_id: int
    time: float
    retry_after: int
    reason: str


@dataclass(frozen=True)
class FaultView:
    method: str
    error_code: int
    description: str
    times: int | None
    probability: float | None
    retry_after: int | None
    kind: str
    takes_effect: bool
    delay: float
    fired: int  # calls the rule has failed so far


class SandboxClient:
    """`SandboxClient("http://127.0.0.1:8081", session)`; the caller owns the session."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self._base = base_url.rstrip("/") + "/sandbox"
        self._session = session

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any
    ) -> Any:
        payload = None if body is None else {k: v for k, v in body.items() if v is not None}
        async with self._session.request(
            method, self._base + path, json=payload, params=query or None
        ) as response:
            data = await response.json()
            if response.status >= 400:
                raise SandboxControlError(response.status, str(data.get("error", data)))
            return data

    async def create_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """A new Telegram user; returns its id (also its private chat's id)."""
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
        return int((await self._request("POST", "/users", body))["id"])

    async def create_group(self, title: str, *, owner_id: int, is_forum: bool = False) -> int:
        """A supergroup (a forum if `is_forum`) created by `owner_id`; returns its -100... id."""
        body = {"title": title, "is_forum": is_forum, "owner_id": owner_id}
        return int((await self._request("POST", "/groups", body))["id"])

    async def set_bot_membership(
        self,
        chat_id: int,
        *,
        by_id: int,
        status: str,
        rights: dict[str, bool] | None = None,
    ) -> bool:
        """Add, promote, demote or remove the bot; True if its status changed (update sent)."""
        body = {"chat_id": chat_id, "by_id": by_id, "status": status, "rights": rights or {}}
        return bool((await self._request("POST", "/bot-membership", body))["changed"])

    async def send_message(
        self, from_id: int, chat_id: int, text: str, *, message_thread_id: int | None = None
    ) -> int:
        """A user writes (in its private chat when chat_id == from_id); returns message_id."""
        body = {
            "from_id": from_id,
            "chat_id": chat_id,
            "text": text,
            "message_thread_id": message_thread_id,
        }
        return int((await self._request("POST", "/messages", body))["message_id"])

    async def press_button(self, from_id: int, chat_id: int, message_id: int, data: str) -> str:
        """A user presses an inline button of a bot message; returns the callback_query_id."""
        body = {"from_id": from_id, "chat_id": chat_id, "message_id": message_id, "data": data}
        return str((await self._request("POST", "/callbacks", body))["callback_query_id"])

    async def share_contact(self, from_id: int) -> int:
        """A user shares its phone number in its private chat; returns message_id."""
        return int((await self._request("POST", "/contacts", {"from_id": from_id}))["message_id"])

    async def get_chat(self, chat_id: int) -> ChatView:
        return ChatView.from_json(await self._request("GET", f"/chats/{chat_id}"))

    async def get_calls(self, *, after: int = 0) -> list[CallView]:
        """The Bot API calls received, in order, after the first `after`."""
        body = await self._request("GET", f"/calls?after={after}")
        return [CallView(**c) for c in body["calls"]]

    async def set_flood(
        self,
        *,
        enabled: bool | None = None,
        private_chat_per_second: int | None = None,
        group_per_minute: int | None = None,
        global_per_second: int | None = None,
    ) -> FloodSettings:
        body = {
            "enabled": enabled,
            "private_chat_per_second": private_chat_per_second,
            "group_per_minute": group_per_minute,
            "global_per_second": global_per_second,
        }
        return FloodSettings(**await self._request("POST", "/flood", body))

    async def flood_refusals(self) -> list[FloodRefusal]:
        """Every send flood control refused so far (none, for a client that keeps the limits)."""
        data = await self._request("GET", "/flood/refusals")
        return [FloodRefusal(**r) for r in data["refusals"]]

    async def add_fault(
        self,
        method: str,
        *,
        error_code: int | None = None,
        description: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        retry_after: int | None = None,
        kind: str | None = None,
        takes_effect: bool | None = None,
        delay: float | None = None,
        seed: int | None = None,
    ) -> list[FaultView]:
        """Fail `method` ("*" = any) `times` times, or with `probability` (seeded RNG).

        `kind` "error" (default; needs error_code and description) answers with that error;
        "timeout" withholds the answer `delay` seconds, "disconnect" drops the connection, in
        both cases after carrying the call out unless `takes_effect` is False."""
        body = {
            "method": method,
            "error_code": error_code,
            "description": description,
            "times": times,
            "probability": probability,
            "retry_after": retry_after,
            "kind": kind,
            "takes_effect": takes_effect,
            "delay": delay,
            "seed": seed,
        }
        return [FaultView(**f) for f in (await self._request("POST", "/faults", body))["faults"]]

    async def get_faults(self) -> list[FaultView]:
        return [FaultView(**f) for f in (await self._request("GET", "/faults"))["faults"]]

    async def clear_faults(self) -> None:
        """Forget every fault rule; withheld "timeout" answers are sent now."""
        await self._request("DELETE", "/faults")

    async def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's clocks forward; returns its new Unix time."""
        return float((await self._request("POST", "/clock", {"seconds": seconds}))["now"])

    async def reset(self) -> None:
        await self._request("POST", "/reset", {})

    async def wait_for_change(self, after: int, *, wait: float = 10.0) -> int:
        """Long-poll (at most `wait` seconds) until the state version passes `after`."""
        data = await self._request("GET", "/changes", after=after, timeout=wait)
        return int(data["version"])

    async def wait_for_chat(
        self,
        chat_id: int,
        predicate: Callable[[ChatView], bool],
        *,
        within: float = 5.0,
    ) -> ChatView:
        """The chat once `predicate` holds, waiting on the sandbox's changes (no sleeping)."""
        async with asyncio.timeout(within):
            while True:
                chat = await self.get_chat(chat_id)
                if predicate(chat):
                    return chat
                await self.wait_for_change(chat.version, wait=within)

    async def wait_for_bot_message(
        self,
        chat_id: int,
        predicate: Callable[[MessageView], bool] = lambda m: True,
        *,
        within: float = 5.0,
    ) -> MessageView:
        """The first live bot message in the chat that satisfies `predicate`."""
        chat = await self.wait_for_chat(
            chat_id, lambda c: any(predicate(m) for m in c.bot_messages()), within=within
        )
        return next(m for m in chat.bot_messages() if predicate(m))


def entity_text(text: str, entity: dict[str, Any]) -> str:
    """The text an entity covers: offsets and lengths count UTF-16 code units, not characters."""
    units = text.encode("utf-16-le")
    start, length = int(entity["offset"]) * 2, int(entity["length"]) * 2
    return units[start : start + length].decode("utf-16-le")
