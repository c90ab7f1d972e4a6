"""The /prefs menu: each screen's text and keyboard, and the changes its buttons make. No I/O.

`render` draws a screen from a UserPreferences-like value; `apply_set`, `apply_move` and
`apply_zone` change such a value as a button says and return the screen to show next, or None
when the button's value no longer applies (an older menu, a channel already first...). The
handlers in bot.routers.prefs do the database and Telegram parts around these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from html import escape
from typing import Protocol

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import PrefsMove, PrefsNav, PrefsSet, PrefsZone
from gateway.routing import DEFAULT_CATEGORIES, DEFAULT_CHANNEL_ORDER
from storage.enums import Category, Channel


class Screen(StrEnum):
    MAIN = "main"
    CATEGORIES = "cats"
    CHANNELS = "chans"
    QUIET = "quiet"
    ZONES = "zones"
    PRIVACY = "privacy"


CLOSE = "close"  # PrefsNav.screen of the Close button: not a screen, the menu goes away


class Setting(StrEnum):
    """PrefsSet.setting: what a toggle sets."""

    CATEGORY = "cat"  # key: a Category value
    CHANNEL = "chan"  # key: a Channel value; on = enabled
    QUIET = "quiet"
    DEFER = "defer"  # on: quiet_mode "defer", off: "silent"
    BYPASS = "bypass"
    EPHEMERAL = "ephemeral"
    RECEIPTS = "receipts"
    AUDIT = "audit"  # audit lines of deliveries elsewhere carry the content


# Where a change of each setting is shown.
SCREEN_OF: Mapping[Setting, Screen] = {
    Setting.CATEGORY: Screen.CATEGORIES,
    Setting.CHANNEL: Screen.CHANNELS,
    Setting.QUIET: Screen.QUIET,
    Setting.DEFER: Screen.QUIET,
    Setting.BYPASS: Screen.QUIET,
    Setting.EPHEMERAL: Screen.PRIVACY,
    Setting.RECEIPTS: Screen.PRIVACY,
    Setting.AUDIT: Screen.PRIVACY,
}

# Each screen's Back button.
PARENT: Mapping[Screen, Screen] = {
    Screen.CATEGORIES: Screen.MAIN,
    Screen.CHANNELS: Screen.MAIN,
    Screen.QUIET: Screen.MAIN,
    Screen.PRIVACY: Screen.MAIN,
    Screen.ZONES: Screen.QUIET,
}

CATEGORY_LABELS: Mapping[Category, str] = {
    Category.AUTH: "Security alerts",
    Category.SYSTEM: "System",
    Category.PLUGIN: "Plugin",
    Category.PAYMENT: "Payments",
    Category.COMMUNICATION: "Communication",
    Category.GENERAL: "General",
}

CHANNEL_LABELS: Mapping[Channel, str] = {
    Channel.TELEGRAM: "Telegram",
    Channel.EMAIL: "Email",
    Channel.WEBHOOK: "Webhook",
    Channel.SMS: "SMS",
    Channel.PUSH: "Push",
}

# The menu's short list; /timezone takes any IANA name.
COMMON_ZONES: tuple[str, ...] = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Los_Angeles",
)

ON, OFF = "✅", "🚫"
BACK = "⬅️ Back"
CLOSE_BUTTON = "✖️ Close"
SILENT_BUTTON = "🔕 Mode: silent"
DEFER_BUTTON = "⏳ Mode: defer"
EPHEMERAL_LABEL = "Ephemeral by default"
RECEIPTS_LABEL = "Read receipts"
AUDIT_LABEL = "Content in the log's audit lines"
UP, DOWN = "⬆️", "⬇️"
CLOSED_TEXT = "⚙️ Preferences closed. Send /prefs to open them again."


class PrefsValue(Protocol):
    """What the menu reads: storage.models.UserPreferences fits (tests use plain objects)."""

    @property
    def categories(self) -> Mapping[str, bool]: ...
    @property
    def channel_order(self) -> Sequence[str]: ...
    @property
    def disabled_channels(self) -> Sequence[str]: ...
    @property
    def quiet_enabled(self) -> bool: ...
    @property
    def quiet_start(self) -> str: ...
    @property
    def quiet_end(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def quiet_mode(self) -> str: ...
    @property
    def urgent_bypass(self) -> bool: ...
    @property
    def default_ephemeral(self) -> bool: ...
    @property
    def read_receipts(self) -> bool: ...
    @property
    def audit_with_content(self) -> bool: ...


class PrefsRow(Protocol):
    """What the menu changes: UserPreferences' columns. JSON columns get new objects, never
    edits in place (SQLAlchemy only notices assignment)."""

    categories: dict[str, bool]
    channel_order: list[str]
    disabled_channels: list[str]
    quiet_enabled: bool
    quiet_start: str
    quiet_end: str
    timezone: str
    quiet_mode: str
    urgent_bypass: bool
    default_ephemeral: bool
    read_receipts: bool
    audit_with_content: bool


@dataclass(frozen=True)
class View:
    text: str  # HTML
    markup: InlineKeyboardMarkup


# --- effective values (stored ones over the defaults, as gateway.preferences reads them) -------


def categories_of(prefs: PrefsValue) -> dict[Category, bool]:
    result = dict(DEFAULT_CATEGORIES)
    for key, enabled in prefs.categories.items():
        if key in Category._value2member_map_:
            result[Category(key)] = bool(enabled)
    return result


def channel_order_of(prefs: PrefsValue) -> list[Channel]:
    known = [Channel(c) for c in prefs.channel_order if c in Channel._value2member_map_]
    return list(dict.fromkeys([*known, *DEFAULT_CHANNEL_ORDER]))


def disabled_of(prefs: PrefsValue) -> set[Channel]:
    return {Channel(c) for c in prefs.disabled_channels if c in Channel._value2member_map_}


def moved(order: Sequence[Channel], channel: Channel, *, up: bool) -> list[Channel] | None:
    """`order` with `channel` one place earlier (`up`) or later; None at the edge or if absent."""
    if channel not in order:
        return None
    index = order.index(channel)
    target = index - 1 if up else index + 1
    if not 0 <= target < len(order):
        return None
    result = list(order)
    result[index], result[target] = result[target], result[index]
    return result


# --- changes ----------------------------------------------------------------------------------


def apply_set(row: PrefsRow, setting: str, key: str, on: bool) -> Screen | None:
    """Set `setting` (a Setting value) to `on`; the screen to show, None if it doesn't apply."""
    if setting not in Setting._value2member_map_:
        return None
    which = Setting(setting)
    if which is Setting.CATEGORY:
        if key not in Category._value2member_map_:
            return None
        row.categories = {**row.categories, key: on}
    elif which is Setting.CHANNEL:
        if key not in Channel._value2member_map_:
            return None
        disabled = disabled_of(row) - {Channel(key)} if on else disabled_of(row) | {Channel(key)}
        row.disabled_channels = [c.value for c in DEFAULT_CHANNEL_ORDER if c in disabled]
    elif key:  # the other settings have no key: this is not a button the menu draws
        return None
    elif which is Setting.QUIET:
        row.quiet_enabled = on
    elif which is Setting.DEFER:
        row.quiet_mode = "defer" if on else "silent"
    elif which is Setting.BYPASS:
        row.urgent_bypass = on
    elif which is Setting.EPHEMERAL:
        row.default_ephemeral = on
    elif which is Setting.AUDIT:
        row.audit_with_content = on
    else:
        row.read_receipts = on
    return SCREEN_OF[which]


