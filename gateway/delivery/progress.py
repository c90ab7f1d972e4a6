"""Which parts of a multi-part message already reached Telegram, kept between attempts.

A long message goes out as several sendMessage calls; if part 3 of 5 fails transiently, the
retry must not send parts 1 and 2 again. The ids of the parts sent (and where they went) are
sealed into the message's encrypted content next to the payload: it is per-message state that
lives exactly as long as the content does, and it needs no extra column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.channels.telegram import TelegramAddress

_KEY = "sent"
MAX_EXTERNAL_ID = 64  # DeliveryAttempt.external_id


def sent_parts(sealed: dict[str, Any], address: TelegramAddress) -> list[str]:
    """Ids of parts already delivered to `address` (none if they went elsewhere)."""
    sent = sealed.get(_KEY)
    if not isinstance(sent, dict):
        return []
    if sent.get("chat_id") != address.chat_id or sent.get("thread_id") != address.message_thread_id:
        # The topic was recreated since: those parts were deleted with the old one.
        return []
    return [str(i) for i in sent.get("ids", [])]


def with_sent_parts(
    sealed: dict[str, Any], address: TelegramAddress, ids: Sequence[str]
) -> dict[str, Any]:
    return {
        **sealed,
        _KEY: {
            "chat_id": address.chat_id,
            "thread_id": address.message_thread_id,
            "ids": list(ids),
        },
    }


def external_id(ids: Sequence[str]) -> str | None:
    """All part ids comma-joined if they fit the column, else the first part's id."""
    if not ids:
        return None
    joined = ",".join(ids)
    return joined if len(joined) <= MAX_EXTERNAL_ID else ids[0]


def any_sent(sealed: dict[str, Any]) -> bool:
    """Whether some part already went out (anywhere): such a message must finish on its own."""
    sent = sealed.get(_KEY)
    return isinstance(sent, dict) and bool(sent.get("ids"))
