"""Every text the bot shows, as HTML (the Bot's default parse mode).

Anything dynamic (group titles, usernames, URLs) goes through `html.escape`; constants are
written already escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from aiogram.types import BotCommand

from gateway.personal_log import Problem
from gateway.topics import TOPICS
from storage.enums import Category
from storage.models import ApiToken, Topic

DEFAULT_PUBLIC_API_URL = "http://127.0.0.1:8080"
SEND_PATH = "/api/v1/communication/send"

# --- /start and /help -------------------------------------------------------------------------

START = (
    "👋 <b>Libral Gateway</b> delivers the notifications of your services (logins, payments, "
    "server events…) into a Telegram group that <b>you</b> own: your <i>personal log</i>, "
    "with one topic per category and hashtags for search. I keep no names and forget "
    "messages once delivered.\n\n"
    "<b>Next step</b>\n"
    "1. Create a group and turn on <b>Topics</b> in its settings.\n"
    "2. Add me to it as an administrator with the <b>“Manage topics”</b> right.\n"
    "3. I set it up at once; if not, send /setup in the group.\n\n"
    "Then use /token here to get an API token for your scripts. /help lists all commands."
)

START_LINKED = (
    "👋 Welcome back. Your personal log is linked; /status shows it, /help lists the commands."
)


def help_text(private: Sequence[BotCommand], group: Sequence[BotCommand]) -> str:
    def lines(commands: Sequence[BotCommand]) -> str:
        return "\n".join(f"/{c.command} — {escape(c.description)}" for c in commands)

    return (
        "<b>In our private chat</b>\n"
        f"{lines(private)}\n\n"
        "<b>In your forum group</b>\n"
        f"{lines(group)}"
    )


NOT_REGISTERED = "Please send /start first, so that I know you."

# --- linking a group --------------------------------------------------------------------------

_PROBLEMS: dict[Problem, str] = {
    Problem.SENDER_NOT_ADMIN: "Only an administrator of this group can link it.",
    Problem.NOT_FORUM: "Turn on Topics in the group settings.",
    Problem.BOT_CANNOT_MANAGE_TOPICS: "Make me an administrator with the “Manage topics” right.",
    Problem.BOT_NOT_IN_GROUP: "Add me to the group again.",
    Problem.TAKEN: "This group is already someone else's personal log.",
}


def problem_line(problem: Problem) -> str:
    return _PROBLEMS[problem]


def needs_changes(problems: Iterable[Problem]) -> str:
    items = "\n".join(f"• {_PROBLEMS[p]}" for p in problems)
    return f"⚠️ I can't set up your personal log here yet. Please change this:\n{items}"


def start_in_private_first(bot_username: str | None) -> str:
    where = f"@{escape(bot_username)}" if bot_username else "me"
    return (
        f"👋 To link this group, first open a private chat with {where} and send /start, "
        "then send /setup here."
    )


SETUP_IN_GROUP = (
    "Send /setup in your forum group (add me there as an administrator with the "
    "“Manage topics” right first)."
)


def confirm_move(previous_title: str | None, previous_chat_id: int) -> str:
    return (
        f"You already have a personal log: {group_label(previous_title, previous_chat_id)}.\n"
        "Move it to this group? The old group's topics will no longer be used."
    )


MOVE_BUTTON = "Move my personal log here"
MOVED = "✅ Your personal log now lives in this group."
NOT_YOUR_BUTTON = "This button is not for you."
ALREADY_MOVED = "This group is already your personal log."


def move_refused(problems: Iterable[Problem]) -> str:
    # Shown as a callback alert: plain text (no HTML), at most 200 characters.
    return "Can't move: " + " ".join(_PROBLEMS[p] for p in problems)


def _topic_line(category: Category) -> str:
    spec = TOPICS[category]
    name = "General (this chat)" if category == Category.GENERAL else escape(spec.name)
    return f"• {name} — {' '.join(spec.hashtags)}"


def welcome(topics: Sequence[Topic]) -> str:
    ordered = sorted(topics, key=lambda t: list(TOPICS).index(t.category))
    lines = "\n".join(_topic_line(t.category) for t in ordered)
    return (
        "📒 <b>This group is now your personal log.</b>\n"
        f"Messages arrive in these topics:\n{lines}\n\n"
        "Send /status to me in private to see what is queued and delivered."
    )


ALREADY_LINKED = "✅ This group is already your personal log; all topics are in place."


def created_missing(categories: Iterable[Category]) -> str:
    names = ", ".join(escape(TOPICS[c].name) for c in categories)
    return f"✅ This group is your personal log. I re-created the missing topics: {names}."


def some_topics_failed(categories: Iterable[Category]) -> str:
    names = ", ".join(escape(TOPICS[c].name) for c in categories)
    return f"⚠️ Telegram refused to create some topics ({names}). Send /setup again in a minute."


def unlinked(title: str | None, chat_id: int) -> str:
    return (
        f"I was removed from {group_label(title, chat_id)}, so it is no longer your personal "
        "log. Add me back as an administrator to relink it with the same topics."
    )


# --- tokens -----------------------------------------------------------------------------------

PRIVATE_CHAT_ONLY = "For your safety I only create and list tokens in our private chat."


def new_token(secret: str, public_api_url: str) -> str:
    url = escape(public_api_url.rstrip("/") + SEND_PATH, quote=False)
    token = escape(secret)
    body = '{"category": "system", "content": {"text": "Hello from curl"}}'
    curl = (
        f"curl -X POST {url} -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{escape(body, quote=False)}'"
    )
    return (
        "🔑 Your new API token (shown only this once, I store just a hash of it):\n"
        f"<code>{token}</code>\n\n"
        "Send yourself a message with it:\n"
        f"<pre>{curl}</pre>\n"
        "/tokens lists and revokes your tokens."
    )


def token_list(tokens: Sequence[ApiToken]) -> str:
    if not tokens:
        return "You have no active API tokens. /token creates one."
    lines = "\n".join(
        f"• <code>{escape(t.prefix)}…</code> created {_date(t.created_at)}" for t in tokens
    )
    return f"🔑 <b>Your active API tokens</b>\n{lines}\n\nPress a button to revoke a token."


def revoke_button(prefix: str) -> str:
    return f"Revoke {prefix}…"


REVOKED_NOTICE = "Token revoked."
STALE_REVOKE_PRESS = "This token is already revoked or is not yours."


def _date(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


# --- /prefs -----------------------------------------------------------------------------------
# Alerts (callback answers) are plain text, at most 200 characters.

PREFS_PRIVATE_ONLY = "Send /prefs to me in our private chat."
PREFS_SAVED = "Saved."
PREFS_NOT_YOURS = "These are someone else's preferences: send /prefs to see yours."
PREFS_NOT_REGISTERED = "I don't know you (any more). Send /start, then /prefs."
PREFS_STALE_VALUE = "This button no longer applies. Send /prefs to open a fresh menu."
PREFS_MENU_GONE = "This menu can't be updated any more. Send /prefs to open a new one."
PREFS_SAVED_MENU_GONE = (
    "Saved, but this menu can't be updated any more. Send /prefs to open a new one."
)
PREFS_EDIT_FAILED = "Telegram did not let me update this menu. Please try again in a moment."
UNKNOWN_BUTTON = "This button no longer works. Send the command again for fresh buttons."


# --- /status ----------------------------------------------------------------------------------


def group_label(title: str | None, chat_id: int) -> str:
    if title:
        return f"<b>{escape(title)}</b> (<code>{chat_id}</code>)"
    return f"<code>{chat_id}</code>"


NO_LOG = (
    "You have no personal log yet. Add me to a forum group as an administrator with the "
    "“Manage topics” right, then send /setup there."
)


def status(
    title: str | None,
    chat_id: int,
    topics: Sequence[Topic],
    *,
    linked: bool,
    queued: int,
    delivered: int,
    failed: int,
) -> str:
    ordered = sorted(topics, key=lambda t: list(TOPICS).index(t.category))
    topic_lines = "\n".join(_topic_line(t.category) for t in ordered)
    state = "linked ✅" if linked else "unlinked ⚠️ (I was removed; add me back to relink it)"
    text = (
        "📒 <b>Your personal log</b>\n"
        f"Group: {group_label(title, chat_id)}, {state}\n"
        f"Topics:\n{topic_lines or '• none yet: send /setup in the group'}\n\n"
        f"Messages: {queued} queued, {delivered} delivered"
    )
    if failed:
        text += f", {failed} failed"
    return text


# --- the person's rights: /retention, /export, /erase ------------------------------------------

RIGHTS_PRIVATE_ONLY = "Send /retention, /export and /erase to me in our private chat."

RETENTION_USAGE = (
    "Set it with e.g. <code>/retention 7d</code>, <code>2h</code>, <code>90m</code>, "
    "<code>1d12h</code> or <code>3600</code> (seconds), from 1 minute to 30 days; "
    "<code>/retention default</code> goes back to the gateway's default."
)


def retention(period: str, *, own: bool) -> str:
    whose = "your setting" if own else "the gateway's default"
    return (
        f"⏳ Default retention: <b>{escape(period)}</b> ({whose}).\n"
        "After that long I purge my record of a message (status, dates, attempts) unless its "
        "sender set another period. Its content is wiped as soon as it is delivered."
    )


def retention_saved(period: str, *, own: bool) -> str:
    return "Saved.\n" + retention(period, own=own)


def retention_refused(problem: str) -> str:
    return f"{escape(problem)}, or <code>/retention default</code>."


EXPORT_CAPTION = (
    "📦 Everything I store about you, as JSON: profile, preferences, personal log and topics, "
    "API tokens (prefixes and dates), message records and my messages in your log. "
    "No message content: I don't keep it once delivered."
)

ERASE_WARNING = (
    "⚠️ <b>Erase everything I store about you?</b>\n"
    "Your profile, preferences, personal log link and topics, API tokens (they stop working at "
    "once), message records and queued or held messages are deleted for good. "
    "/export first if you want a copy.\n\n"
    "I can also delete my messages in your personal log that Telegram still lets me delete "
    "(those younger than 48 hours)."
)
ERASE_BUTTON = "Erase my data"
ERASE_WITH_LOG_BUTTON = "Erase my data and delete the bot's messages in my log"
ERASE_CANCEL_BUTTON = "Cancel"
ERASE_NOT_YOURS = "This button is not for you."
ERASE_NOTHING_LEFT = "I hold no data about you (any more): nothing to erase."
ERASE_CANCELLED = "Nothing was erased."
ERASED_NOTICE = "Erased."


def erased(
    *, log_requested: bool, deleted: int, not_deleted: int, scheduled_failed: int = 0
) -> str:
    text = (
        "🗑 <b>Erased.</b> I no longer store anything about you: profile, preferences, "
        "personal log link, API tokens and message records are gone."
    )
    if log_requested:
        text += f"\nMessages in your personal log: {deleted} deleted"
        if not_deleted:
            text += f", {not_deleted} could not be deleted (Telegram refused, or older than 48 h)"
        text += "."
    elif scheduled_failed:
        # Self-destructing and unread ephemeral messages were deleted now rather than later.
        text += (
            f"\n{scheduled_failed} message(s) in your log were due to be deleted and Telegram "
            "refused it just now: please delete them by hand."
        )
    return text + "\nSend /start if you ever want to use me again."


ERASE_BUSY = "A message to you is being delivered right now. Press the button again in a moment."


# --- other channels: /email, /webhook, /phone, /push, /channels --------------------------------

CONTACTS_PRIVATE_ONLY = (
    "Set up email, webhook, SMS and push in our private chat: /email, /webhook, /phone, /push, "
    "/channels."
)
CONTACTS_UNAVAILABLE = "Email, webhooks, SMS and push are not available on this gateway."

EMAIL_USAGE = (
    "<code>/email you@example.org</code> adds an address (I mail it a code), "
    "<code>/email verify 123456</code> confirms it with that code, "
    "<code>/email off</code> removes it."
)
WEBHOOK_USAGE = (
    "<code>/webhook https://example.org/hooks/libral</code> registers your endpoint, "
    "<code>/webhook test</code> sends it a signed test event, "
    "<code>/webhook off</code> removes it."
)
PHONE_USAGE = (
    "<code>/phone</code> and the button share your number for SMS (urgent messages only), "
    "<code>/phone off</code> removes it."
)
PUSH_USAGE = (
    "<code>/push https://ntfy.sh/your-secret-topic</code> (optionally followed by an access "
    "token) sends notifications to that ntfy topic, <code>/push off</code> removes it."
)

_CHANNEL_NAMES = {
    "email": "Email",
    "webhook": "Webhook",
    "sms": "SMS",
    "push": "Push",
}
_STATE_LABELS = {
    "pending": "⏳ waiting for the code",
    "verified": "✅ in use",
    "bouncing": "⚠️ bouncing",
    "disabled": "⛔ disabled",
}
_FIXES = {
    ("email", "pending"): "Send <code>/email verify 123456</code> with the code I mailed.",
    ("email", "bouncing"): (
        "The mail server refused it. Send <code>/email you@example.org</code> to verify it again."
    ),
    ("email", "disabled"): "Send <code>/email you@example.org</code> to verify it again.",
    ("webhook", "bouncing"): (
        "<code>/webhook test</code> turns it back on once your endpoint answers; "
        "<code>/webhook https://...</code> registers a new one."
    ),
    ("webhook", "disabled"): (
        "<code>/webhook test</code> turns it back on once your endpoint answers; "
        "<code>/webhook https://...</code> registers a new one."
    ),
    ("sms", "bouncing"): "Send /phone to share your number again.",
    ("sms", "disabled"): "Send /phone to share your number again.",
    ("push", "bouncing"): "Send <code>/push https://...</code> to set it again.",
    ("push", "disabled"): "Send <code>/push https://...</code> to set it again.",
}


def contact_line(channel: str, state: str, reason: str | None, shown: str) -> str:
    """One contact of /channels (and of /email etc. alone): masked, with how to fix it."""
    name = _CHANNEL_NAMES.get(channel, escape(channel))
    line = f"• <b>{name}</b>: {escape(shown)} — {_STATE_LABELS.get(state, escape(state))}"
    if reason and state != "verified":
        line += f"\n   Reason: {escape(reason)}"
    fix = _FIXES.get((channel, state))
    if fix:
        line += f"\n   {fix}"
    return line


def no_contact(channel: str) -> str:
    return f"• <b>{_CHANNEL_NAMES.get(channel, escape(channel))}</b>: not set up"


def channel_list(lines: Sequence[str]) -> str:
    if not lines:
        return (
            "📡 You have no channels besides Telegram yet.\n"
            "Add one with /email, /webhook, /phone or /push."
        )
    return (
        "📡 <b>Your channels besides Telegram</b>\n"
        + "\n".join(lines)
        + "\n\nChange them with /email, /webhook, /phone or /push (each with <code>off</code> "
        "to remove)."
    )


def setup_refused(problem: str, usage: str) -> str:
    return f"⚠️ {escape(problem)}\n{usage}"


def email_code_sent(shown: str, minutes: int) -> str:
    return (
        f"📧 I mailed a code to {escape(shown)}. It expires in {minutes} minutes; send it back "
        "like this: <code>/email verify 123456</code>"
    )


def email_already_verified(shown: str) -> str:
    return f"✅ {escape(shown)} is already verified and in use."


def email_verified(shown: str) -> str:
    return f"✅ Verified: messages can now reach you at {escape(shown)}."


def webhook_registered(secret: str, host: str) -> str:
    return (
        f"🔗 Your webhook at {escape(host)} is registered.\n\n"
        "Your signing secret (shown only this once, keep it on your receiver):\n"
        f"<code>{escape(secret)}</code>\n\n"
        "Each delivery is a JSON POST signed per Standard Webhooks "
        "(standardwebhooks.com): headers <code>webhook-id</code>, "
        "<code>webhook-timestamp</code> and <code>webhook-signature: v1,&lt;signature&gt;</code>, "
        "the base64 HMAC-SHA256 of <code>id.timestamp.body</code> keyed with the base64-decoded "
        "part after <code>whsec_</code>. The official libraries verify it for you; reject old "
        "timestamps and deduplicate on <code>webhook-id</code>.\n\n"
        "<code>/webhook test</code> sends a signed test event now."
    )


PHONE_ASK = (
    "📱 Tap the button below to share your phone number from Telegram. "
    "I send SMS for urgent messages only."
)
PHONE_BUTTON = "📱 Share my phone number"
PHONE_NOT_YOURS = (
    "⚠️ That is someone else's contact. I only take your own number: tap "
    "“📱 Share my phone number” below."
)
PHONE_ONLY_BY_BUTTON = (
    "I only take your number from Telegram's contact sharing: send /phone and tap the button."
)


def phone_saved(shown: str) -> str:
    return f"✅ Saved your {escape(shown)} for SMS (urgent messages only)."


def push_saved(host: str, *, token: bool) -> str:
    with_token = " with your access token" if token else ""
    return f"✅ Push notifications go to your topic on {escape(host)}{with_token}."


def contact_removed(channel: str, *, existed: bool) -> str:
    name = _CHANNEL_NAMES.get(channel, escape(channel))
    if not existed:
        return f"{name}: nothing to remove."
    return f"🗑 {name} removed; I no longer store it."
