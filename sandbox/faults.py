"""Fault injection: make a Bot API method fail N times, or a seeded fraction of the time.

A rule's `kind` says how the call fails:

- "error": answered at once with the rule's error (a 5xx, a 429 with retry_after, ...);
- "timeout": the answer is withheld for `delay` seconds, longer than the client waits, so the
  client times out;
- "disconnect": the connection is dropped without an answer.

For "timeout" and "disconnect", `takes_effect` says whether the call was carried out before its
answer went missing (a message sent and recorded: the client cannot know it was, and a retry
sends it twice) or not (lost on the way in: after the delay a "timeout" is answered with the
rule's error, by then to nobody). Which calls a probabilistic rule hits follows from its seed
alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sandbox.errors import BotAPIError

ANY_METHOD = "*"
FaultKind = Literal["error", "timeout", "disconnect"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# A withheld answer defaults to this error (seen only by a client that waits long enough).
GATEWAY_TIMEOUT = (504, "Gateway Timeout")


@dataclass
class FaultRule:
    method: str  # a Bot API method name (case-insensitive) or "*"
    error_code: int
    description: str
    times: int | None = None  # fail this many more times; None = no count limit
    probability: float | None = None  # fail this fraction of matching calls; None = always
    retry_after: int | None = None
    kind: FaultKind = "error"
    takes_effect: bool = False  # "timeout"/"disconnect": carried out before the answer is lost
    delay: float = 0.0  # "timeout": seconds the answer is withheld
    fired: int = 0  # how many calls this rule has failed so far

    def matches(self, method: str) -> bool:
        return self.method == ANY_METHOD or self.method.lower() == method.lower()

    def error(self) -> BotAPIError:
        params = {"retry_after": self.retry_after} if self.retry_after is not None else None
        return BotAPIError(self.error_code, self.description, params)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "error_code": self.error_code,
            "description": self.description,
            "times": self.times,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "kind": self.kind,
            "takes_effect": self.takes_effect,
            "delay": self.delay,
            "fired": self.fired,
        }


@dataclass(frozen=True)
class Withheld:
    """A call whose answer the client will not get ("timeout" or "disconnect")."""

    kind: FaultKind
    takes_effect: bool
    delay: float
    error: BotAPIError  # the late answer of a timeout that did not take effect

    def note(self) -> str:
        """How the call log describes it."""
        if self.takes_effect:
            return f"answer withheld ({self.kind}) after the call took effect"
        return f"answer withheld ({self.kind}); the call was not carried out"


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)  # noqa: S311 - determinism, not secrecy
        self._released = asyncio.Event()

    def add(self, rule: FaultRule, *, seed: int | None = None) -> None:
        if seed is not None:
            self._rng.seed(seed)
        self.rules.append(rule)

    def clear(self) -> None:
        """Forget the rules and answer every withheld "timeout" now."""
        self.rules.clear()
        self._released.set()
        self._released = asyncio.Event()

    def check(self, method: str) -> Withheld | None:
        """Raise the first matching rule's error, consuming one of its `times`; a matching
        "timeout" or "disconnect" rule is returned instead, for the caller to carry out."""
        for rule in self.rules:
            if not rule.matches(method) or rule.times == 0:
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            if rule.times is not None:
                rule.times -= 1
            rule.fired += 1
            if rule.kind == "error":
                raise rule.error()
            return Withheld(rule.kind, rule.takes_effect, rule.delay, rule.error())
        return None

    async def hold(self, seconds: float) -> None:
        """Wait `seconds`, or less if the faults are cleared meanwhile (never blocks the loop)."""
        released = self._released
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await released.wait()
