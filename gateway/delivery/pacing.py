"""Pacing Telegram sends so the bot stays inside Telegram's limits instead of tripping them.

Pure: no I/O, no clock of its own; every call takes `now` (seconds on any steady scale).

Telegram's limits, as this module reads them (https://core.telegram.org/bots/faq):

- the bot as a whole: about 30 messages a second (`global_per_second`);
- one group or supergroup (a forum is a supergroup): at most 20 messages a minute
  (`group_per_minute`);
- one chat: about one message a second (`chat_per_second`). It applies to every chat, so a group
  has both a chat bucket and a group bucket; with the defaults the group's is the tighter one.

Each limit is a token bucket. A bucket of capacity `b` refilling at `r` tokens a second lets at
most `b + r*T` sends through in any interval of length T (it holds at most b tokens when the
interval starts and gains r*T during it). For a limit of `L` sends per window `W`, the rate is

    r = (L - b + 1) / (W + margin)

so over any window of length `W + J` with `J < margin` the count is `b + r*(W + J) < L + 1`,
i.e. at most L. `J` is the jitter between the moment a send is granted here and the moment
Telegram counts it (network, event loop); `margin` is what we allow for it. The chosen sizes:

| bucket | capacity b      | margin | default rate              |
|--------|-----------------|--------|---------------------------|
| global | 1               | 30 ms  | 30/1.03 = 29.1 a second   |
| group  | min(3, L // 5)  | 1 s    | 18/61 s = 17.7 a minute   |
|        | (at least 1)    |        |                           |
| chat   | 1               | 30 ms  | 1/1.03 = 0.97 a second    |

A group gets a small burst (three messages at once: an alert and its follow-ups arrive
together), paid for by a slightly lower steady rate; the per-second buckets get none, since a
burst there costs a large share of the rate. A limit of `0` lifts that limit (benchmarks against
the sandbox); a 429 still blocks an unlimited bucket for its `retry_after`.

Sends are granted at *slots*: a bucket hands out its next token at the earliest time it is
there and remembers that time, so concurrent callers queue up one slot after another instead of
all waking for the same token. A caller that is granted a slot `d` seconds ahead must not send
before it (sending later only spreads sends out).

A 429 does not say which limit it is about. `Pacer.penalise` blocks the chat's buckets for
`retry_after`; when 429s for two different chats arrive within a second of each other it
takes them to be the bot's global limit and blocks the global bucket too.

After a 429 a bucket is empty and blocked until `now + retry_after`; it refills meanwhile but
holds at most one token when the block ends (one send at the time Telegram named, no burst).

Buckets of chats that have been quiet long enough to be full again are dropped (checked once a
minute), so memory follows the chats active in the last minute or so, not all chats ever seen.

The limits are per process: several worker processes sharing one bot should divide the rates.
"""

from __future__ import annotations

from dataclasses import dataclass

GLOBAL_WINDOW = 1.0
GROUP_WINDOW = 60.0
CHAT_WINDOW = 1.0
SHORT_MARGIN = 0.03  # jitter allowed on the one-second windows
GROUP_MARGIN = 1.0  # and on the one-minute window
MAX_GROUP_BURST = 3
# 429s for different chats this close together are taken as the global limit.
GLOBAL_429_SPAN = 1.0
# How often (pacer time) idle buckets are dropped.
SWEEP_INTERVAL = 60.0


