"""Everything one sandbox server holds, in one object handed to method and control handlers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.clock import SandboxClock
from sandbox.faults import FaultInjector
from sandbox.flood import FloodControl
from sandbox.notify import ChangeSignal
from sandbox.updates import UpdateQueue
from sandbox.world import BOT_FIRST_NAME, BOT_USERNAME, User, World

DEFAULT_BOT_TOKEN = "7000000001:AAFlibralSandboxBotTokenForLocalUse"  # noqa: S105 - public
"""A fixed, well-formed token (bot id, colon, 35 URL-safe characters) for local runs and tests."""

TOKEN_PATTERN = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{30,}$")


def bot_id_from_token(token: str) -> int:
    match = TOKEN_PATTERN.match(token)
    if match is None:
        raise ValueError("a bot token looks like '<digits>:<35 URL-safe characters>'")
    return int(match.group(1))


@dataclass
class CallRecord:
    method: str
    params: dict[str, Any]
    status: int
    time: float
    description: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": self.params,
            "status": self.status,
            "time": self.time,
            "description": self.description,
        }


@dataclass
class SandboxState:
    token: str
    clock: SandboxClock
    world: World
    updates: UpdateQueue = field(default_factory=UpdateQueue)
    flood: FloodControl = field(init=False)
    faults: FaultInjector = field(default_factory=FaultInjector)
    calls: list[CallRecord] = field(default_factory=list)
    changes: ChangeSignal = field(default_factory=ChangeSignal)

    def __post_init__(self) -> None:
        self.flood = FloodControl(self.clock)

    @classmethod
    def create(cls, token: str, clock: SandboxClock) -> SandboxState:
        bot = User(
            id=bot_id_from_token(token),
            first_name=BOT_FIRST_NAME,
            username=BOT_USERNAME,
            is_bot=True,
        )
        return cls(token=token, clock=clock, world=World(bot=bot))

    @property
    def bot(self) -> User:
        return self.world.bot

    def reset(self) -> None:
        """Forget users, chats, files, updates, calls, faults and flood settings."""
        self.updates.close()
        self.world = World(bot=self.world.bot)
        self.updates = UpdateQueue()
        self.flood = FloodControl(self.clock)
        self.faults = FaultInjector()
        self.calls.clear()
        self.changes.bump()

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue an update for the bot (kept for getUpdates even while a webhook is set)."""
        self.updates.push(kind, payload)
        self.changes.bump()
