"""Personal log groups and their topics."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from storage.enums import Category
from storage.models import LogGroup, Topic


def _with_topics(*where: ColumnElement[bool]) -> Select[LogGroup]:
    """The group matching `where` (owner and chat id are each unique), its topics joined into
    the same statement: one statement, not two (the worker reads a group for every delivery).
    Built once with bound parameters, so SQLAlchemy keeps its cache key."""
    return select(LogGroup).where(*where).options(joinedload(LogGroup.topics))


_LINKED = _with_topics(LogGroup.owner_id == bindparam("user_id"), LogGroup.unlinked_at.is_(None))
_OF_USER = _with_topics(LogGroup.owner_id == bindparam("user_id"))
_BY_CHAT = _with_topics(LogGroup.chat_id == bindparam("chat_id"))


async def _one(
    session: AsyncSession, statement: Select[LogGroup], params: dict[str, int]
) -> LogGroup | None:
    result = await session.execute(statement, params)
    group: LogGroup | None = result.unique().scalar_one_or_none()
    return group


async def linked_group_of(session: AsyncSession, user_id: int) -> LogGroup | None:
    """The person's linked personal log, with its topics loaded; None if none is linked."""
    return await _one(session, _LINKED, {"user_id": user_id})


async def group_of(session: AsyncSession, user_id: int) -> LogGroup | None:
    """The person's group row, linked or not (one per person), with topics loaded."""
    return await _one(session, _OF_USER, {"user_id": user_id})


async def by_chat_id(session: AsyncSession, chat_id: int) -> LogGroup | None:
    return await _one(session, _BY_CHAT, {"chat_id": chat_id})


def topic_for(group: LogGroup, category: Category) -> Topic | None:
    return next((t for t in group.topics if t.category == category), None)


def topic_by_thread(group: LogGroup, thread_id: int) -> Topic | None:
    return next((t for t in group.topics if t.message_thread_id == thread_id), None)
