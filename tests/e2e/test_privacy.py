"""Privacy guarantees, tested end to end (issue 5): the whole gateway runs against the sandbox
on a day full of personal data, and

- its logs (every logger, DEBUG and up) never carry message content, email addresses, phone
  numbers, names or tokens;
- its API responses never echo content or personal data;
- its database holds no content after delivery, and nothing about a message after its
  retention deadline (read straight from the SQLite file).

The secrets are distinctive strings that occur nowhere else, so finding one anywhere is a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.ephemeral import ReadDelete
from sandbox.client import ChatView, MessageView
from sandbox.state import DEFAULT_BOT_TOKEN
from tests.e2e.conftest import ADMIN_RIGHTS, Running, token_in
from tests.waiting import eventually

API = "/api/v1/communication"

# --- the secrets -------------------------------------------------------------------------------

FIRST_NAME = "Quillonia"
LAST_NAME = "Vexmoorby"
USERNAME = "quillonia_vexmoor"
STRANGER_NAME = "Brambleworthy"  # a second person, with a token but no personal log
EMAILS = ("quillonia.vex@privacy-probe.example", "billing-vexmoor@mailhost.example")
PHONES = ("+44 7700 900461", "+1-555-013-7788")
# One marker per place content travels through; none is a word the gateway could produce.
MARK = {
    "text": "mk-text-aardvarkine",
    "markdown": "mk-markdown-bitternish",
    "html": "mk-html-caracaloid",
    "json": "mk-json-dugongery",
    "hashtag": "mkhashtagemuvian",
    "label": "mk-label-fossarine",
    "deferred": "mk-deferred-geckonid",
    "ephemeral": "mk-ephemeral-hyraxian",
    "destruct": "mk-destruct-ibisoid",
    "retention": "mk-retention-jacanid",
    "refused": "mk-refused-kinkajoo",
    "chat": "mk-chat-lemurine",
}
CONTENT = tuple(MARK.values())
NAMES = (FIRST_NAME, LAST_NAME, USERNAME, STRANGER_NAME)
# The Bot API token's secret half: its id half is the bot's public id, logged as "bot id=...".
BOT_TOKEN_SECRET = DEFAULT_BOT_TOKEN.partition(":")[2]


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def personal_data() -> tuple[str, ...]:
    """Content, emails, phones (also as bare digits) and names: what must never leak."""
    return (*CONTENT, *EMAILS, *PHONES, *map(_digits, PHONES), *NAMES)


# Quiet hours default to 22:00-08:00 in Asia/Tokyo (UTC+9).
WINDOW_END = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 08:00 on the 26th in Tokyo
NOON = WINDOW_END + timedelta(hours=4)
LEAD = timedelta(seconds=3)  # how long before the window ends deferred messages are sent


def found_in(text: str, secrets: tuple[str, ...]) -> list[str]:
    """The secrets that occur in `text`, case-insensitively (a name may be lowercased)."""
    folded = text.casefold()
    return [s for s in secrets if s.casefold() in folded]


# --- catching every log record -----------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", None, None))) | {
    "message",
    "asctime",
}
# The sandbox plays Telegram and its control API plays the person: what it logs about the
# requests it serves (the Bot API token is in every Bot API path, the person's data in their
# bodies) is Telegram's and the test's business, not the gateway's. Excluded: the sandbox's own
# loggers and aiohttp's access lines of the sandbox server (the gateway's API server runs with
# its access log off; a line for an /api/ path would still be checked).
_SANDBOX_REQUEST = re.compile(r'"[A-Z]+ /(bot|file/bot|sandbox/)')


def outside_the_gateway(record: logging.LogRecord) -> bool:
    name = record.name
    if name == "sandbox" or name.startswith("sandbox."):
        return True
    if name.startswith(("_pytest", "pytest")):  # pytest's own machinery
        return True
    return name == "aiohttp.access" and bool(_SANDBOX_REQUEST.search(_message(record)))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:  # a bad format string is itself worth seeing
        return f"<unformattable: {exc!r}> {record.msg!r} {record.args!r}"


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Everything of a record a handler could write out."""
    yield _message(record)
    yield str(record.msg)
    yield repr(record.args)
    if record.exc_info and record.exc_info[1] is not None:
        yield "".join(traceback.format_exception(record.exc_info[1]))
    yield record.exc_text or ""
    yield record.stack_info or ""
    for key, value in vars(record).items():  # `extra=` fields
        if key not in _STANDARD:
            yield f"{key}={value!r}"