@dataclass(frozen=True)
class TelegramRates:
    """The limits to pace to (LIBRAL_TELEGRAM_*_RATE); 0 lifts a limit."""

    global_per_second: float = 30.0
    group_per_minute: float = 20.0
    chat_per_second: float = 1.0

    @classmethod
    def unlimited(cls) -> TelegramRates:
        return cls(0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("global_per_second", "group_per_minute", "chat_per_second"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more")


class TokenBucket:
    """`rate` tokens a second up to `capacity`; a send takes one. `rate` 0: no limit.

    The state is the token level at time `_at`, which may lie in the future when a slot was
    handed out ahead (see `book`). It starts full.
    """

    def __init__(self, rate: float, capacity: float = 1.0, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError("rate must be 0 (no limit) or more")
        if rate > 0 and capacity < 1:
            raise ValueError("capacity must be at least one token")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._at = now
        self._blocked_until = now

    def _level(self, at: float) -> float:
        """Tokens at `at` (not before `_at`)."""
        if self.rate == 0:
            return self.capacity
        return min(self.capacity, self._tokens + self.rate * max(0.0, at - self._at))

    def earliest(self, now: float) -> float:
        """The earliest time (>= now) a send could take a token, taking nothing."""
        start = max(now, self._at, self._blocked_until)
        if self.rate == 0:
            return start
        return start + max(0.0, 1.0 - self._level(start)) / self.rate

    def wait(self, now: float) -> float:
        """Seconds from `now` until a token is there; 0 if it is there now."""
        return self.earliest(now) - now

    def take_at(self, at: float) -> None:
        """Take a token at `at`, which must be >= `earliest(...)` (a slot handed out)."""
        if self.rate == 0:
            return
        self._tokens = self._level(at) - 1.0
        self._at = max(self._at, at)

    def take(self, now: float) -> float:
        """Take a token now and answer 0, or answer the seconds to wait (nothing taken)."""
        wait = self.wait(now)
        if wait > 0:
            return wait
        self.take_at(now)
        return 0.0

    def book(self, now: float) -> float:
        """Take the next token whenever it comes: answers the seconds until that slot."""
        at = self.earliest(now)
        self.take_at(at)
        return at - now

    def slow_down(self, now: float, retry_after: float) -> None:
        """Telegram said 429: empty the bucket and send nothing before `now + retry_after`.

        The bucket refills during the block as always, but holds at most one token when the
        block ends: one send at the time Telegram named, then the rate, no burst. Slots already
        handed out stay (their callers are waiting for them); the emptying comes after them.
        """
        self._blocked_until = max(self._blocked_until, now + max(0.0, retry_after))
        if self.rate == 0:
            return
        start = max(now, self._at)
        emptied = min(self._level(start), 0.0)  # below 0: slots handed out ahead
        end = max(start, self._blocked_until)
        self._tokens = min(1.0, emptied + self.rate * (end - start))
        self._at = end

    def grants_within(self, now: float, horizon: float) -> float:
        """How many sends this bucket could grant from `now` to `now + horizon` (inf: no limit)."""
        if self.rate == 0:
            return float("inf")
        start = max(now, self._at, self._blocked_until)
        end = now + horizon
        if end < start:
            return 0.0
        return max(0.0, self._level(start) + self.rate * (end - start))

    def idle(self, now: float) -> bool:
        """Full and not blocked: forgetting it changes nothing (a new bucket starts full)."""
        return now >= self._blocked_until and now >= self._at and self._level(now) >= self.capacity


def limit_rate(limit: float, window: float, capacity: float, margin: float) -> float:
    """Refill rate (tokens a second) so a bucket of `capacity` never lets more than `limit`
    sends into any interval of `window` seconds, allowing `margin` seconds of jitter."""
    if limit <= 0:
        return 0.0
    return (limit - capacity + 1.0) / (window + margin)


def group_burst(per_minute: float) -> float:
    """A group's burst: at most a fifth of its minute budget, up to three, at least one."""
    return float(max(1, min(MAX_GROUP_BURST, int(per_minute) // 5)))


@dataclass
class _Chat:
    chat: TokenBucket
    group: TokenBucket | None

    def buckets(self) -> list[TokenBucket]:
        return [self.chat] if self.group is None else [self.chat, self.group]


class Pacer:
    """The bot's global bucket plus a chat bucket per chat and a group bucket per group."""

    def __init__(self, rates: TelegramRates | None = None, now: float = 0.0) -> None:
        self.rates = rates or TelegramRates()
        self._global = TokenBucket(
            limit_rate(self.rates.global_per_second, GLOBAL_WINDOW, 1.0, SHORT_MARGIN), 1.0, now
        )
        self._group_capacity = group_burst(self.rates.group_per_minute)
        self._chats: dict[int, _Chat] = {}
        self._swept_at = now
        self._last_429: tuple[int, float] | None = None  # (chat, when)

    def tracked_chats(self) -> int:
        """How many chats have buckets now (for tests of the memory bound)."""
        return len(self._chats)

    def _new_chat(self, is_group: bool, now: float) -> _Chat:
        chat = TokenBucket(
            limit_rate(self.rates.chat_per_second, CHAT_WINDOW, 1.0, SHORT_MARGIN), 1.0, now
        )
        group = None
        if is_group:
            capacity = self._group_capacity
            rate = limit_rate(self.rates.group_per_minute, GROUP_WINDOW, capacity, GROUP_MARGIN)
            group = TokenBucket(rate, capacity, now)
        return _Chat(chat, group)

    def _chat(self, chat_id: int, is_group: bool, now: float) -> _Chat:
        self._sweep(now)
        entry = self._chats.get(chat_id)
        if entry is None:
            entry = self._chats[chat_id] = self._new_chat(is_group, now)
        elif is_group and entry.group is None:
            entry.group = self._new_chat(True, now).group
        return entry

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < SWEEP_INTERVAL:
            return
        self._swept_at = now
        for chat_id in [c for c, e in self._chats.items() if all(b.idle(now) for b in e.buckets())]:
            del self._chats[chat_id]

    def reserve(self, chat_id: int, is_group: bool, now: float, *, patience: float = 0.0) -> float:
        """How long until a send to `chat_id` may go.

        If that is at most `patience` seconds (by default: if it may go now), the send is
        granted: its tokens are taken for that moment and the caller sends after exactly the
        answer's delay. If it is longer, nothing is taken and the caller asks again later (any
        time; the answer is when it would be worth asking).
        """
        entry = self._chat(chat_id, is_group, now)
        buckets = [*entry.buckets(), self._global]
        at = max(b.earliest(now) for b in buckets)
        if at - now > patience:
            return at - now
        for bucket in buckets:
            bucket.take_at(at)
        return at - now

    def budget(self, chat_id: int, is_group: bool, now: float, horizon: float) -> float:
        """How many sends to `chat_id` its own buckets (chat, and group) could grant within
        `horizon` seconds: what a queue for that chat can hope to send "soon". The global
        bucket is left out (it is shared: its budget is no one chat's). inf: no limit."""
        entry = self._chats.get(chat_id) or self._new_chat(is_group, now)
        if is_group and entry.group is None:
            entry = self._new_chat(True, now)
        return min(bucket.grants_within(now, horizon) for bucket in entry.buckets())

    def penalise(
        self, chat_id: int, now: float, retry_after: float, *, is_group: bool | None = None
    ) -> None:
        """Telegram answered a send to `chat_id` with 429 and `retry_after` seconds."""
        group = chat_id < 0 if is_group is None else is_group  # Telegram: groups are negative
        for bucket in self._chat(chat_id, group, now).buckets():
            bucket.slow_down(now, retry_after)
        last = self._last_429
        if last is not None and last[0] != chat_id and now - last[1] <= GLOBAL_429_SPAN:
            self._global.slow_down(now, retry_after)
        self._last_429 = (chat_id, now)

    def penalise_all(self, now: float, retry_after: float) -> None:
        """A 429 known to be about the bot as a whole."""
        self._global.slow_down(now, retry_after)
