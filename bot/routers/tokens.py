"""Personal API tokens: /token creates one (shown once), /tokens lists and revokes them."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards, texts
from bot.callbacks import RevokeToken
from gateway.token_cache import TokenCache
from gateway.tokens import new_personal_token
from storage.models import User
from storage.repositories import tokens
from storage.types import utcnow

log = logging.getLogger(__name__)

PERSONAL_SCOPES = ["send"]


async def tokens_outside_private(message: Message) -> None:
    await message.answer(texts.PRIVATE_CHAT_ONLY)


async def create_token(
    message: Message,
    session: AsyncSession,
    user: User | None,
    public_api_url: str | None = None,  # Dispatcher data, when the deployment configures one
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    new = new_personal_token()
    token = await tokens.add(session, user.id, new.token_hash, new.prefix, PERSONAL_SCOPES)
    log.info("api token %s created for user %s", token.id, user.id)
    # Durable before it is shown (a script may use it at once); and if showing it fails, a
    # token nobody saw is removed again.
    await session.commit()
    try:
        await message.answer(
            texts.new_token(new.secret, public_api_url or texts.DEFAULT_PUBLIC_API_URL)
        )
    except Exception:
        await session.delete(token)
        await session.commit()
        raise


async def list_tokens(message: Message, session: AsyncSession, user: User | None) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    active = await tokens.active_of(session, user.id)
    await message.answer(texts.token_list(active), reply_markup=keyboards.token_list(active))


async def revoke_token(
    query: CallbackQuery,
    callback_data: RevokeToken,
    session: AsyncSession,
    user: User | None,
    token_cache: TokenCache | None = None,
) -> None:
    # revoke() refuses tokens of others and tokens already revoked (a stale list).
    if user is None or not await tokens.revoke(session, user.id, callback_data.token_id, utcnow()):
        await query.answer(texts.STALE_REVOKE_PRESS, show_alert=True)
        return
    log.info("api token %s revoked by user %s", callback_data.token_id, user.id)
    await session.commit()  # revoked for real before the person is told so
    if token_cache is not None:
        token_cache.forget_token(callback_data.token_id)
    await query.answer(texts.REVOKED_NOTICE)
    if not isinstance(query.message, Message):
        return
    active = await tokens.active_of(session, user.id)
    try:
        await query.message.edit_text(
            texts.token_list(active), reply_markup=keyboards.token_list(active)
        )
    except TelegramAPIError as error:  # the revoke stands even if the list cannot be redrawn
        log.warning("could not redraw the token list: %s", type(error).__name__)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="tokens")
    router.message.register(
        tokens_outside_private, Command("token", "tokens"), F.chat.type != ChatType.PRIVATE
    )
    router.message.register(create_token, Command("token"))
    router.message.register(list_tokens, Command("tokens"))
    router.callback_query.register(revoke_token, RevokeToken.filter())
    return router