@dataclass
class LogCollector(logging.Handler):
    """Every record from every logger at DEBUG and up, whatever its propagation."""

    records: list[logging.LogRecord] = field(default_factory=list)
    _attached: list[logging.Logger] = field(default_factory=list)
    _enabled: list[logging.Logger] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(logging.DEBUG)

    def __hash__(self) -> int:  # logging keeps handlers in sets and weak references
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @staticmethod
    def _loggers() -> list[logging.Logger]:
        known = logging.root.manager.loggerDict.values()
        return [logging.root, *(lg for lg in known if isinstance(lg, logging.Logger))]

    def install(self, caplog: pytest.LogCaptureFixture) -> None:
        """Root at DEBUG (caplog restores the levels), and every logger that would not reach
        the root (propagate off, a level of its own such as SQLAlchemy's WARN, disabled by a
        logging config) made to reach this handler at DEBUG."""
        caplog.set_level(logging.DEBUG)
        logging.root.addHandler(self)
        self._attached.append(logging.root)
        for logger in self._loggers():
            if logger is logging.root:
                continue
            if logger.level > logging.DEBUG:
                caplog.set_level(logging.DEBUG, logger=logger.name)
            if logger.disabled:
                logger.disabled = False
                self._enabled.append(logger)
            if not logger.propagate:
                logger.addHandler(self)
                self._attached.append(logger)

    def uninstall(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self)
        for logger in self._enabled:
            logger.disabled = True

    def blind_spots(self) -> list[str]:
        """Loggers that could have logged past this handler (created or changed meanwhile)."""
        spots = []
        if logging.root.manager.disable:
            spots.append(f"logging.disable({logging.root.manager.disable})")
        if logging.root.level > logging.DEBUG:
            spots.append(f"root: level {logging.root.level}")
        for logger in self._loggers():
            if logger.disabled:
                spots.append(f"{logger.name}: disabled")
            if logger is not logging.root and not logger.propagate and self not in logger.handlers:
                spots.append(f"{logger.name}: does not propagate")
        return spots

    def leaks(self, secrets: tuple[str, ...]) -> list[str]:
        """One line per secret and place it leaked (logger and message template)."""
        found: dict[tuple[str, str, str], str] = {}
        for record in self.records:
            if outside_the_gateway(record):
                continue
            for text in record_texts(record):
                for secret in found_in(text, secrets):
                    place = (secret, record.name, str(record.msg)[:60])
                    found.setdefault(
                        place, f"{secret!r} in {record.name} {record.levelname}: {text[:300]!r}"
                    )
        return list(found.values())


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogCollector]:
    """Request it before `running` so that the gateway's start-up is caught too."""
    collector = LogCollector()
    collector.install(caplog)
    try:
        yield collector
    finally:
        collector.uninstall()


# --- acting as the person and as a service -----------------------------------------------------


