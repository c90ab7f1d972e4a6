"""The routing engine: a pure function from a message, the recipient's preferences and state,
and the clock to a delivery plan. No I/O; the clock is an argument so tests can stand anywhere
in time (midnight, DST changes) without waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from gateway.rendering import hashtags_for
from storage.enums import Category, Channel, Priority

QuietMode = Literal["silent", "defer"]

DEFAULT_CATEGORIES: Mapping[Category, bool] = {
    Category.AUTH: True,
    Category.SYSTEM: True,
    Category.PLUGIN: False,
    Category.PAYMENT: True,
    Category.COMMUNICATION: True,
    Category.GENERAL: True,
}
URGENT_ONLY = frozenset({Channel.SMS, Channel.PUSH})
DEFAULT_CHANNEL_ORDER: tuple[Channel, ...] = (
    Channel.TELEGRAM,
    Channel.EMAIL,
    Channel.WEBHOOK,
    Channel.SMS,
    Channel.PUSH,
)


@dataclass(frozen=True)
class QuietHours:
    start: time = time(22, 0)
    end: time = time(8, 0)
    timezone: str = "Asia/Tokyo"
    mode: QuietMode = "silent"


@dataclass(frozen=True)
class Preferences:
    categories: Mapping[Category, bool] = field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    channel_order: tuple[Channel, ...] = DEFAULT_CHANNEL_ORDER
    disabled_channels: frozenset[Channel] = frozenset()
    quiet: QuietHours | None = field(default_factory=QuietHours)  # None: quiet hours off
    urgent_bypass: bool = True


@dataclass(frozen=True)
class RecipientState:
    linked_group: bool
    topics: Mapping[Category, int | None] = field(default_factory=dict)
    verified_channels: frozenset[Channel] = frozenset()  # besides Telegram, which needs a group


@dataclass(frozen=True)
class MessageFacts:
    category: Category
    priority: Priority
    hashtags: tuple[str, ...] = ()
    requested_channels: tuple[Channel, ...] | None = None
    thread_id: int | None = None  # an explicit topic from context_labels


@dataclass(frozen=True)
class Plan:
    deliver: bool
    reason: str | None = None
    channels: tuple[Channel, ...] = ()
    thread_id: int | None = None
    hashtags: tuple[str, ...] = ()
    silent: bool = False
    deferred_until: datetime | None = None

    @property
    def status(self) -> str:
        if not self.deliver:
            return "suppressed"
        return "deferred" if self.deferred_until is not None else "queued"


def bypasses_quiet(message: MessageFacts, prefs: Preferences) -> bool:
    """Urgent messages, and high-priority security alerts, keep their sound at night."""
    if not prefs.urgent_bypass:
        return False
    return message.priority is Priority.URGENT or (
        message.priority is Priority.HIGH and message.category is Category.AUTH
    )


def quiet_window_end(quiet: QuietHours, now: datetime) -> datetime | None:
    """When the quiet window containing `now` ends (aware UTC), or None if `now` is outside."""
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    if quiet.start == quiet.end:
        return None  # an empty window, not a 24-hour one
    t = local.time().replace(tzinfo=None)
    crosses_midnight = quiet.start > quiet.end
    if crosses_midnight:
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() + timedelta(days=1) if t >= quiet.start else local.date()
    else:
        inside = quiet.start <= t < quiet.end
        end_day = local.date()
    if not inside:
        return None
    return _local_instant(end_day, quiet.end, zone, after=now)


def _local_instant(day: date, at: time, zone: ZoneInfo, *, after: datetime) -> datetime:
    """`at` on `day` in `zone` as an aware UTC instant, never before `after`.

    A wall time skipped by a spring-forward jump is read with the offset from before the jump
    (02:30 → 03:30 summer time). A repeated autumn time is its first occurrence, or its second
    once the first is past: in the repeated hour the clock shows the window's times again, and
    the window ends when it shows its end the second time.
    """
    first = datetime.combine(day, at, tzinfo=zone)
    result = first.astimezone(UTC)
    if result <= after:
        second = first.replace(fold=1).astimezone(UTC)
        shown = second.astimezone(zone)
        repeated = (shown.date(), shown.time()) == (day, at)  # not a skipped time read anew
        if repeated and second > after:
            return second
    return max(result, after)


def _channels(
    message: MessageFacts, prefs: Preferences, state: RecipientState
) -> tuple[tuple[Channel, ...], str | None]:
    usable: set[Channel] = {c for c in state.verified_channels if c is not Channel.TELEGRAM}
    if state.linked_group:
        usable.add(Channel.TELEGRAM)
    allowed = [c for c in prefs.channel_order if c in usable and c not in prefs.disabled_channels]
    if message.requested_channels is not None:
        wanted = set(message.requested_channels)
        allowed = [c for c in allowed if c in wanted]
        if not allowed:
            return (), "none of the requested channels is allowed by the recipient"
    elif message.priority is not Priority.URGENT:
        # SMS and push interrupt: unless a sender asks for them, only urgent messages use them.
        allowed = [c for c in allowed if c not in URGENT_ONLY]
    if not allowed:
        return (), "the recipient has no channel available"
    return tuple(allowed), None


def plan_route(
    message: MessageFacts,
    prefs: Preferences,
    state: RecipientState,
    now: datetime,
    *,
    kept_until: datetime | None = None,
) -> Plan:
    """Where and how the message goes. `kept_until`: when its retention ends; a message
    deferred past then would be dropped unseen, so in defer mode it goes now, silently, as in
    silent mode."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not prefs.categories.get(message.category, True):
        return Plan(False, reason=f"category {message.category.value} is turned off")
    channels, reason = _channels(message, prefs, state)
    if reason is not None:
        return Plan(False, reason=reason)
    thread_id = message.thread_id
    if thread_id is None:
        thread_id = state.topics.get(message.category)
    hashtags = tuple(hashtags_for(message.category.value, message.hashtags))
    silent, deferred_until = False, None
    if prefs.quiet is not None and not bypasses_quiet(message, prefs):
        window_end = quiet_window_end(prefs.quiet, now)
        if window_end is not None:
            if prefs.quiet.mode == "defer" and (kept_until is None or window_end < kept_until):
                deferred_until = window_end
            else:
                silent = True
    return Plan(
        True,
        channels=channels,
        thread_id=thread_id,
        hashtags=hashtags,
        silent=silent,
        deferred_until=deferred_until,
    )
