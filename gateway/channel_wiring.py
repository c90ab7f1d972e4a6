"""Building the fallback channels a deployment set up (composition root helper)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.channels.email import EmailChannel, SmtpConfig
from gateway.channels.fallback import FallbackChannel
from gateway.channels.public_net import public_session
from gateway.channels.push import PushChannel
from gateway.channels.sms import SmsChannel, SmsConfig
from gateway.channels.webhook import WebhookChannel
from gateway.delivery.chain import DEFAULT_POLICIES, WEBHOOK_SCHEDULE, RetryPolicy, webhook_policy
from storage.enums import Channel


@dataclass(frozen=True)
class ChannelsConfig:
    smtp: SmtpConfig | None = None  # None: no email
    sms: SmsConfig | None = None  # None: no SMS
    webhook_schedule: tuple[float, ...] = WEBHOOK_SCHEDULE
    # The sandbox lets people register http://127.0.0.1 endpoints for its stand-ins.
    allow_local_urls: bool = False
    policies: Mapping[Channel, RetryPolicy] = field(default_factory=lambda: DEFAULT_POLICIES)


@dataclass
class FallbackChannels:
    email: EmailChannel | None
    webhook: WebhookChannel
    sms: SmsChannel | None
    push: PushChannel
    policies: Mapping[Channel, RetryPolicy]

    @property
    def adapters(self) -> dict[Channel, FallbackChannel[Any]]:
        found: dict[Channel, FallbackChannel[Any] | None] = {
            Channel.EMAIL: self.email,
            Channel.WEBHOOK: self.webhook,
            Channel.SMS: self.sms,
            Channel.PUSH: self.push,
        }
        return {channel: adapter for channel, adapter in found.items() if adapter is not None}

    async def close(self) -> None:
        await self.webhook.close()
        await self.push.close()
        if self.sms is not None:
            await self.sms.close()


def build_channels(config: ChannelsConfig, clock: Callable[[], datetime]) -> FallbackChannels:
    return FallbackChannels(
        email=EmailChannel(config.smtp, clock=clock) if config.smtp is not None else None,
        webhook=WebhookChannel(
            session_factory=lambda: public_session(allow_local=config.allow_local_urls),
            clock=clock,
        ),
        sms=SmsChannel(config.sms) if config.sms is not None else None,
        push=PushChannel(allow_local=config.allow_local_urls),
        policies={**config.policies, Channel.WEBHOOK: webhook_policy(config.webhook_schedule)},
    )