@dataclass(frozen=True)
class Reply:
    what: str
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Api:
    """The HTTP API as a service uses it; every reply is kept for the response checks."""

    running: Running
    token: str
    replies: list[Reply] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"Authorization": f"Bearer {self.token}"} if headers is None else headers
        if data is not None:
            sent = {**sent, "Content-Type": "application/json"}
        async with self.running.http.request(
            method, self.running.api_url + API + path, json=body, data=data, headers=sent
        ) as resp:
            reply = Reply(what, resp.status, await resp.text())
        self.replies.append(reply)
        return reply

    async def send(self, body: Any, what: str, expect: int = 202) -> Reply:
        reply = await self.call("POST", "/send", what, body=body)
        assert reply.status == expect, (what, reply)
        return reply

    async def delivered(self, message_id: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                reply = await self.call("GET", f"/messages/{message_id}", "status")
                status: dict[str, Any] = reply.json()
                if status["status"] == "delivered":
                    return status
                assert status["status"] in ("queued", "deferred"), status
                await asyncio.sleep(0.05)  # polling: the API announces nothing


async def person(
    running: Running, first: str, *, last: str | None = None, username: str | None = None
) -> tuple[int, int, str]:
    """Running.person_with_log, with a last name and a username too."""
    user = await running.world.create_user(first, last_name=last, username=username)
    group = await running.world.create_group(f"{first}'s log", owner_id=user, is_forum=True)
    await running.world.set_bot_membership(
        group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
    )
    await running.world.wait_for_bot_message(group)
    await start(running, user)
    await running.world.send_message(user, group, "/setup")
    await running.world.wait_for_chat(
        group,
        lambda c: len(c.topics) == 5 and any(m.message_thread_id is None for m in c.bot_messages()),
    )
    return user, group, token_in(await command(running, user, "/token"))


async def stranger(running: Running) -> str:
    """A registered person with a token but no personal log: their sends are refused (409)."""
    user = await running.world.create_user(STRANGER_NAME)
    await start(running, user)
    return token_in(await command(running, user, "/token"))


async def start(running: Running, user: int) -> None:
    """/start: the first message, which opens the private chat."""
    await running.world.send_message(user, user, "/start")
    await running.world.wait_for_bot_message(user)


async def command(running: Running, user: int, text: str) -> MessageView:
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.send_message(user, user, text)
    chat = await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    return chat.bot_messages()[-1]


def _with(marker: str) -> Callable[[ChatView], MessageView | None]:
    """Does a chat hold a (live or deleted) bot message with `marker`?"""

    def holds(chat: ChatView) -> MessageView | None:
        return next((m for m in chat.messages if m.from_bot and marker in (m.text or "")), None)

    return holds


async def hold_overnight(running: Running, api: Api, user: int) -> list[str]:
    """Quiet hours set to defer, the clock LEAD before they end: two messages are held (they
    are released as one digest when the window ends, LEAD later in real time)."""
    assert "Saved" in ((await command(running, user, "/quiet defer")).text or "")
    running.clock.set(WINDOW_END - LEAD)
    held = []
    for n, email in enumerate(EMAILS):
        body = {
            "category": "system",
            "content": {"text": f"{MARK['deferred']} #{n} for {FIRST_NAME} <{email}>"},
        }
        reply = await api.send(body, "deferred")
        assert reply.json()["status"] == "deferred"
        held.append(reply.json()["message_id"])
    return held


async def refused_requests(api: Api, stranger_api: Api) -> None:
    """Requests the API refuses (400, 401, 404, 409, 413, 422), all full of personal data."""
    secret_text = f"{MARK['refused']} {FIRST_NAME} {EMAILS[0]} {PHONES[0]}"
    invalid: list[tuple[str, Any]] = [
        ("two kinds", {"content": {"text": secret_text, "html": secret_text}}),
        ("empty text", {"content": {"text": " "}, "hashtags": [secret_text]}),
        ("bad retention", {"content": {"text": secret_text}, "retention_seconds": PHONES[1]}),
        ("bad category", {"content": {"text": secret_text}, "category": EMAILS[1]}),
        (
            "bad label",
            {"content": {"text": secret_text}, "context_labels": {"category": EMAILS[0]}},
        ),
        (
            "bad topic",
            {"content": {"text": secret_text}, "context_labels": {"telegram.topic_id": PHONES[0]}},
        ),
        ("unknown field", {"content": {"text": secret_text}, "surprise": EMAILS[0]}),
        ("unknown content field", {"content": {"text": secret_text, "note": PHONES[0]}}),
        ("long hashtag", {"content": {"text": secret_text}, "hashtags": [MARK["refused"] * 10]}),
        ("long text", {"content": {"text": (secret_text + " ") * 3000}}),
        (
            "too late to self-destruct",
            {"content": {"text": secret_text, "self_destruct_seconds": 3 * 86400}},
        ),
        ("NaN json", {"content": {"json_data": {"email": EMAILS[0], "x": float("nan")}}}),
        ("bad channel", {"content": {"text": secret_text}, "channels": ["fax"]}),
        ("recipient", {"recipient": EMAILS[1], "content": {"text": secret_text}}),
        ("bad priority", {"content": {"text": secret_text}, "priority": PHONES[1]}),
        ("not an object", [secret_text, EMAILS[1]]),
    ]
    for what, body in invalid:
        reply = await api.send(body, what, expect=422)
        error = reply.json()["error"]
        assert error["code"] == "invalid_request", reply
    raw = f'{{"content": {{"text": "{secret_text}'.encode()
    for what, data in (
        ("malformed json", raw),
        ("not utf-8", raw + b'\xff"}}'),
        ("nested too deep", b"[" * 100_000),
    ):
        reply = await api.call("POST", "/send", what, data=data)
        assert reply.status == 400, reply
    huge = json.dumps({"content": {"text": secret_text * 40_000}}).encode()
    reply = await api.call("POST", "/send", "too large", data=huge)
    assert reply.status == 413, reply
    body = {"content": {"text": secret_text}}
    for what, headers in (
        ("no token", {}),
        ("not bearer", {"Authorization": f"Basic {EMAILS[0]}"}),
        ("unknown token", {"Authorization": f"Bearer lgp_{MARK['refused']}{'x' * 25}"}),
        ("garbage token", {"Authorization": f"Bearer {PHONES[0]}"}),
    ):
        reply = await api.call("POST", "/send", what, body=body, headers=headers)
        assert reply.status == 401, reply
    reply = await stranger_api.send(body, "no personal log", expect=409)
    # Personal data where an id goes (the path, an idempotency key) is tested on its own below.
    for method in ("GET", "DELETE"):
        reply = await api.call(method, f"/messages/{uuid.uuid4()}", f"{method} unknown id")
        assert reply.status == 404, reply


@dataclass(frozen=True)
class Day:
    delivered: list[str]  # message ids, delivered and still held
    erased: str  # deleted by its sender through the API


async def delivered_traffic(running: Running, api: Api, user: int, group: int) -> Day:
    """Daytime messages of every kind, an idempotent repeat, an ephemeral message read and
    deleted with its button, a self-destructing one deleted on time, one erased through the
    API; returns once all of it has happened."""
    first = {
        "category": "auth",
        "priority": "high",
        "content": {"text": f"{MARK['text']}: sign-in by {FIRST_NAME} {LAST_NAME}, {PHONES[0]}"},
        "hashtags": [MARK["hashtag"], "login"],
        "context_labels": {"note": f"{MARK['label']} {EMAILS[1]}", "category": "auth"},
        "idempotency_key": "privacy-day-1",
    }
    bodies = [
        first,
        {
            "category": "payment",
            "content": {"markdown": f"**{MARK['markdown']}** paid by {EMAILS[0]} ({PHONES[1]})"},
        },
        {"content": {"html": f"<b>{MARK['html']}</b> for <i>{EMAILS[1]}</i> {USERNAME}"}},
        {
            "category": "system",
            "content": {
                "json_data": {
                    "note": MARK["json"],
                    "owner": {"name": f"{FIRST_NAME} {LAST_NAME}", "email": EMAILS[0]},
                    "phones": list(PHONES),
                }
            },
        },
        {"content": {"text": f"{MARK['ephemeral']} {EMAILS[0]}", "ephemeral": True}},
        {"content": {"text": f"{MARK['destruct']} {PHONES[1]}", "self_destruct_seconds": 1}},
    ]
    ids = [(await api.send(body, "accepted")).json()["message_id"] for body in bodies]
    repeat = await api.send(first, "idempotent repeat", expect=200)
    assert repeat.json()["message_id"] == ids[0]
    for message_id in ids:
        await api.delivered(message_id)

    ephemeral = _with(MARK["ephemeral"])
    chat = await running.world.wait_for_chat(group, lambda c: ephemeral(c) is not None)
    pressed = ephemeral(chat)
    assert pressed is not None
    assert pressed.reply_markup is not None
    await running.world.press_button(user, group, pressed.message_id, ReadDelete().pack())
    destruct = _with(MARK["destruct"])

    def both_deleted(chat: ChatView) -> bool:
        found = [ephemeral(chat), destruct(chat)]
        return all(m is not None and m.deleted_at is not None for m in found)

    await running.world.wait_for_chat(group, both_deleted, within=10)

    erased = ids[1]
    reply = await api.call("DELETE", f"/messages/{erased}", "erase")
    assert reply.status == 200, reply
    assert reply.json()["record_deleted"] is True
    reply = await api.call("GET", f"/messages/{erased}", "erased status")
    assert reply.status == 404
    await api.call("GET", "/channels", "channels")
    await api.call("GET", "/health", "health", headers={})
    return Day(delivered=[ids[0], *ids[2:4]], erased=erased)


# --- 1. logs -----------------------------------------------------------------------------------


def test_the_log_collector_catches_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    """The log test can fail: a secret logged anywhere the collector should look is found,
    also through a logger that does not propagate or that sets its own level."""
    quiet = logging.getLogger("tests.e2e.privacy.nonpropagating")
    quiet.propagate = False
    collector = LogCollector()
    collector.install(caplog)
    try:
        logging.getLogger("gateway.api.send").info("accepted %s", MARK["text"])
        logging.getLogger("gateway.delivery.worker").debug(f"to {EMAILS[0]}")
        logging.getLogger("sqlalchemy.engine.Engine").info("[params] %r", (PHONES[0],))
        quiet.warning("hello %s", FIRST_NAME)
        try:
            raise ValueError(f"bad token {BOT_TOKEN_SECRET}")
        except ValueError:
            logging.getLogger("bot.routers.tokens").exception("token failed")
        logging.getLogger("gateway.api.erase").info("x", extra={"who": USERNAME})
        # The sandbox plays Telegram: what it logs is not the gateway's.
        logging.getLogger("sandbox.server").info("user %s", LAST_NAME)
        assert collector.blind_spots() == []
    finally:
        collector.uninstall()
        quiet.propagate = True
    leaks = "\n".join(collector.leaks((*personal_data(), BOT_TOKEN_SECRET)))
    for secret in (MARK["text"], EMAILS[0], PHONES[0], FIRST_NAME, BOT_TOKEN_SECRET, USERNAME):
        assert repr(secret) in leaks
    assert repr(LAST_NAME) not in leaks


async def test_logs_never_carry_content_personal_data_or_tokens(
    all_logs: LogCollector, running: Running
) -> None:
    user, group, token = await person(running, FIRST_NAME, last=LAST_NAME, username=USERNAME)
    api = Api(running, token)
    stranger_api = Api(running, await stranger(running))

    # Night, quiet hours deferring: two messages are held while the person uses the bot and a
    # service sends requests the API refuses.
    held = await hold_overnight(running, api, user)
    await refused_requests(api, stranger_api)
    await running.world.send_message(
        user, user, f"{MARK['chat']} I am {FIRST_NAME}, {EMAILS[0]}, {PHONES[0]}"
    )
    await running.world.send_message(user, group, f"{MARK['chat']} {EMAILS[1]} {PHONES[1]}")
    before = len((await running.world.get_chat(user)).bot_messages())
    await running.world.share_contact(user)  # the bot answers it (stores the number)
    await running.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
    phone = f"+1555{user % 10_000_000:07d}"  # the sandbox's made-up number of this person
    for text in ("/status", "/prefs", "/retention", "/tokens", "/export"):
        await command(running, user, text)
    second_token = token_in(await command(running, user, "/token"))

    # The window ends: the held messages go out as a digest; then a busy day.
    await running.world.wait_for_chat(
        group, lambda c: _with(MARK["deferred"])(c) is not None, within=LEAD.seconds + 10
    )
    for message_id in held:
        await api.delivered(message_id)
    await delivered_traffic(running, api, user, group)
    await command(running, user, "/status")
    await command(running, user, "/export")
    await running.stop_gateway()  # its shutdown is logged too

    assert all_logs.blind_spots() == []
    gateway_records = [r for r in all_logs.records if not outside_the_gateway(r)]
    # The collector did see the gateway at work, at DEBUG (SQLAlchemy) and from its own code.
    names = {r.name for r in gateway_records}
    assert {"gateway.api.send", "gateway.api.erase", "gateway.deferred"} <= names, names
    assert any(n.startswith("sqlalchemy.engine") for n in names), names
    assert any(n.startswith("aiogram") for n in names), names
    secrets = (*personal_data(), phone, token, second_token, BOT_TOKEN_SECRET)
    leaks = all_logs.leaks(secrets)
    assert not leaks, "\n".join(leaks[:20])


# --- 2. API responses --------------------------------------------------------------------------


async def test_api_responses_never_echo_content_or_personal_data(running: Running) -> None:
    user, group, token = await person(running, FIRST_NAME, last=LAST_NAME, username=USERNAME)
    running.clock.set(NOON)
    api = Api(running, token)
    stranger_api = Api(running, await stranger(running))
    await refused_requests(api, stranger_api)
    day = await delivered_traffic(running, api, user, group)
    for message_id in day.delivered:
        await api.call("GET", f"/messages/{message_id}", "delivered status")

    replies = api.replies + stranger_api.replies
    statuses = {r.status for r in replies}
    assert {200, 202, 400, 401, 404, 409, 413, 422} <= statuses, statuses
    secrets = (*personal_data(), token)
    echoed = [
        f"{r.what} {r.status}: {found_in(r.text, secrets)} in {r.text[:300]}"
        for r in replies
        if found_in(r.text, secrets)
    ]
    assert not echoed, "\n".join(echoed)
    for reply in replies:
        body = reply.json()  # always JSON, never a traceback
        if reply.status >= 400:
            assert set(body) == {"error"}, reply
        if reply.status == 422 and "field" in body["error"]:
            # 422 names the field at fault, never its value.
            assert body["error"]["message"].startswith(body["error"]["field"]), reply


# --- 3. the database ---------------------------------------------------------------------------


def _db_path(running: Running) -> Path:
    return Path(running.database_url.removeprefix("sqlite+aiosqlite:///"))


def _cells(db: Path) -> Iterator[tuple[str, str, str]]:
    """(table, column, text) of every non-NULL cell, BLOBs decoded leniently."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    if isinstance(value, bytes):
                        text = value.decode("utf-8", errors="replace")
                    else:
                        text = str(value)
                    yield table, column, text


def _db_holds(db: Path, secrets: tuple[str, ...]) -> list[str]:
    return [
        f"{table}.{column}: {found_in(text, secrets)}"
        for table, column, text in _cells(db)
        if found_in(text, secrets)
    ]


async def test_the_database_holds_no_content_after_delivery(running: Running) -> None:
    user, group, token = await person(running, FIRST_NAME, last=LAST_NAME, username=USERNAME)
    api = Api(running, token)
    held = await hold_overnight(running, api, user)
    db = _db_path(running)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sealed = conn.execute(
            "SELECT count(*) FROM messages WHERE status = 'deferred' AND encrypted_content"
            " IS NOT NULL"
        ).fetchone()[0]
    assert sealed == len(held)  # held content is kept, sealed (and not readable below)
    assert _db_holds(db, personal_data()) == []
    for message_id in held:
        await api.delivered(message_id)  # the clock reached the window's end: day time
    day = await delivered_traffic(running, api, user, group)

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, status, encrypted_content FROM messages").fetchall()
    statuses = {message_id: status for message_id, status, _ in rows}
    for message_id in (*held, *day.delivered):
        assert statuses[message_id] == "delivered"
    assert day.erased not in statuses
    kept = [(i, s) for i, s, content in rows if s == "delivered" and content is not None]
    assert kept == [], "delivered messages still hold content"
    secrets = (*personal_data(), token, BOT_TOKEN_SECRET)
    assert _db_holds(db, secrets) == []
    # Nor did any of it ever reach the file in plain text (freed pages and the WAL included).
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            raw = path.read_bytes().decode("utf-8", errors="replace")
            assert found_in(raw, secrets) == [], path.name


async def _retention_case(running: Running) -> tuple[Api, str, datetime]:
    _, _, token = await person(running, FIRST_NAME)
    running.clock.set(NOON)
    api = Api(running, token)
    body = {"content": {"text": f"{MARK['retention']} {EMAILS[0]}"}, "retention_seconds": 2}
    accepted = (await api.send(body, "short retention")).json()
    await api.delivered(accepted["message_id"])
    assert _db_holds(_db_path(running), (accepted["message_id"],))  # held until its deadline
    return api, accepted["message_id"], datetime.fromisoformat(accepted["retention_expires_at"])


async def _forgotten(running: Running, message_id: str, within: float) -> None:
    db = _db_path(running)
    await eventually(
        lambda: not _db_holds(db, (message_id,)),
        within=within,
        what=f"the purge of every row about {message_id}",
    )
    # A Telegram copy may outlive the record, with its Telegram ids only.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        copies = conn.execute("SELECT message_id FROM telegram_copies").fetchall()
    assert all(row == (None,) for row in copies)


async def test_nothing_about_a_message_is_kept_after_its_retention_deadline_and_a_restart(
    running: Running,
) -> None:
    api, message_id, deadline = await _retention_case(running)
    # A restart reads the earliest deadline back from the database and purges at it.
    await running.stop_gateway()
    await running.start_gateway()
    await _forgotten(running, message_id, within=10)
    assert running.clock() >= deadline
    reply = await api.call("GET", f"/messages/{message_id}", "purged status")
    assert reply.status == 404


async def test_nothing_about_a_message_is_kept_soon_after_its_retention_deadline(
    running: Running,
) -> None:
    _, message_id, deadline = await _retention_case(running)
    # The purge runs at the deadline (the sweep every 60 s is only the safety net).
    await _forgotten(running, message_id, within=8)
    assert running.clock() >= deadline


async def test_identifiers_a_caller_chooses_are_not_logged(
    all_logs: LogCollector, running: Running
) -> None:
    """A service may put personal data where an id goes (an email as idempotency key, say)."""
    _, _, token = await running.person_with_log()
    running.clock.set(NOON)
    api = Api(running, token)
    for method in ("GET", "DELETE"):
        reply = await api.call(method, f"/messages/{EMAILS[0]}", "email as id")
        assert reply.status == 404
    body = {"content": {"text": "hello"}, "idempotency_key": f"welcome:{EMAILS[1]}"}
    accepted = await api.send(body, "email in the idempotency key")
    await api.send(body, "repeat", expect=200)
    await api.delivered(accepted.json()["message_id"])
    await running.stop_gateway()
    leaks = all_logs.leaks(EMAILS)
    assert not leaks, "\n".join(leaks)
