"""The verified-token cache: expiry, revocation, bounded size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.token_cache import TokenCache, VerifiedToken

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ADA = VerifiedToken(id=1, owner_id=10, last_used_at=NOW)
ADA_2 = VerifiedToken(id=2, owner_id=10, last_used_at=NOW)
BO = VerifiedToken(id=3, owner_id=11, last_used_at=NOW)


def test_a_cached_token_expires() -> None:
    cache = TokenCache(ttl=timedelta(seconds=30))
    cache.put("h1", ADA, NOW)
    assert cache.get("h1", NOW + timedelta(seconds=30)) == ADA
    assert cache.get("h1", NOW + timedelta(seconds=31)) is None
    assert cache.get("h1", NOW) is None  # gone once expired
    cache.put("h1", ADA, NOW)
    assert cache.get("h1", NOW - timedelta(seconds=1)) is None  # the clock went back


def test_revocation_forgets_the_token_and_erasure_the_owner() -> None:
    cache = TokenCache()
    for digest, token in (("a", ADA), ("a2", ADA_2), ("b", BO)):
        cache.put(digest, token, NOW)
    cache.forget_token(1)
    assert (cache.get("a", NOW), cache.get("a2", NOW)) == (None, ADA_2)
    cache.forget_owner(10)
    assert (cache.get("a2", NOW), cache.get("b", NOW)) == (None, BO)


def test_the_oldest_entries_go_beyond_the_limit() -> None:
    cache = TokenCache(max_entries=2)
    cache.put("a", ADA, NOW)
    cache.put("b", BO, NOW)
    cache.get("a", NOW)
    cache.put("c", ADA_2, NOW)
    assert cache.get("a", NOW) is None  # first in, first out (reads do not refresh)
    assert (cache.get("b", NOW), cache.get("c", NOW)) == (BO, ADA_2)


def test_a_lookup_begun_before_a_revocation_is_not_kept() -> None:
    cache = TokenCache()
    for forget in (lambda: cache.forget_token(99), lambda: cache.forget_owner(99)):
        ticket = cache.ticket()
        forget()  # anyone's: the lookup may have read the token still active
        assert not cache.put("a", ADA, NOW, ticket)
        assert cache.get("a", NOW) is None
    assert cache.put("a", ADA, NOW, cache.ticket())
    assert cache.get("a", NOW) == ADA