def apply_move(row: PrefsRow, channel: str, *, up: bool) -> Screen | None:
    """Move `channel` one place; None if it is unknown or already at that end."""
    if channel not in Channel._value2member_map_:
        return None
    order = moved(channel_order_of(row), Channel(channel), up=up)
    if order is None:
        return None
    row.channel_order = [c.value for c in order]
    return Screen.CHANNELS


def apply_zone(row: PrefsRow, zone: str) -> Screen | None:
    """Use `zone` if it is one the menu offers; back to the quiet hours screen."""
    if zone not in COMMON_ZONES:
        return None
    row.timezone = zone
    return Screen.QUIET


def screen_of(name: str) -> Screen | None:
    return Screen(name) if name in Screen._value2member_map_ else None


# --- screens ----------------------------------------------------------------------------------

Rows = list[list[InlineKeyboardButton]]


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _pairs(buttons: Sequence[InlineKeyboardButton]) -> Rows:
    return [list(buttons[i : i + 2]) for i in range(0, len(buttons), 2)]


def render(screen: Screen, prefs: PrefsValue, owner_id: int) -> View:
    """The text and keyboard of `screen` for the person with Telegram id `owner_id`."""
    text, rows = _RENDERERS[screen](prefs, owner_id)
    parent = PARENT.get(screen)
    if parent is None:
        rows.append([_button(CLOSE_BUTTON, PrefsNav(owner_id=owner_id, screen=CLOSE))])
    else:
        rows.append([_button(BACK, PrefsNav(owner_id=owner_id, screen=parent))])
    return View(text, InlineKeyboardMarkup(inline_keyboard=rows))


