"""Personal log groups and their topics."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from storage.enums import Category
from storage.models import LogGroup, Topic


async def _one_with_topics(session: AsyncSession, *where: ColumnElement[bool]) -> LogGroup | None:
    """The group matching `where` (owner and chat id are each unique), its topics joined into
    the same statement: one round trip, not two (the worker reads a group for every delivery,
    and each statement is several hand-offs to the database thread)."""
    result = await session.execute(
        select(LogGroup).where(*where).options(joinedload(LogGroup.topics))
    )
    group: LogGroup | None = result.unique().scalar_one_or_none()
    return group


async def linked_group_of(session: AsyncSession, user_id: int) -> LogGroup | None:
    """The person's linked personal log, with its topics loaded; None if none is linked."""
    return await _one_with_topics(
        session, LogGroup.owner_id == user_id, LogGroup.unlinked_at.is_(None)
    )


async def group_of(session: AsyncSession, user_id: int) -> LogGroup | None:
    """The person's group row, linked or not (one per person), with topics loaded."""
    return await _one_with_topics(session, LogGroup.owner_id == user_id)


async def by_chat_id(session: AsyncSession, chat_id: int) -> LogGroup | None:
    return await _one_with_topics(session, LogGroup.chat_id == chat_id)


def topic_for(group: LogGroup, category: Category) -> Topic | None:
    return next((t for t in group.topics if t.category == category), None)


def topic_by_thread(group: LogGroup, thread_id: int) -> Topic | None:
    return next((t for t in group.topics if t.message_thread_id == thread_id), None)
