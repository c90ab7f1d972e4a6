"""Channel adapters: one per channel behind one small interface (`ChannelAdapter`).

An adapter turns a message's content into what its channel carries and sends it; it translates
its SDK's errors into the channel-neutral `ChannelError`s below, so the delivery worker decides
retries, backoff and failure the same way for every channel. Adapters do no database work.
"""

from gateway.channels.base import (
    AddressGone,
    ChannelAdapter,
    ChannelError,
    DestinationGone,
    RateLimited,
    Rejected,
    Transient,
)
from gateway.channels.telegram import TelegramAddress, TelegramChannel

__all__ = [
    "AddressGone",
    "ChannelAdapter",
    "ChannelError",
    "DestinationGone",
    "RateLimited",
    "Rejected",
    "TelegramAddress",
    "TelegramChannel",
    "Transient",
]
