"""The /prefs screens as pure functions: labels, moves, changes, callback data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup

from bot import prefs_menu
from bot.callbacks import PrefsMove, PrefsNav, PrefsSet, PrefsZone
from bot.prefs_menu import Screen, Setting, View, moved, render
from gateway.preferences import check_timezone
from storage.enums import Category, Channel

OWNER = 777
# Telegram user ids have at most 52 significant bits.
BIGGEST_ID = 2**52 - 1
FACTORIES: tuple[type[CallbackData], ...] = (PrefsNav, PrefsSet, PrefsMove, PrefsZone)
T, E, W, S, P = Channel.TELEGRAM, Channel.EMAIL, Channel.WEBHOOK, Channel.SMS, Channel.PUSH


@dataclass
class Prefs:
    """A UserPreferences-like value with the model's defaults."""

    categories: dict[str, bool] = field(default_factory=dict)
    channel_order: list[str] = field(default_factory=list)
    disabled_channels: list[str] = field(default_factory=list)
    quiet_enabled: bool = True
    quiet_start: str = "22:00"
    quiet_end: str = "08:00"
    timezone: str = "Asia/Tokyo"
    quiet_mode: str = "silent"
    urgent_bypass: bool = True
    default_ephemeral: bool = False
    read_receipts: bool = False
    audit_with_content: bool = False


AUDIT = "Content in the log's audit lines"


def rows(view: View) -> list[list[tuple[str, str]]]:
    return [[(b.text, b.callback_data or "") for b in row] for row in view.markup.inline_keyboard]


def flat(view: View) -> dict[str, str]:
    """Button text -> callback data."""
    return {text: data for row in rows(view) for text, data in row}


def unpack(data: str) -> CallbackData:
    for factory in FACTORIES:
        try:
            return factory.unpack(data)
        except (TypeError, ValueError):
            continue
    raise AssertionError(f"no factory parses {data!r}")


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            {},
            {"Security alerts": True, "System": True, "Plugin": False, "Payments": True},
        ),
        (
            {"plugin": True, "auth": False, "bogus": False},
            {"Security alerts": False, "Plugin": True, "General": True},
        ),
    ],
)
def test_category_labels_show_the_value_and_set_the_opposite(
    stored: dict[str, bool], expected: dict[str, bool]
) -> None:
    buttons = flat(render(Screen.CATEGORIES, Prefs(categories=stored), OWNER))
    for label, on in expected.items():
        text = f"{'✅' if on else '🚫'} {label}"
        assert text in buttons, buttons
        data = PrefsSet.unpack(buttons[text])
        assert (data.owner_id, data.setting, data.on) == (OWNER, "cat", not on)
    assert len([t for t in buttons if t.startswith(("✅", "🚫"))]) == len(Category)
    assert "Bogus" not in str(buttons)


def test_channel_rows_have_toggle_and_moves_except_at_the_edges() -> None:
    prefs = Prefs(channel_order=["sms", "telegram"], disabled_channels=["email"])
    view = render(Screen.CHANNELS, prefs, OWNER)
    *channel_rows, back = rows(view)
    assert [texts[0][0] for texts in channel_rows] == [
        "✅ SMS",
        "✅ Telegram",
        "🚫 Email",
        "✅ Webhook",
        "✅ Push",
    ]
    assert [[t for t, _ in row[1:]] for row in channel_rows] == [
        ["⬇️"],
        ["⬆️", "⬇️"],
        ["⬆️", "⬇️"],
        ["⬆️", "⬇️"],
        ["⬆️"],
    ]
    email = PrefsSet.unpack(channel_rows[2][0][1])
    assert (email.setting, email.key, email.on) == ("chan", "email", True)
    up = PrefsMove.unpack(channel_rows[1][1][1])
    assert (up.channel, up.up) == ("telegram", True)
    assert back == [("⬅️ Back", PrefsNav(owner_id=OWNER, screen="main").pack())]
    assert "1. SMS (on)" in view.text
    assert "3. Email (off)" in view.text
    assert "/email, /webhook, /phone, /push" in view.text


