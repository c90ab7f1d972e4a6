"""Verified API tokens, remembered for a short while so that authentication does not hit the
database on every request.

Revocation (the bot's /tokens button, /erase) forgets the token at once in this process; other
processes sharing the database notice within `ttl` at most (their own entries expire). Only
active tokens are cached: an unknown or revoked one is looked up every time, so a new token
works at once. A lookup that began before a revocation is not kept (it may have read the token
still active), and requests that need the same token looked up at the same time share one
lookup (gateway.shared_reads): when an entry expired under load, each of them read the token
and wrote its "last used" time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.shared_reads import SharedReads

DEFAULT_TTL = timedelta(seconds=30)
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class VerifiedToken:
    """What a request needs of its token (a snapshot, detached from any session)."""

    id: int
    owner_id: int
    last_used_at: datetime | None


class TokenCache:
    def __init__(self, *, ttl: timedelta = DEFAULT_TTL, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[VerifiedToken, datetime]] = OrderedDict()
        self._generation = 0  # revocations so far
        self.lookups: SharedReads[str, VerifiedToken | None] = SharedReads(self.ticket)

    def get(self, token_hash: str, now: datetime) -> VerifiedToken | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        token, cached_at = entry
        if now - cached_at > self._ttl or now < cached_at:
            del self._entries[token_hash]
            return None
        return token

    def ticket(self) -> int:
        """Take before looking a token up: `put` refuses the result after a revocation."""
        return self._generation

    def put(
        self, token_hash: str, token: VerifiedToken, now: datetime, ticket: int | None = None
    ) -> bool:
        """Keep `token` unless something was revoked since `ticket`; whether kept."""
        if ticket is not None and ticket != self._generation:
            return False
        self._entries[token_hash] = (token, now)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def forget_token(self, token_id: int) -> None:
        self._generation += 1
        for key in [k for k, (t, _) in self._entries.items() if t.id == token_id]:
            del self._entries[key]

    def forget_owner(self, owner_id: int) -> None:
        self._generation += 1
        for key in [k for k, (t, _) in self._entries.items() if t.owner_id == owner_id]:
            del self._entries[key]
