"""Optional flood control: Telegram's sending limits, answered with 429 and retry_after.

Off by default. Sliding windows measured on the sandbox's injectable monotonic clock: per
private chat (default 1 message a second), per group (20 a minute) and for the whole bot (30 a
second). Only successful sends count. As with Telegram, a 429 binds: a chat told to retry after
N seconds (by flood control or by an injected fault) has its sends refused until they passed.
Every refusal is recorded (`refusals`): a client that keeps to the limits and honours
retry_after never causes one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from sandbox.clock import SandboxClock
from sandbox.errors import BotAPIError


@dataclass(frozen=True)
class FloodLimits:
    private_chat_per_second: int = 1
    group_per_minute: int = 20
    global_per_second: int = 30

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


RefusalReason = Literal["limit", "retry_after"]


@dataclass(frozen=True)
class FloodRefusal:
    """A send flood control refused: a window was full ("limit") or the chat was still told to
    wait by an earlier 429 ("retry_after")."""

    chat_id: int
    time: float  # the sandbox's Unix time
    retry_after: int
    reason: RefusalReason

    def describe(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "time": self.time,
            "retry_after": self.retry_after,
            "reason": self.reason,
        }


def too_many_requests(retry_after: int) -> BotAPIError:
    return BotAPIError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


class FloodControl:
    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self.enabled = False
        self.limits = FloodLimits()
        self._sent: dict[tuple[str, int], deque[float]] = {}
        self._blocked: dict[int, float] = {}  # chat id -> monotonic time its sends resume
        self.refusals: list[FloodRefusal] = []

    def configure(self, *, enabled: bool | None = None, **limits: int) -> None:
        if enabled is not None:
            self.enabled = enabled
        self.limits = replace(self.limits, **limits)
        self._sent.clear()
        self._blocked.clear()

    def describe(self) -> dict[str, Any]:
        return {"enabled": self.enabled} | {
            name: getattr(self.limits, name) for name in FloodLimits.field_names()
        }

    def _windows(self, chat_id: int, is_private: bool) -> list[tuple[tuple[str, int], int, float]]:
        per_chat = (
            (self.limits.private_chat_per_second, 1.0)
            if is_private
            else (self.limits.group_per_minute, 60.0)
        )
        return [
            (("chat", chat_id), per_chat[0], per_chat[1]),
            (("global", 0), self.limits.global_per_second, 1.0),
        ]

    def check(self, chat_id: int, *, is_private: bool) -> None:
        """Raise 429 if one more message to `chat_id` now would exceed a limit."""
        if not self.enabled:
            return
        now = self._clock.monotonic()
        blocked_until = self._blocked.get(chat_id)
        if blocked_until is not None and now < blocked_until:
            raise self._refuse(chat_id, blocked_until - now, "retry_after")
        wait = 0.0
        for key, limit, window in self._windows(chat_id, is_private):
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) >= max(limit, 0):
                oldest = sent[-limit] if limit > 0 else now
                wait = max(wait, oldest + window - now)
        if wait > 0:
            raise self._refuse(chat_id, wait, "limit")

    def told_to_wait(self, chat_id: int, retry_after: float) -> None:
        """A send to `chat_id` was answered 429 with `retry_after`: refuse its sends until then."""
        if not self.enabled:
            return
        until = self._clock.monotonic() + retry_after
        self._blocked[chat_id] = max(until, self._blocked.get(chat_id, until))

    def _refuse(self, chat_id: int, wait: float, reason: RefusalReason) -> BotAPIError:
        retry_after = max(1, math.ceil(wait))
        self.refusals.append(FloodRefusal(chat_id, self._clock.now(), retry_after, reason))
        self.told_to_wait(chat_id, retry_after)
        return too_many_requests(retry_after)

    def record(self, chat_id: int, *, is_private: bool) -> None:
        if not self.enabled:
            return
        now = self._clock.monotonic()
        for key, _limit, _window in self._windows(chat_id, is_private):
            self._sent.setdefault(key, deque()).append(now)
