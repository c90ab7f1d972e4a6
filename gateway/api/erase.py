"""DELETE /messages/{id}: the sender erases a message now, its Telegram copy included if
Telegram still allows it. The answer says what was and was not deleted, and why."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.api.errors import error_response
from gateway.api.keys import BOT, CLOCK, DELIVERY, SESSIONMAKER, request_token
from gateway.api.messages import NOT_FOUND, message_id_of, public_status, telegram_message_ids
from gateway.ephemeral import DELETE_WINDOW
from gateway.telegram_deletion import delete_messages
from storage.models import Message, TelegramCopy
from storage.repositories import copies, messages
from storage.unavailable import database_unavailable

log = logging.getLogger(__name__)

TOO_OLD = "sent more than 48 hours ago: Telegram no longer lets the bot delete it"
ALREADY_GONE = "deleted already (self-destruct or the person's Read-delete button)"
IN_DIGEST = "delivered inside a digest together with other messages, which stays"
RETRYING = "Telegram refused for now ({}); the gateway keeps trying in the background"
BUSY_RETRY_AFTER = 5  # seconds: a delivery in progress settles within moments


def _not_deleted(ids: Sequence[int], reason: str) -> list[dict[str, Any]]:
    return [{"telegram_message_id": i, "reason": reason} for i in ids]


async def _take(
    request: web.Request, message_id: str, now: datetime
) -> web.Response | tuple[Message, list[TelegramCopy]]:
    """Erase the record (in one commit with reading its copies), or an error answer."""
    token = request_token(request)
    async with request.app[SESSIONMAKER]() as session:
        message = await messages.sent_by(session, message_id, token.id)
        if message is None:
            return error_response(
                404, "not_found", "no message with this id was sent by this token"
            )
        if message.carried_by is not None and await messages.undelivered(
            session, message.carried_by
        ):
            # Its content sits in a digest on its way out: erasing the record alone would let
            # the content through anyway. The digest settles within moments.
            return error_response(
                409,
                "being_delivered",
                "the message is in a digest being delivered; try again",
                retry_after=BUSY_RETRY_AFTER,
            )
        held = await copies.of_message(session, message.id)
        # Scheduled in the same commit as the erase: if this process dies before Telegram
        # answers, the deleter still removes them.
        await copies.schedule(session, [c.id for c in held if c.sent_at > now - DELETE_WINDOW], now)
        if not await messages.erase_sent_by(session, message.id, token.id, now, message.carried_by):
            await session.rollback()
            return error_response(
                409,
                "being_delivered",
                "the message is being delivered right now; try again",
                retry_after=BUSY_RETRY_AFTER,
            )
        await session.commit()
    return message, held


async def _drop(request: web.Request, message_id: str, copy_ids: list[int]) -> bool:
    """Forget copies Telegram deleted; whether that could be written. The erasure is committed
    already, so a failure here must not make an error answer ("try again", "not applied"):
    the copies stay scheduled, and the deleter finds them deleted."""
    try:
        async with request.app[SESSIONMAKER]() as session:
            await copies.drop(session, copy_ids)
            await session.commit()
    except Exception as exc:
        if database_unavailable(exc):
            log.warning("copies of message %s not dropped: %s", message_id, type(exc).__name__)
        else:
            log.exception("copies of message %s not dropped", message_id)
        return False
    return True


async def erase_message(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    message_id = message_id_of(request)
    if message_id is None:
        return error_response(404, "not_found", NOT_FOUND)
    taken = await _take(request, message_id, now)
    if isinstance(taken, web.Response):
        return taken
    message, held = taken
    delivery = request.app[DELIVERY]
    if delivery is not None:  # else its worker is elsewhere, and its memo's own bound holds
        # Its text may be kept rendered for a retry (or within a digest's): not any longer.
        delivery.forget_rendered()
    known = telegram_message_ids(message)
    not_deleted: list[dict[str, Any]] = []
    deleted: list[int] = []
    if message.carried_by is not None:
        not_deleted += _not_deleted(known, IN_DIGEST)
    else:
        deletable = [c for c in held if c.sent_at > now - DELETE_WINDOW]
        reachable = {c.telegram_message_id for c in deletable}
        gone = [i for i in known if i not in reachable]
        # A part with no copy left was deleted already (self-destruct, the ephemeral button)
        # if it is younger than Telegram's limit; otherwise it is too old to delete.
        young = message.delivered_at is not None and message.delivered_at > now - DELETE_WINDOW
        not_deleted += _not_deleted(gone, ALREADY_GONE if young else TOO_OLD)
        by_chat: dict[int, list[TelegramCopy]] = {}
        for held_copy in deletable:
            by_chat.setdefault(held_copy.chat_id, []).append(held_copy)
        dropping = True  # until the database fails: each later try would wait as long
        for chat_id, chat_copies in by_chat.items():
            result = await delete_messages(
                request.app[BOT], chat_id, [c.telegram_message_id for c in chat_copies]
            )
            deleted += result.done
            done = set(result.done)
            if dropping:
                # What failed stays scheduled (due now) for the deleter.
                gone = [c.id for c in chat_copies if c.telegram_message_id in done]
                dropping = await _drop(request, message.id, gone)
            for telegram_id, error in result.failed.items():
                not_deleted += _not_deleted([telegram_id], RETRYING.format(error.detail))
    log.info(
        "message %s erased by its sender (%d Telegram message(s) deleted)", message.id, len(deleted)
    )
    return web.json_response(
        {
            "message_id": message.id,
            "status_before": public_status(message.status),
            "record_deleted": True,
            "telegram": {"deleted": deleted, "not_deleted": not_deleted},
        }
    )
