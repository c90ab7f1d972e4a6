"""Fault injection: make a Bot API method fail N times, or a seeded fraction of the time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sandbox.errors import BotAPIError

ANY_METHOD = "*"


@dataclass
class FaultRule:
    method: str  # a Bot API method name (case-insensitive) or "*"
    error_code: int
    description: str
    times: int | None = None  # fail this many more times; None = no count limit
    probability: float | None = None  # fail this fraction of matching calls; None = always
    retry_after: int | None = None

    def matches(self, method: str) -> bool:
        return self.method == ANY_METHOD or self.method.lower() == method.lower()

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "error_code": self.error_code,
            "description": self.description,
            "times": self.times,
            "probability": self.probability,
            "retry_after": self.retry_after,
        }


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)  # noqa: S311 - determinism, not secrecy

    def add(self, rule: FaultRule, *, seed: int | None = None) -> None:
        if seed is not None:
            self._rng.seed(seed)
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def check(self, method: str) -> None:
        """Raise the first matching rule's error, consuming one of its `times`."""
        for rule in self.rules:
            if not rule.matches(method) or rule.times == 0:
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            if rule.times is not None:
                rule.times -= 1
            params = {"retry_after": rule.retry_after} if rule.retry_after is not None else None
            raise BotAPIError(rule.error_code, rule.description, params)
