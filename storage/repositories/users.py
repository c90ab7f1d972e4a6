"""People, addressed by their Telegram id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import User

# User.language is String(16). Telegram's IETF tags are shorter, but PostgreSQL refuses a longer
# value where SQLite would keep it: cut it rather than fail the person's registration.
LANGUAGE_LENGTH = 16


async def by_telegram_id(session: AsyncSession, telegram_id: int) -> User | None:
    result: User | None = await session.scalar(select(User).where(User.telegram_id == telegram_id))
    return result


async def get_or_create(
    session: AsyncSession, telegram_id: int, language: str | None = None
) -> tuple[User, bool]:
    """The person with this Telegram id, registering them if new; `True` when created."""
    language = language[:LANGUAGE_LENGTH] if language else language
    user = await by_telegram_id(session, telegram_id)
    if user is not None:
        if language and user.language != language:
            user.language = language
        return user, False
    user = User(telegram_id=telegram_id, language=language)
    session.add(user)
    await session.flush()
    return user, True
