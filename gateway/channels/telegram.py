"""Telegram: Telegram-HTML parts sent with sendMessage into a chat, optionally a forum topic."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import LinkPreviewOptions

from gateway.channels.base import (
    AddressGone,
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.ephemeral import read_delete_markup
from gateway.outbox_payload import OutboxPayload
from gateway.rendering import render_message
from storage.enums import Category, Channel

# Longest reason we keep from a Telegram description (Message.failure_reason is 200 chars).
_MAX_DETAIL = 180


@dataclass(frozen=True)
class TelegramAddress:
    chat_id: int
    # None: the chat itself (in a forum, the General topic).
    message_thread_id: int | None


def safe_description(description: str) -> str:
    """Telegram's description without its details, e.g. "Bad Request: can't parse entities".

    Telegram appends specifics after a second colon, and some quote the message itself (the
    offending tag of a parse error); stored reasons must never carry content.
    """
    head = ": ".join(description.split(": ")[:2]).strip()
    return head[:_MAX_DETAIL]


def translate(exc: TelegramAPIError) -> ChannelError:
    """aiogram's exception as the channel-neutral error the worker acts on."""
    name = type(exc).__name__
    text = exc.message
    if isinstance(exc, TelegramRetryAfter):
        return RateLimited(name, f"flood control: retry after {exc.retry_after} s", exc.retry_after)
    if isinstance(exc, TelegramEntityTooLarge):  # a subclass of TelegramNetworkError
        return Rejected(name, "request entity too large")
    if isinstance(exc, TelegramServerError | TelegramNetworkError | TelegramUnauthorizedError):
        # Unauthorized is a deployment problem (token revoked), not this message's: retrying
        # gives the operator the backoff window to fix it.
        return Transient(name, safe_description(text))
    if isinstance(exc, TelegramForbiddenError):
        return DestinationGone(name, safe_description(text))
    if isinstance(exc, TelegramBadRequest):
        lowered = text.lower()
        if "message thread not found" in lowered:
            return AddressGone(name, "message thread not found")
        if "chat not found" in lowered:
            return DestinationGone(name, "chat not found")
    return Rejected(name, safe_description(text))


class TelegramChannel:
    """Sends through one aiogram Bot. `request_timeout` bounds each Bot API call (seconds), so
    the worker can size its lease to cover a whole message."""

    def __init__(self, bot: Bot, *, request_timeout: int = 20) -> None:
        self._bot = bot
        self.request_timeout = request_timeout

    @property
    def channel(self) -> Channel:
        return Channel.TELEGRAM

    def render(self, payload: OutboxPayload, category: Category) -> list[str]:
        return render_message(payload.kind, payload.value, category.value, payload.hashtags)

    async def send(
        self, address: TelegramAddress, part: str, payload: OutboxPayload, *, last: bool
    ) -> str:
        preview = LinkPreviewOptions(is_disabled=True) if payload.disable_preview else None
        # The button goes on the last part: pressing it deletes every part.
        markup = read_delete_markup() if payload.ephemeral and last else None
        try:
            sent = await self._bot.send_message(
                chat_id=address.chat_id,
                text=part,
                message_thread_id=address.message_thread_id,
                parse_mode=ParseMode.HTML,
                link_preview_options=preview,
                disable_notification=payload.silent or None,
                reply_markup=markup,
                request_timeout=self.request_timeout,
            )
        except TelegramAPIError as exc:
            raise translate(exc) from None
        except TimeoutError:
            # aiogram maps its own timeouts to TelegramNetworkError; this covers anything else.
            raise Transient("TimeoutError", "request timed out") from None
        return str(sent.message_id)
