"""The deployment's fallback channels: which are set up, and whether their last check passed.

Checks run at start and then every few minutes (APScheduler), never per request: GET /channels
and health read the last results. A check never contacts a person (SMTP: connect and log in;
SMS: the account endpoint); channels without a deployment-wide service (webhook, push) pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.channels.fallback import FallbackChannel
from storage.enums import Channel
from storage.types import utcnow

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 15.0
CHECK_INTERVAL_SECONDS = 300


@dataclass(frozen=True)
class ChannelStatus:
    channel: Channel
    configured: bool
    healthy: bool | None  # None: not checked yet
    error: str | None = None  # an error class, never details
    checked_at: datetime | None = None


class ChannelMonitor:
    def __init__(
        self,
        adapters: Mapping[Channel, FallbackChannel[Any]],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._adapters = adapters
        self._clock = clock
        self._results: dict[Channel, ChannelStatus] = {}

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(c, a) for c, a in self._adapters.items()))

    async def _check(self, channel: Channel, adapter: FallbackChannel[Any]) -> None:
        error: str | None = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await adapter.check()
        except Exception as exc:  # any failure is a failed check; only its class is kept
            error = type(exc).__name__
            log.warning("%s check failed: %s", channel.value, error)
        self._results[channel] = ChannelStatus(
            channel, True, error is None, error, checked_at=self._clock()
        )

    def statuses(self) -> list[ChannelStatus]:
        """Every fallback channel, in the default order, configured or not."""
        listed = []
        for channel in Channel:
            if channel is Channel.TELEGRAM:
                continue
            if channel not in self._adapters:
                listed.append(ChannelStatus(channel, configured=False, healthy=None))
            else:
                listed.append(
                    self._results.get(channel, ChannelStatus(channel, True, healthy=None))
                )
        return listed


def nothing_configured() -> list[ChannelStatus]:
    """The statuses of a deployment without fallback channels (the API's default)."""
    return ChannelMonitor({}).statuses()
