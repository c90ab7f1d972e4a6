"""Rendered parts of long messages, remembered for a short while.

A long message goes out in parts, and under Telegram's limits a personal log takes about one
part every three seconds (20 a minute), so the worker attempts a 16-part digest sixteen times.
Each attempt rendered and split the whole 64 KiB again (about 80 ms, on the event loop, which
stalled everything else the process does, `POST /send` included). Rendering is a pure function
of the content, so its result is kept, keyed by a hash of what it was rendered from.

Only messages of more than one part are kept (the rest are cheap to render and most common),
at most `MAX_ENTRIES` of them and for `TTL_SECONDS` at most: the parts are the message's text,
and it should not stay in memory much longer than its sending takes. The delivery worker sweeps
out expired entries after every run (`forget_expired`), so the bound holds also when no other
long message comes to render. An erasure through the API in the same process forgets them all
(`clear`); one in another process (`serve --role api`) is found by the worker, which asks the
database at the start of a run (at most once a second) whether the messages it keeps parts for
(`owners`) still exist, and forgets those that do not (`forget_owners`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

MAX_ENTRIES = 32  # each at most a digest (64 KiB of content)
TTL_SECONDS = 120.0  # a 16-part digest paced to 20 a minute takes about 48 s


def render_key(kind: str, value: object, category: str, hashtags: Sequence[str]) -> bytes:
    """What a rendering depends on, hashed (values are JSON: text or a json_data object)."""
    # Not sort_keys: a json_data object is rendered in its own key order.
    source = json.dumps([kind, value, category, list(hashtags)], default=str)
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class PartsMemo:
    """Thread-safe: a long message is rendered on a thread (gateway.delivery.attempt) while
    the event loop renders short ones; the lock guards the entries, never a rendering."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl_seconds: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        # key -> (parts, expiry, the messages rendered to them: usually one).
        self._entries: OrderedDict[bytes, tuple[tuple[str, ...], float, frozenset[str]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def parts(self, key: bytes, render: Callable[[], list[str]], owner: str = "") -> list[str]:
        """The parts for `key`: remembered ones, or `render()`'s (kept if more than one).
        `owner`: the message they are rendered for (see `forget_owners`)."""
        owners = frozenset((owner,)) if owner else frozenset()
        with self._lock:
            self._forget_expired(self._clock())
            entry = self._entries.get(key)
            if entry is not None:
                parts, expires_at, known = entry
                self._entries[key] = (parts, expires_at, known | owners)
                return list(parts)
        parts_list = render()
        if len(parts_list) > 1:
            with self._lock:
                self._entries[key] = (tuple(parts_list), self._clock() + self._ttl, owners)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return parts_list

    def owners(self) -> set[str]:
        """The messages whose rendered parts are kept now."""
        with self._lock:
            return {owner for _, _, known in self._entries.values() for owner in known}

    def forget_owners(self, gone: set[str]) -> None:
        """Forget the parts rendered for any of these messages (erased elsewhere, say)."""
        with self._lock:
            for key in [k for k, (_, _, known) in self._entries.items() if known & gone]:
                del self._entries[key]

    def forget(self, key: bytes) -> None:
        """The message went out (or will not): its text need not stay."""
        with self._lock:
            self._entries.pop(key, None)

    def forget_expired(self) -> None:
        with self._lock:
            self._forget_expired(self._clock())

    def clear(self) -> None:
        """Forget every entry (a message was erased: its text may be among them)."""
        with self._lock:
            self._entries.clear()

    def _forget_expired(self, now: float) -> None:
        # Entries are in order of insertion, and all live as long: the expired come first.
        while self._entries:
            key, (_, expires_at, _) = next(iter(self._entries.items()))
            if expires_at > now:
                return
            del self._entries[key]
