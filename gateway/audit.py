"""The audit trail in the personal log: each message delivered through a channel other than
Telegram gets a short line in the person's "📡 Communication Logs" topic — channel, category,
message id and time; its content only if the person chose to keep content in the log.

Lines wait in `audit_entries` while the log is unreachable (e.g. the bot was removed, which is
often why another channel was used) and go out together once it is linked again.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.digest import preview
from gateway.notices import notice
from gateway.outbox_payload import OutboxPayload
from gateway.preferences import zone_or_utc
from storage.enums import Category, Channel
from storage.models import AuditEntry, LogGroup, UserPreferences

CHANNEL_NAMES = {
    Channel.EMAIL: "email",
    Channel.WEBHOOK: "webhook",
    Channel.SMS: "SMS",
    Channel.PUSH: "push",
    Channel.TELEGRAM: "Telegram",
}


def _aad(message_id: str) -> str:
    return f"audit:{message_id}"


async def record(
    session: AsyncSession,
    cipher: ContentCipher,
    *,
    user_id: int,
    message_id: str,
    channel: Channel,
    category: Category,
    payload: OutboxPayload,
    at: datetime,
) -> None:
    """Note a delivery elsewhere (in the caller's transaction, with the delivery itself)."""
    prefs = await session.get(UserPreferences, user_id)
    keep = prefs is not None and prefs.audit_with_content
    session.add(
        AuditEntry(
            user_id=user_id,
            message_id=message_id,
            channel=channel,
            category=category,
            delivered_at=at,
            sealed_content=cipher.seal(_aad(message_id), payload.to_dict()) if keep else None,
        )
    )


def _line(cipher: ContentCipher, entry: AuditEntry, zone: ZoneInfo) -> str:
    when = entry.delivered_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    line = (
        f"📨 Delivered by {CHANNEL_NAMES[entry.channel]} · {entry.category.value} · "
        f"<code>{entry.message_id}</code> · {html.escape(when)}"
    )
    if entry.sealed_content is not None:
        try:
            payload = OutboxPayload.from_dict(
                cipher.open(_aad(entry.message_id), entry.sealed_content)
            )
        except (ContentDecryptError, KeyError, TypeError, ValueError):
            return line
        line += "\n" + html.escape(preview(payload))
    return line


async def flush_ready(session: AsyncSession, cipher: ContentCipher, now: datetime) -> int:
    """Turn waiting lines of people whose log is linked into one notice each (queued in the
    outbox, Communication Logs topic); returns how many notices. The caller commits."""
    rows = await session.execute(
        select(AuditEntry, UserPreferences.timezone)
        .join(LogGroup, (LogGroup.owner_id == AuditEntry.user_id) & LogGroup.unlinked_at.is_(None))
        .outerjoin(UserPreferences, UserPreferences.user_id == AuditEntry.user_id)
        .order_by(AuditEntry.user_id, AuditEntry.delivered_at, AuditEntry.id)
    )
    entries = [(entry, timezone) for entry, timezone in rows]
    if not entries:
        return 0
    # Only the lines this statement deleted are ours to post: another worker may have taken
    # some between the SELECT and now.
    taken = set(
        (
            await session.execute(
                delete(AuditEntry)
                .where(AuditEntry.id.in_([entry.id for entry, _ in entries]))
                .returning(AuditEntry.id),
                execution_options={"synchronize_session": False},
            )
        ).scalars()
    )
    by_user: dict[int, list[str]] = defaultdict(list)
    for entry, timezone in entries:
        if entry.id in taken:
            by_user[entry.user_id].append(_line(cipher, entry, zone_or_utc(timezone)))
    for user_id, lines in by_user.items():
        session.add(notice(cipher, user_id, "\n".join(lines), now, category=Category.COMMUNICATION))
    return len(by_user)