@pytest.mark.parametrize(
    ("prefs", "labels", "phrases"),
    [
        (
            Prefs(),
            ["✅ Quiet hours on", "🔕 Mode: silent", "✅ Urgent bypass", "🕰 Time zone: Asia/Tokyo"],
            ["on, 22:00–08:00", "<b>silent</b>", "/quiet 22:00 07:30"],
        ),
        (
            Prefs(quiet_enabled=False, quiet_mode="defer", urgent_bypass=False, timezone="UTC"),
            ["🚫 Quiet hours off", "⏳ Mode: defer", "🚫 Urgent bypass", "🕰 Time zone: UTC"],
            ["Quiet hours</b>: off", "<b>defer</b>", "urgent messages wait"],
        ),
    ],
)
def test_quiet_screen(prefs: Prefs, labels: list[str], phrases: list[str]) -> None:
    view = render(Screen.QUIET, prefs, OWNER)
    buttons = flat(view)
    assert list(buttons) == [*labels, "⬅️ Back"]
    for phrase in phrases:
        assert phrase in view.text
    mode = PrefsSet.unpack(buttons[labels[1]])
    assert (mode.setting, mode.on) == ("defer", prefs.quiet_mode != "defer")
    assert PrefsNav.unpack(buttons[labels[3]]).screen == "zones"


def test_zone_list_marks_the_current_zone() -> None:
    common = flat(render(Screen.ZONES, Prefs(timezone="Europe/Berlin"), OWNER))
    assert "✅ Europe/Berlin" in common
    assert "Europe/Berlin" not in common
    assert PrefsNav.unpack(common["✅ Europe/Berlin"]).screen == "quiet"  # keeping is going back
    assert PrefsZone.unpack(common["Asia/Tokyo"]).zone == "Asia/Tokyo"
    assert len(common) == len(prefs_menu.COMMON_ZONES) + 1  # and Back

    rare = rows(render(Screen.ZONES, Prefs(timezone="America/Argentina/ComodRivadavia"), OWNER))
    assert rare[0][0][0] == "✅ America/Argentina/ComodRivadavia"
    assert sum(len(r) for r in rare) == len(prefs_menu.COMMON_ZONES) + 2


def test_common_zones_are_real_zones() -> None:
    assert 10 <= len(prefs_menu.COMMON_ZONES) <= 14
    for zone in prefs_menu.COMMON_ZONES:
        assert check_timezone(zone) == zone


@pytest.mark.parametrize(
    ("prefs", "expected"),
    [
        (Prefs(), ["🚫 Ephemeral by default", "🚫 Read receipts", f"🚫 {AUDIT}"]),
        (
            Prefs(default_ephemeral=True),
            ["✅ Ephemeral by default", "🚫 Read receipts", f"🚫 {AUDIT}"],
        ),
        (Prefs(read_receipts=True), ["🚫 Ephemeral by default", "✅ Read receipts", f"🚫 {AUDIT}"]),
        (
            Prefs(audit_with_content=True),
            ["🚫 Ephemeral by default", "🚫 Read receipts", f"✅ {AUDIT}"],
        ),
    ],
)
def test_privacy_labels(prefs: Prefs, expected: list[str]) -> None:
    view = render(Screen.PRIVACY, prefs, OWNER)
    buttons = flat(view)
    assert list(buttons) == [*expected, "⬅️ Back"]
    assert [PrefsSet.unpack(buttons[label]).on for label in expected] == [
        label.startswith("🚫") for label in expected
    ]
    assert "Communication Logs" in view.text


def test_summary_shows_every_setting() -> None:
    default = render(Screen.MAIN, Prefs(), OWNER).text
    assert "off: Plugin" in default
    assert "Telegram → Email → Webhook → SMS → Push" in default
    assert "22:00–08:00 (Asia/Tokyo), silent" in default
    assert "ephemeral by default off, read receipts off" in default

    changed = Prefs(
        categories={"plugin": True},
        channel_order=["email"],
        disabled_channels=["sms"],
        quiet_enabled=False,
        urgent_bypass=False,
        default_ephemeral=True,
        read_receipts=True,
    )
    text = render(Screen.MAIN, changed, OWNER).text
    assert "off:" not in text
    assert "Email → Telegram → Webhook → SMS (off) → Push" in text
    assert "off (time zone Asia/Tokyo)" in text
    assert "wait like the others" in text
    assert "ephemeral by default on, read receipts on" in text


