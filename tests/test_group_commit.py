"""Group commit: concurrent rows share transactions; a bad row fails alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.group_commit import GroupCommitter
from storage.enums import Category, MessageStatus, Priority
from storage.models import ApiToken, Message, User
from storage.repositories.messages import NewMessage

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def _owner(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=7)
        session.add(user)
        await session.flush()
        token = ApiToken(owner_id=user.id, token_hash="h" * 64, prefix="lgp_x", scopes=[])
        session.add(token)
        await session.flush()
        return user.id, token.id


def _message(user_id: int, token_id: int, key: str | None = None) -> NewMessage:
    return NewMessage(
        id=str(uuid.uuid4()),
        sender_token_id=token_id,
        recipient_id=user_id,
        category=Category.GENERAL,
        priority=Priority.NORMAL,
        status=MessageStatus.QUEUED,
        encrypted_content=b"sealed",
        failure_reason=None,
        channels=["telegram"],
        idempotency_key_hash=key,
        created_at=NOW,
        next_attempt_at=NOW,
        retention_expires_at=NOW + timedelta(days=1),
    )


async def _count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def test_concurrent_rows_share_commits(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker)
    await asyncio.gather(*(committer.commit(_message(user_id, token_id)) for _ in range(200)))
    assert await _count(sessionmaker) == 200
    assert committer.rows == 200
    assert committer.commits < 20  # batched, not one transaction each


async def test_a_lone_row_commits_at_once(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker)
    await committer.commit(_message(user_id, token_id))
    assert (committer.commits, await _count(sessionmaker)) == (1, 1)


async def test_a_duplicate_key_fails_alone(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker)
    rows = [_message(user_id, token_id, key=f"k{n}") for n in range(10)]
    rows.append(_message(user_id, token_id, key="k3"))  # the same key again
    results = await asyncio.gather(*(committer.commit(r) for r in rows), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1
    assert isinstance(failed[0], IntegrityError)
    assert await _count(sessionmaker) == 10


async def test_a_lone_refused_row_fails_and_the_next_batch_is_fine(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker)
    orphan = _message(user_id + 999, token_id)  # no such recipient: the foreign key refuses
    with pytest.raises(IntegrityError):
        await committer.commit(orphan)
    await committer.commit(_message(user_id, token_id))  # and the next batch is fine
    assert await _count(sessionmaker) == 1


async def test_a_database_refusing_every_statement_fails_every_waiter(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE messages RENAME TO messages_away"))
    results = await asyncio.gather(
        *(committer.commit(_message(user_id, token_id)) for _ in range(3)),
        return_exceptions=True,
    )
    # Not a constraint of one row (which would be tried alone): each hears the same error.
    assert [type(r) for r in results] == [type(results[0])] * 3
    assert isinstance(results[0], DBAPIError)
    assert not isinstance(results[0], IntegrityError)
    assert committer.commits == 0
    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE messages_away RENAME TO messages"))
    await committer.commit(_message(user_id, token_id))
    assert await _count(sessionmaker) == 1


async def test_past_its_backlog_a_row_is_refused_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    committer = GroupCommitter(sessionmaker, max_pending=2)
    # Four arrive before the first batch is taken: the third and fourth find two waiting.
    results = await asyncio.gather(
        *(committer.commit(_message(user_id, token_id)) for _ in range(4)),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "NoneType",
        "Overloaded",
        "Overloaded",
    ]
    assert (await _count(sessionmaker), committer.backlog, committer.refused) == (2, 0, 2)
    # Told once, not once a refusal: a burst of refusals would flood the log.
    warnings = [r.getMessage() for r in caplog.records if "overloaded" in r.getMessage()]
    assert warnings == [
        "overloaded: 1 message(s) refused since the last warning, 2 waiting to commit"
    ]
    await committer.commit(_message(user_id, token_id))  # the backlog gone, taken again
    assert await _count(sessionmaker) == 3
