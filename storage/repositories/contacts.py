"""A person's addresses on the channels besides Telegram (storage.models.Contact)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import Channel, ContactState
from storage.models import Contact


async def of(session: AsyncSession, user_id: int, channel: Channel) -> Contact | None:
    result: Contact | None = await session.scalar(
        select(Contact).where(Contact.user_id == user_id, Contact.channel == channel)
    )
    return result


async def all_of(session: AsyncSession, user_id: int) -> list[Contact]:
    rows = await session.scalars(
        select(Contact).where(Contact.user_id == user_id).order_by(Contact.channel)
    )
    return list(rows)


async def verified_channels(session: AsyncSession, user_id: int) -> frozenset[Channel]:
    rows = await session.scalars(
        select(Contact.channel).where(
            Contact.user_id == user_id, Contact.state == ContactState.VERIFIED
        )
    )
    return frozenset(rows)


async def by_unsubscribe_hash(session: AsyncSession, token_hash: str) -> Contact | None:
    result: Contact | None = await session.scalar(
        select(Contact).where(Contact.unsubscribe_hash == token_hash)
    )
    return result


async def set_state(
    session: AsyncSession, contact_id: int, state: ContactState, reason: str | None, **extra: Any
) -> None:
    await session.execute(
        update(Contact)
        .where(Contact.id == contact_id)
        .values(state=state, state_reason=reason[:200] if reason else None, **extra),
        execution_options={"synchronize_session": False},
    )


async def note_failure(session: AsyncSession, contact_id: int, now: datetime) -> datetime:
    """Start (or continue) the contact's failing streak; returns since when it fails."""
    contact = await session.get(Contact, contact_id)
    assert contact is not None
    if contact.failing_since is None:
        contact.failing_since = now
    return contact.failing_since


async def note_success(session: AsyncSession, contact_id: int) -> None:
    await session.execute(
        update(Contact).where(Contact.id == contact_id).values(failing_since=None),
        execution_options={"synchronize_session": False},
    )