def test_main_has_the_four_screens_and_close_and_sub_screens_go_back() -> None:
    main = flat(render(Screen.MAIN, Prefs(), OWNER))
    targets = {text: PrefsNav.unpack(data).screen for text, data in main.items()}
    assert targets == {
        "📂 Categories": "cats",
        "📡 Channels": "chans",
        "🌙 Quiet hours": "quiet",
        "🔒 Privacy": "privacy",
        "✖️ Close": "close",
    }
    for screen, parent in [
        (Screen.CATEGORIES, "main"),
        (Screen.CHANNELS, "main"),
        (Screen.QUIET, "main"),
        (Screen.PRIVACY, "main"),
        (Screen.ZONES, "quiet"),
    ]:
        last_row = rows(render(screen, Prefs(), OWNER))[-1]
        assert last_row == [("⬅️ Back", PrefsNav(owner_id=OWNER, screen=parent).pack())]


# --- moves and changes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "channel", "up", "expected"),
    [
        ([T, E, W], E, True, [E, T, W]),
        ([T, E, W], E, False, [T, W, E]),
        ([T, E, W], T, False, [E, T, W]),
        ([T, E, W], W, True, [T, W, E]),
        ([T, E, W], T, True, None),  # first can't go up
        ([T, E, W], W, False, None),  # last can't go down
        ([T, E, W], S, True, None),  # not in the list
        ([T], T, False, None),
    ],
)
def test_moved(order: list[Channel], channel: Channel, up: bool, expected: object) -> None:
    before = list(order)
    assert moved(order, channel, up=up) == expected
    assert order == before  # a new list, the input untouched


@pytest.mark.parametrize(
    ("stored", "channel", "up", "expected"),
    [
        ([], "telegram", False, ["email", "telegram", "webhook", "sms", "push"]),
        ([], "push", True, ["telegram", "email", "webhook", "push", "sms"]),
        (["sms", "fax"], "telegram", True, ["telegram", "sms", "email", "webhook", "push"]),
        ([], "telegram", True, None),
        ([], "push", False, None),
        ([], "fax", True, None),
    ],
)
def test_apply_move(stored: list[str], channel: str, up: bool, expected: list[str] | None) -> None:
    row = Prefs(channel_order=list(stored))
    screen = prefs_menu.apply_move(row, channel, up=up)
    if expected is None:
        assert screen is None
        assert row.channel_order == stored
    else:
        assert screen is Screen.CHANNELS
        assert row.channel_order == expected


@pytest.mark.parametrize(
    ("setting", "key", "on", "changed", "screen"),
    [
        ("cat", "plugin", True, {"categories": {"plugin": True}}, Screen.CATEGORIES),
        ("cat", "auth", False, {"categories": {"auth": False}}, Screen.CATEGORIES),
        ("chan", "email", False, {"disabled_channels": ["email"]}, Screen.CHANNELS),
        ("chan", "telegram", True, {}, Screen.CHANNELS),
        ("quiet", "", False, {"quiet_enabled": False}, Screen.QUIET),
        ("defer", "", True, {"quiet_mode": "defer"}, Screen.QUIET),
        ("defer", "", False, {}, Screen.QUIET),
        ("bypass", "", False, {"urgent_bypass": False}, Screen.QUIET),
        ("ephemeral", "", True, {"default_ephemeral": True}, Screen.PRIVACY),
        ("receipts", "", True, {"read_receipts": True}, Screen.PRIVACY),
        ("audit", "", True, {"audit_with_content": True}, Screen.PRIVACY),
    ],
)
def test_apply_set(
    setting: str, key: str, on: bool, changed: dict[str, object], screen: Screen
) -> None:
    row = Prefs()
    assert prefs_menu.apply_set(row, setting, key, on) is screen
    assert row == replace(Prefs(), **changed)  # type: ignore[arg-type]