def _mark(on: bool) -> str:
    return ON if on else OFF


def _onoff(on: bool) -> str:
    return "on" if on else "off"


def _window(prefs: PrefsValue) -> str:
    return f"{escape(prefs.quiet_start)}–{escape(prefs.quiet_end)}"


def _main(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    categories = categories_of(prefs)
    on = [CATEGORY_LABELS[c] for c, enabled in categories.items() if enabled]
    off = [CATEGORY_LABELS[c] for c, enabled in categories.items() if not enabled]
    category_line = f"on: {', '.join(on) or 'none'}"
    if off:
        category_line += f"; off: {', '.join(off)}"
    disabled = disabled_of(prefs)
    channel_line = " → ".join(
        CHANNEL_LABELS[c] + (" (off)" if c in disabled else "") for c in channel_order_of(prefs)
    )
    zone = escape(prefs.timezone)
    if prefs.quiet_enabled:
        quiet_line = f"{_window(prefs)} ({zone}), {escape(prefs.quiet_mode)}"
    else:
        quiet_line = f"off (time zone {zone})"
    bypass = "ring through" if prefs.urgent_bypass else "wait like the others"
    buttons = [
        _button(label, PrefsNav(owner_id=owner_id, screen=screen.value))
        for label, screen in (
            ("📂 Categories", Screen.CATEGORIES),
            ("📡 Channels", Screen.CHANNELS),
            ("🌙 Quiet hours", Screen.QUIET),
            ("🔒 Privacy", Screen.PRIVACY),
        )
    ]
    text = (
        "⚙️ <b>Your preferences</b>\n\n"
        f"📂 <b>Categories</b> {category_line}\n"
        f"📡 <b>Channels</b> {channel_line}\n"
        f"🌙 <b>Quiet hours</b> {quiet_line}; urgent messages {bypass}\n"
        f"🔒 <b>Privacy</b> ephemeral by default {_onoff(prefs.default_ephemeral)}, "
        f"read receipts {_onoff(prefs.read_receipts)}\n\n"
        "Choose what to change."
    )
    return text, _pairs(buttons)


def category_button(category: Category, on: bool) -> str:
    return f"{_mark(on)} {CATEGORY_LABELS[category]}"


def _categories(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    buttons = [
        _button(
            category_button(category, on),
            PrefsSet(
                owner_id=owner_id, setting=Setting.CATEGORY.value, key=category.value, on=not on
            ),
        )
        for category, on in categories_of(prefs).items()
    ]
    text = (
        "📂 <b>Categories</b>\n"
        "Messages of a category that is off are not delivered: the API still accepts them and "
        "reports them as suppressed.\n\n"
        "Press a category to switch it on or off."
    )
    return text, _pairs(buttons)


def channel_button(channel: Channel, enabled: bool) -> str:
    return f"{_mark(enabled)} {CHANNEL_LABELS[channel]}"


def _channels(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    order, disabled = channel_order_of(prefs), disabled_of(prefs)
    lines, rows = [], []
    for position, channel in enumerate(order):
        enabled = channel not in disabled
        lines.append(f"{position + 1}. {CHANNEL_LABELS[channel]} ({_onoff(enabled)})")
        row = [
            _button(
                channel_button(channel, enabled),
                PrefsSet(
                    owner_id=owner_id,
                    setting=Setting.CHANNEL.value,
                    key=channel.value,
                    on=not enabled,
                ),
            )
        ]
        # No ⬆️ on the first channel, no ⬇️ on the last (an older menu may still have them).
        if position > 0:
            row.append(_button(UP, PrefsMove(owner_id=owner_id, channel=channel.value, up=True)))
        if position < len(order) - 1:
            row.append(_button(DOWN, PrefsMove(owner_id=owner_id, channel=channel.value, up=False)))
        rows.append(row)
    listing = "\n".join(lines)
    text = (
        "📡 <b>Channels</b>\n"
        "I try your channels in this order and skip the ones that are off:\n"
        f"{listing}\n\n"
        "Email, webhook, SMS and push are used once you set them up: /email, /webhook, "
        "/phone, /push.\n"
        "Press a channel to switch it on or off, ⬆️/⬇️ to move it."
    )
    return text, rows


def _quiet(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    defer = prefs.quiet_mode == "defer"

    def toggle(setting: Setting, on: bool) -> PrefsSet:
        return PrefsSet(owner_id=owner_id, setting=setting.value, key="", on=on)

    rows = [
        [
            _button(
                f"{_mark(prefs.quiet_enabled)} Quiet hours {_onoff(prefs.quiet_enabled)}",
                toggle(Setting.QUIET, not prefs.quiet_enabled),
            )
        ],
        [
            _button(
                DEFER_BUTTON if defer else SILENT_BUTTON,
                toggle(Setting.DEFER, not defer),
            )
        ],
        [
            _button(
                f"{_mark(prefs.urgent_bypass)} Urgent bypass",
                toggle(Setting.BYPASS, not prefs.urgent_bypass),
            )
        ],
        [
            _button(
                f"🕰 Time zone: {prefs.timezone}",
                PrefsNav(owner_id=owner_id, screen=Screen.ZONES.value),
            )
        ],
    ]
    state = f"on, {_window(prefs)}" if prefs.quiet_enabled else "off"
    mode = (
        "<b>defer</b>: messages wait until the window ends, then arrive together as a digest"
        if defer
        else "<b>silent</b>: messages arrive at once, without sound"
    )
    bypass = (
        "urgent messages, and high-priority security alerts, ring through anyway"
        if prefs.urgent_bypass
        else "off: urgent messages wait like the others"
    )
    text = (
        f"🌙 <b>Quiet hours</b>: {state} (time zone {escape(prefs.timezone)})\n"
        f"Inside the window: {mode}.\n"
        f"Urgent bypass: {bypass}.\n\n"
        "Change the window with <code>/quiet 22:00 07:30</code>."
    )
    return text, rows


def zone_choices(current: str) -> list[str]:
    """The zones listed: the common ones, with the current zone first if it is not one."""
    return list(COMMON_ZONES) if current in COMMON_ZONES else [current, *COMMON_ZONES]


def _zones(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    buttons = [
        # Keeping the current zone is going back: its name may be too long for callback data.
        _button(f"{ON} {zone}", PrefsNav(owner_id=owner_id, screen=Screen.QUIET.value))
        if zone == prefs.timezone
        else _button(zone, PrefsZone(owner_id=owner_id, zone=zone))
        for zone in zone_choices(prefs.timezone)
    ]
    text = (
        "🕰 <b>Time zone</b>\n"
        f"Now: {escape(prefs.timezone)}. Choose one below, or send any zone name, for example "
        "<code>/timezone Europe/Berlin</code>."
    )
    return text, _pairs(buttons)


def _privacy(prefs: PrefsValue, owner_id: int) -> tuple[str, Rows]:
    rows = [
        [
            _button(
                f"{_mark(on)} {label}",
                PrefsSet(owner_id=owner_id, setting=setting.value, key="", on=not on),
            )
        ]
        for label, setting, on in (
            (EPHEMERAL_LABEL, Setting.EPHEMERAL, prefs.default_ephemeral),
            (RECEIPTS_LABEL, Setting.RECEIPTS, prefs.read_receipts),
            (AUDIT_LABEL, Setting.AUDIT, prefs.audit_with_content),
        )
    ]
    text = (
        "🔒 <b>Privacy</b>\n"
        f"{EPHEMERAL_LABEL}: {_onoff(prefs.default_ephemeral)}. Messages disappear once read.\n"
        f"{RECEIPTS_LABEL}: {_onoff(prefs.read_receipts)}. "
        "Senders learn when you read a message (stored now; a later feature acts on it).\n"
        f"{AUDIT_LABEL}: {_onoff(prefs.audit_with_content)}. A message delivered by email, "
        "webhook, SMS or push leaves a line in 📡 Communication Logs; with this on, the line "
        "shows the message's first lines too."
    )
    return text, rows


_RENDERERS: Mapping[Screen, Callable[[PrefsValue, int], tuple[str, Rows]]] = {
    Screen.MAIN: _main,
    Screen.CATEGORIES: _categories,
    Screen.CHANNELS: _channels,
    Screen.QUIET: _quiet,
    Screen.ZONES: _zones,
    Screen.PRIVACY: _privacy,
}
