"""Personal log groups and their topics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from storage.enums import Category
from storage.models import LogGroup, Topic
from storage.repositories import core


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


@dataclass(frozen=True, slots=True)
class LogView:
    """A linked personal log as a delivery reads it: plain values, no ORM objects. Building
    the group and its six topics as ORM objects was a quarter of a delivery's CPU; the
    objects are loaded only to change them (a topic to create, a group to unlink)."""

    id: int
    chat_id: int
    threads: Mapping[Category, int | None]  # category -> its topic's thread id, if any

    def category_of_thread(self, thread_id: int) -> Category | None:
        """The category whose topic has `thread_id`, if one has."""
        return next((c for c, t in self.threads.items() if t == thread_id), None)


_LINKED_VIEW = (
    select(LogGroup.id, LogGroup.chat_id, Topic.category, Topic.message_thread_id)
    .outerjoin(Topic, Topic.group_id == LogGroup.id)
    .where(LogGroup.owner_id == bindparam("user_id"), LogGroup.unlinked_at.is_(None))
)


async def stored_thread(session: AsyncSession, group_id: int, category: Category) -> int | None:
    """The thread id stored for the group's topic of `category` now, if any."""
    thread: int | None = await session.scalar(
        select(Topic.message_thread_id).where(
            Topic.group_id == group_id, Topic.category == category
        )
    )
    return thread


async def linked_view_of(session: AsyncSession, user_id: int) -> LogView | None:
    """`linked_group_of` as a `LogView`, read in the session's transaction."""
    rows = (await core.execute(session, _LINKED_VIEW, {"user_id": user_id})).all()
    if not rows:
        return None
    threads = {category: thread for _, _, category, thread in rows if category is not None}
    return LogView(rows[0][0], rows[0][1], MappingProxyType(threads))