def test_apply_set_keeps_other_stored_values_and_orders_disabled_channels() -> None:
    row = Prefs(categories={"auth": False}, disabled_channels=["push"])
    prefs_menu.apply_set(row, "cat", "plugin", True)
    prefs_menu.apply_set(row, "chan", "email", False)
    assert row.categories == {"auth": False, "plugin": True}
    assert row.disabled_channels == ["email", "push"]
    # JSON columns get new objects: SQLAlchemy does not see changes made in place.
    categories, disabled = row.categories, row.disabled_channels
    prefs_menu.apply_set(row, "cat", "system", False)
    prefs_menu.apply_set(row, "chan", "sms", False)
    assert row.categories is not categories
    assert row.disabled_channels is not disabled
    assert categories == {"auth": False, "plugin": True}
    prefs_menu.apply_set(row, "chan", "push", True)
    assert row.disabled_channels == ["email", "sms"]


@pytest.mark.parametrize(
    ("setting", "key"),
    [("cat", "spam"), ("chan", "fax"), ("volume", ""), ("quiet", "auth"), ("", "")],
)
def test_apply_set_refuses_values_that_no_longer_apply(setting: str, key: str) -> None:
    row = Prefs()
    assert prefs_menu.apply_set(row, setting, key, True) is None
    assert row == Prefs()


def test_apply_zone() -> None:
    row = Prefs()
    assert prefs_menu.apply_zone(row, "Europe/Berlin") is Screen.QUIET
    assert row.timezone == "Europe/Berlin"
    for stale in ("Mars/Olympus", "Europe/Paris", ""):  # not offered by the menu
        assert prefs_menu.apply_zone(row, stale) is None
    assert row.timezone == "Europe/Berlin"


def test_every_setting_has_a_screen() -> None:
    assert set(prefs_menu.SCREEN_OF) == set(Setting)


# --- callback data ----------------------------------------------------------------------------


def _all_views(owner_id: int) -> list[View]:
    longest_zone = "America/Argentina/ComodRivadavia"
    variants = [
        Prefs(),
        Prefs(
            categories={c.value: True for c in Category},
            disabled_channels=[c.value for c in Channel],
            quiet_mode="defer",
            quiet_enabled=False,
            timezone=longest_zone,
        ),
        Prefs(timezone="x" * 64),  # the longest a stored zone can be
    ]
    return [render(screen, prefs, owner_id) for screen in Screen for prefs in variants]


def test_every_button_round_trips_and_fits_64_bytes() -> None:
    for view in _all_views(BIGGEST_ID):
        assert isinstance(view.markup, InlineKeyboardMarkup)
        for row in rows(view):
            for _, data in row:
                assert len(data.encode()) <= 64, data
                parsed = unpack(data)
                assert parsed.pack() == data
                assert parsed.owner_id == BIGGEST_ID  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "data",
    [
        PrefsSet(owner_id=BIGGEST_ID, setting="ephemeral", key="communication", on=True),
        PrefsZone(owner_id=BIGGEST_ID, zone="America/Los_Angeles"),
        PrefsMove(owner_id=BIGGEST_ID, channel="telegram", up=False),
        PrefsNav(owner_id=BIGGEST_ID, screen="privacy"),
    ],
)
def test_longest_callback_data(data: CallbackData) -> None:
    packed = data.pack()
    assert len(packed.encode()) <= 64
    assert type(data).unpack(packed) == data
    assert not any(f is not type(data) and packed.startswith(f.__prefix__ + ":") for f in FACTORIES)


def test_key_may_be_empty_and_bool_round_trips() -> None:
    packed = PrefsSet(owner_id=1, setting="quiet", key="", on=False).pack()
    assert packed == "pfs:1:quiet::0"
    assert PrefsSet.unpack(packed) == PrefsSet(owner_id=1, setting="quiet", key="", on=False)
