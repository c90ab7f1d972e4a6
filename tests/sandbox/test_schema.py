"""The Bot API schema table and the decoding/validation of call arguments."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sandbox.errors import BotAPIError
from sandbox.schema import (
    Method,
    UploadedFile,
    check_object,
    load_schema,
    missing_param_error,
    parse_params,
    result_type_fields,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference" / "telegram-bot-api-10.1.json"

DOC = UploadedFile("report.pdf", "application/pdf", b"%PDF-1.4")
KEYBOARD = json.dumps({"inline_keyboard": [[{"text": "Open", "callback_data": "open:1"}]]})


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_bot_api_schema", REPO / "scripts" / "gen_bot_api_schema.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def method(name: str) -> Method:
    found = load_schema().method(name)
    assert found is not None, name
    return found


def bad(name: str, raw: dict[str, Any], *, typed: bool = False) -> str:
    with pytest.raises(BotAPIError) as caught:
        parse_params(method(name), raw, typed=typed)
    assert caught.value.error_code == 400
    return caught.value.description


# --------------------------------------------------------------------------- the table


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"reference schema directory {SHARED} absent")
def test_checked_in_table_is_up_to_date() -> None:
    generator = _load_generator()
    checked_in = (REPO / "sandbox" / "bot_api_schema.json").read_text(encoding="utf-8")
    assert generator.generate(REFERENCE) == checked_in, (
        "sandbox/bot_api_schema.json is stale: run .venv/bin/python scripts/gen_bot_api_schema.py"
    )


def test_table_content() -> None:
    schema = load_schema()
    assert schema.version == "Bot API 10.1"
    send = schema.methods["sendMessage"]
    assert send.returns == ("Message",)
    assert send.params["chat_id"].types == ("Integer", "String")
    assert send.params["chat_id"].required
    assert not send.params["parse_mode"].required
    assert schema.types["ChatMember"].subtypes[0] == "ChatMemberOwner"
    assert schema.types["ChatMemberOwner"].fields["status"].const == "creator"
    assert load_schema() is schema  # cached


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sendMessage", "sendMessage"),
        ("sendmessage", "sendMessage"),
        ("SENDMESSAGE", "sendMessage"),
        ("getUpdates", "getUpdates"),
        ("noSuchMethod", None),
    ],
)
def test_method_lookup_is_case_insensitive(name: str, expected: str | None) -> None:
    found = load_schema().method(name)
    assert (found.name if found else None) == expected


def test_result_type_fields() -> None:
    assert set(result_type_fields("ForumTopic")) >= {"message_thread_id", "name", "icon_color"}
    assert dict(result_type_fields("NoSuchType")) == {}


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        (
            "sendMessage",
            {"chat_id": "-1001234567890", "text": "hi", "disable_notification": "true"},
            {"chat_id": -1001234567890, "text": "hi", "disable_notification": True},
        ),
        ("sendMessage", {"chat_id": "@channel", "text": "1"}, {"chat_id": "@channel", "text": "1"}),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "message_thread_id": "12", "protect_content": "False"},
            {"chat_id": 5, "text": "x", "message_thread_id": 12, "protect_content": False},
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "reply_markup": KEYBOARD},
            {"chat_id": 5, "text": "x", "reply_markup": json.loads(KEYBOARD)},
        ),
        (
            "sendMessage",
            {
                "chat_id": "5",
                "text": "x",
                "link_preview_options": '{"is_disabled": true}',
                "reply_parameters": '{"message_id": 7}',
                "entities": '[{"type": "bold", "offset": 0, "length": 1}]',
            },
            {
                "chat_id": 5,
                "text": "x",
                "link_preview_options": {"is_disabled": True},
                "reply_parameters": {"message_id": 7},
                "entities": [{"type": "bold", "offset": 0, "length": 1}],
            },
        ),
        # Unknown parameters are ignored; empty optional ones count as absent.
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "bogus": "1", "parse_mode": ""},
            {"chat_id": 5, "text": "x"},
        ),
        (
            "createForumTopic",
            {"chat_id": "-100", "name": "Inbox", "icon_color": "7322096"},
            {"chat_id": -100, "name": "Inbox", "icon_color": 7322096},
        ),
        (
            "editMessageText",
            {"chat_id": "5", "message_id": "9", "text": "new", "parse_mode": "HTML"},
            {"chat_id": 5, "message_id": 9, "text": "new", "parse_mode": "HTML"},
        ),
        (
            "deleteMessages",
            {"chat_id": "5", "message_ids": "[1, 2, 3]"},
            {"chat_id": 5, "message_ids": [1, 2, 3]},
        ),
        (
            "sendDocument",
            {"chat_id": "5", "document": "attach://f0", "f0": DOC, "caption": "c"},
            {"chat_id": 5, "document": DOC, "caption": "c"},
        ),
        ("sendDocument", {"chat_id": "5", "document": DOC}, {"chat_id": 5, "document": DOC}),
        (
            "sendDocument",
            {"chat_id": "5", "document": "BQACAgIAAxkBAAI"},
            {"chat_id": 5, "document": "BQACAgIAAxkBAAI"},
        ),
        (
            "setMyCommands",
            {
                "commands": '[{"command": "start", "description": "Start"}]',
                "scope": '{"type": "chat", "chat_id": 5}',
            },
            {
                "commands": [{"command": "start", "description": "Start"}],
                "scope": {"type": "chat", "chat_id": 5},
            },
        ),
        (
            "answerCallbackQuery",
            {"callback_query_id": "4382bfdwdsb323b2d9", "show_alert": "1", "cache_time": "0"},
            {"callback_query_id": "4382bfdwdsb323b2d9", "show_alert": True, "cache_time": 0},
        ),
        (
            "getUpdates",
            {"offset": "-1", "limit": "100", "timeout": "30", "allowed_updates": '["message"]'},
            {"offset": -1, "limit": 100, "timeout": 30, "allowed_updates": ["message"]},
        ),
        ("getUpdates", {}, {}),
        (
            "sendLocation",
            {"chat_id": "5", "latitude": "51.5", "longitude": "-0.12"},
            {"chat_id": 5, "latitude": 51.5, "longitude": -0.12},
        ),
    ],
)
def test_form_decoding(name: str, raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert parse_params(method(name), raw, typed=False) == expected


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        (
            "sendMessage",
            {"chat_id": 5, "text": "hi", "disable_notification": False},
            {"chat_id": 5, "text": "hi", "disable_notification": False},
        ),
        # A number where a String is expected is stringified, as Telegram does.
        ("sendMessage", {"chat_id": 5, "text": 42}, {"chat_id": 5, "text": "42"}),
        ("sendMessage", {"chat_id": "@chan", "text": "x"}, {"chat_id": "@chan", "text": "x"}),
        (
            "sendMessage",
            {"chat_id": 5, "text": "x", "reply_markup": json.loads(KEYBOARD)},
            {"chat_id": 5, "text": "x", "reply_markup": json.loads(KEYBOARD)},
        ),
        # Telegram flattens JSON bodies into strings, so JSON-in-a-string works there too.
        (
            "sendMessage",
            {"chat_id": 5, "text": "x", "reply_markup": KEYBOARD},
            {"chat_id": 5, "text": "x", "reply_markup": json.loads(KEYBOARD)},
        ),
        (
            "deleteMessages",
            {"chat_id": 5, "message_ids": [4, 5]},
            {"chat_id": 5, "message_ids": [4, 5]},
        ),
        (
            "sendLocation",
            {"chat_id": 5, "latitude": 51, "longitude": 0.5},
            {"chat_id": 5, "latitude": 51.0, "longitude": 0.5},
        ),
        ("getUpdates", {"offset": None, "timeout": 0}, {"timeout": 0}),
    ],
)
def test_json_decoding(name: str, raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert parse_params(method(name), raw, typed=True) == expected


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "raw", "description"),
    [
        ("sendMessage", {"text": "hi"}, "Bad Request: chat_id is empty"),
        ("sendMessage", {"chat_id": "", "text": "hi"}, "Bad Request: chat_id is empty"),
        ("sendMessage", {"chat_id": "5"}, "Bad Request: message text is empty"),
        ("sendMessage", {"chat_id": "5", "text": ""}, "Bad Request: message text is empty"),
        ("deleteMessage", {"chat_id": "5"}, "Bad Request: message identifier is not specified"),
        (
            "answerCallbackQuery",
            {},
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
        ),
        ("createForumTopic", {"chat_id": "5"}, 'Bad Request: parameter "name" is required'),
        ("deleteMessages", {"chat_id": "5"}, 'Bad Request: parameter "message_ids" is required'),
        ("setMyCommands", {}, 'Bad Request: parameter "commands" is required'),
        ("sendDocument", {"chat_id": "5"}, "Bad Request: there is no document in the request"),
        (
            "sendDocument",
            {"chat_id": "5", "document": "attach://missing"},
            "Bad Request: there is no document in the request",
        ),
        # A file part under a non-file parameter leaves the argument unset.
        ("sendMessage", {"chat_id": "5", "text": DOC}, "Bad Request: message text is empty"),
    ],
)
def test_missing_required(name: str, raw: dict[str, Any], description: str) -> None:
    assert bad(name, raw) == description


def test_missing_param_error_for_conditionally_required() -> None:
    error = missing_param_error("editMessageText", "text")
    assert (error.error_code, error.description) == (400, "Bad Request: message text is empty")


@pytest.mark.parametrize(
    ("name", "raw", "typed", "description"),
    [
        ("sendMessage", {"chat_id": "abc", "text": "x"}, False, "Bad Request: chat not found"),
        ("sendMessage", {"chat_id": "@", "text": "x"}, False, "Bad Request: chat not found"),
        ("sendMessage", {"chat_id": "1.5", "text": "x"}, False, "Bad Request: chat not found"),
        ("sendMessage", {"chat_id": True, "text": "x"}, True, "Bad Request: chat not found"),
        ("sendMessage", {"chat_id": [1], "text": "x"}, True, "Bad Request: chat not found"),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "message_thread_id": "seven"},
            False,
            "Bad Request: invalid message_thread_id specified",
        ),
        (
            "sendMessage",
            {"chat_id": 5, "text": "x", "message_thread_id": True},
            True,
            "Bad Request: invalid message_thread_id specified",
        ),
        (
            "sendMessage",
            {"chat_id": 5, "text": "x", "disable_notification": 1},
            True,
            "Bad Request: invalid disable_notification specified",
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "disable_notification": "yes"},
            False,
            "Bad Request: invalid disable_notification specified",
        ),
        (
            "sendMessage",
            {"chat_id": 5, "text": True},
            True,
            "Bad Request: invalid text specified",
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "reply_markup": "{not json"},
            False,
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "reply_markup": "[]"},
            False,
            "Bad Request: object expected as reply keyboard markup",
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "link_preview_options": "{oops"},
            False,
            "Bad Request: can't parse link preview options JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "reply_parameters": '{"message_id": "7"}'},
            False,
            'Bad Request: can\'t parse ReplyParameters: Field "message_id" must be of type Integer',
        ),
        (
            "sendMessage",
            {"chat_id": "5", "text": "x", "reply_parameters": "{}"},
            False,
            "Bad Request: can't parse ReplyParameters: Can't find field \"message_id\"",
        ),
        (
            "deleteMessages",
            {"chat_id": "5", "message_ids": "7"},
            False,
            "Bad Request: expected an Array of Integer",
        ),
        (
            "setMyCommands",
            {"commands": '[{"command": "start"}]'},
            False,
            "Bad Request: can't parse BotCommand: Can't find field \"description\"",
        ),
        (
            "setMyCommands",
            {"commands": "[]", "scope": '{"type": "chat"}'},
            False,
            "Bad Request: can't parse BotCommandScope: Can't find field \"chat_id\"",
        ),
    ],
)
def test_wrong_types(name: str, raw: dict[str, Any], typed: bool, description: str) -> None:
    assert bad(name, raw, typed=typed) == description


def _markup(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"chat_id": 5, "text": "x", "reply_markup": {"inline_keyboard": [list(buttons)]}}


@pytest.mark.parametrize(
    ("button", "description"),
    [
        ({"text": "a", "callback_data": "x" * 64}, None),
        ({"text": "a", "callback_data": "é" * 32}, None),
        ({"text": "a", "url": "https://example.com"}, None),
        ({"text": "a", "copy_text": {"text": "c"}, "style": "primary"}, None),
        (
            {"text": "only text"},
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"callback_data": "x"},
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            {"text": 1, "callback_data": "x"},
            'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String',
        ),
        (
            {"text": "a", "callback_data": "x", "url": "https://example.com"},
            "Bad Request: can't parse inline keyboard button: "
            "exactly one action field must be set, found url, callback_data",
        ),
        ({"text": "a", "callback_data": "x" * 65}, "Bad Request: BUTTON_DATA_INVALID"),
        ({"text": "a", "callback_data": "é" * 33}, "Bad Request: BUTTON_DATA_INVALID"),
        ({"text": "a", "callback_data": ""}, "Bad Request: BUTTON_DATA_INVALID"),
        ({"text": "a", "url": ""}, "Bad Request: BUTTON_URL_INVALID"),
    ],
)
def test_inline_keyboard_buttons(button: dict[str, Any], description: str | None) -> None:
    raw = _markup(button)
    if description is None:
        assert (
            parse_params(method("sendMessage"), raw, typed=True)["reply_markup"]
            == (raw["reply_markup"])
        )
    else:
        assert bad("sendMessage", raw, typed=True) == description


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        ({"keyboard": [["yes", {"text": "no"}]], "resize_keyboard": True}, None),
        ({"remove_keyboard": True}, None),
        ({"force_reply": True}, None),
        (
            {"inline_keyboard": {"text": "a"}},
            'Bad Request: Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array',
        ),
        (
            {"inline_keyboard": [{"text": "a"}]},
            'Bad Request: Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array '
            "of Arrays",
        ),
        (
            {"keyboard": [[{"request_contact": True}]]},
            'Bad Request: can\'t parse keyboard button: Field "text" must be of type String',
        ),
        (
            {},
            "Bad Request: can't parse InlineKeyboardMarkup: Can't find field \"inline_keyboard\"",
        ),
    ],
)
def test_reply_markup_kinds(markup: dict[str, Any], description: str | None) -> None:
    raw = {"chat_id": "5", "text": "x", "reply_markup": json.dumps(markup)}
    if description is None:
        assert parse_params(method("sendMessage"), raw, typed=False)["reply_markup"] == markup
    else:
        assert bad("sendMessage", raw) == description


# --------------------------------------------------------------------------- check_object

USER = {"id": 42, "is_bot": False, "first_name": "Ada"}
CHAT = {"id": -1001, "type": "supergroup", "title": "Log", "is_forum": True}
MESSAGE = {
    "message_id": 10,
    "date": 1700000000,
    "chat": CHAT,
    "from": USER,
    "message_thread_id": 3,
    "is_topic_message": True,
    "text": "hi",
    "entities": [{"type": "bold", "offset": 0, "length": 2}],
}


@pytest.mark.parametrize(
    ("type_name", "obj"),
    [
        ("User", USER),
        ("Chat", CHAT),
        ("Message", MESSAGE),
        ("Message", {**MESSAGE, "reply_to_message": {**MESSAGE, "message_id": 9}}),
        ("ForumTopic", {"message_thread_id": 3, "name": "Inbox", "icon_color": 7322096}),
        ("MessageId", {"message_id": 1}),
        ("ChatMember", {"status": "member", "user": USER}),
        ("ChatMember", {"status": "left", "user": USER}),
        ("ChatMember", {"status": "creator", "user": USER, "is_anonymous": False}),
        ("BotCommand", {"command": "start", "description": "Start"}),
        ("Update", {"update_id": 1, "message": MESSAGE}),
    ],
)
def test_check_object_accepts(type_name: str, obj: dict[str, Any]) -> None:
    assert check_object(type_name, obj) == []


@pytest.mark.parametrize(
    ("type_name", "obj", "problems"),
    [
        ("User", {"id": 1, "is_bot": False}, ["User: missing required field 'first_name'"]),
        ("User", {**USER, "nick": "x"}, ["User: unknown field 'nick' for User"]),
        ("User", {**USER, "id": "42"}, ["User.id: expected Integer, got str"]),
        ("User", {**USER, "is_bot": 0}, ["User.is_bot: expected Boolean, got int"]),
        ("User", {**USER, "id": True}, ["User.id: expected Integer, got bool"]),
        (
            "Message",
            {**MESSAGE, "chat": {"id": 1}},
            ["Message.chat: missing required field 'type'"],
        ),
        (
            "Message",
            {**MESSAGE, "entities": [{"type": "bold", "offset": 0}]},
            ["Message.entities[0]: missing required field 'length'"],
        ),
        (
            "ChatMember",
            {"status": "member"},
            ["ChatMember<ChatMemberMember>: missing required field 'user'"],
        ),
        (
            "ChatMember",
            {"status": "creator", "user": USER},
            ["ChatMember<ChatMemberOwner>: missing required field 'is_anonymous'"],
        ),
        ("ForumTopic", {"message_thread_id": 3, "name": "x"}, None),
    ],
)
def test_check_object_rejects(
    type_name: str, obj: dict[str, Any], problems: list[str] | None
) -> None:
    found = check_object(type_name, obj)
    if problems is None:
        assert found  # some problem, wording not pinned
    else:
        assert found == problems
