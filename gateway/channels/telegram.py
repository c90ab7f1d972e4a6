"""Telegram: Telegram-HTML parts sent with sendMessage into a chat, optionally a forum topic.

A send that times out, or whose connection breaks once the request was on its way, may have
reached Telegram and been delivered: its outcome is unknowable, and the retry that follows may
deliver the message twice. Those sends raise `OutcomeUnknown` (a `Transient`), are counted by
the channel (`TelegramChannel.outcomes`; the delivery worker reports the count to the health
endpoint) and logged as a warning (chat and topic, never content). A connection that could not
even be opened is a plain `Transient`.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
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
from aiohttp import ClientConnectorError, ConnectionTimeoutError

from gateway.channels.base import (
    AddressGone,
    ChannelError,
    DestinationGone,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.ephemeral import read_delete_markup
from gateway.outbox_payload import OutboxPayload
from gateway.rendering import render_message
from gateway.rendering.memo import PartsMemo, render_key
from storage.enums import Category, Channel

log = logging.getLogger(__name__)

# Set while the delivery worker sends: it paces its sends itself, so the bot's request
# middleware that paces everybody else's (gateway.delivery.bot_pacing) lets them through.
PACED_BY_CALLER: ContextVar[bool] = ContextVar("paced_by_caller", default=False)

# Longest reason we keep from a Telegram description (Message.failure_reason is 200 chars).
_MAX_DETAIL = 180


@dataclass
class SendOutcomes:
    """What this channel's sends could not learn: `unknown` counts sends whose outcome is
    unknowable (see the module docstring) since the channel was built."""

    unknown: int = 0


def may_have_been_sent(exc: TelegramNetworkError) -> bool:
    """Whether a network failure may have come after Telegram got the request: every one but a
    connection that could not be opened (and a 413, which is Telegram's answer)."""
    if isinstance(exc, TelegramEntityTooLarge):
        return False
    return not isinstance(exc.__cause__, ClientConnectorError | ConnectionTimeoutError)


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


# What a refusal says when it is the message's own text Telegram will not take (not the chat,
# the topic or the bot's rights), lower-cased: "Bad Request: can't parse entities: ...",
# "message is too long", "text must be non-empty", "request entity too large", and the same
# as Telegram's codes ("ENTITIES_TOO_LONG", "MESSAGE_TOO_LONG", "MESSAGE_EMPTY").
_CONTENT_REFUSALS = (
    "can't parse",
    "too long",
    "too_long",
    "too large",
    "must be non-empty",
    "text is empty",
    "message_empty",
)


def refuses_content(err: ChannelError) -> bool:
    """Whether Telegram refused the message for its content (another text might go)."""
    detail = err.detail.lower()
    return isinstance(err, Rejected) and any(words in detail for words in _CONTENT_REFUSALS)


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
        self.outcomes = SendOutcomes()
        # A long message is rendered once, not once per part sent (gateway.rendering.memo).
        self._rendered = PartsMemo()

    @property
    def channel(self) -> Channel:
        return Channel.TELEGRAM

    def render(self, payload: OutboxPayload, category: Category, owner: str = "") -> list[str]:
        """The parts to send; `owner` is the message they are for (its parts may be kept a
        while: gateway.rendering.memo)."""
        key = render_key(payload.kind, payload.value, category.value, payload.hashtags)
        return self._rendered.parts(
            key,
            lambda: render_message(payload.kind, payload.value, category.value, payload.hashtags),
            owner,
        )

    def forget_rendered(self, payload: OutboxPayload, category: Category) -> None:
        self._rendered.forget(
            render_key(payload.kind, payload.value, category.value, payload.hashtags)
        )

    def forget_expired_renders(self) -> None:
        self._rendered.forget_expired()

    def forget_all_rendered(self) -> None:
        self._rendered.clear()

    def rendered_for(self) -> set[str]:
        """The messages whose rendered parts are kept now."""
        return self._rendered.owners()

    def forget_rendered_for(self, message_ids: set[str]) -> None:
        self._rendered.forget_owners(message_ids)

    async def send(
        self, address: TelegramAddress, part: str, payload: OutboxPayload, *, last: bool
    ) -> str:
        preview = LinkPreviewOptions(is_disabled=True) if payload.disable_preview else None
        # The button goes on the last part: pressing it deletes every part.
        markup = read_delete_markup() if payload.ephemeral and last else None
        paced = PACED_BY_CALLER.set(True)
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
        except TelegramEntityTooLarge as exc:  # Telegram's answer (413), not a network failure
            raise translate(exc) from None
        except TelegramNetworkError as exc:
            # Only class names: an aiohttp error's text can carry the URL, and so the token.
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
            if may_have_been_sent(exc):
                raise self._unknown(address, type(exc).__name__, cause) from None
            raise Transient(type(exc).__name__, f"{cause}: could not connect") from None
        except TelegramAPIError as exc:
            raise translate(exc) from None
        except ClientDecodeError:
            # An answer that is not the Bot API's JSON (a proxy's error page, say): the request
            # got somewhere, so the message may have been sent.
            raise self._unknown(address, "ClientDecodeError", None) from None
        except TimeoutError:
            # aiogram maps its own timeouts to TelegramNetworkError; this covers anything else.
            raise self._unknown(address, "TimeoutError", None) from None
        finally:
            PACED_BY_CALLER.reset(paced)
        return str(sent.message_id)

    def _unknown(self, address: TelegramAddress, name: str, cause: str | None) -> OutcomeUnknown:
        """Count and log a send whose outcome is unknowable."""
        self.outcomes.unknown += 1
        failure = f"{name} ({cause})" if cause else name
        log.warning(
            "telegram send to chat %s thread %s: outcome unknown after %s; it may have been "
            "delivered, and a retry may deliver it twice (%d unknown outcomes so far)",
            address.chat_id,
            address.message_thread_id,
            failure,
            self.outcomes.unknown,
        )
        return OutcomeUnknown(
            "OutcomeUnknown", f"{failure} after the request was sent: it may have been delivered"
        )
