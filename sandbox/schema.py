"""The Bot API schema table and the decoding/validation of call arguments against it.

The table (sandbox/bot_api_schema.json) is generated from the official machine-readable
schema by scripts/gen_bot_api_schema.py. This module answers two questions for the server:

* what did the client mean? `parse_params` turns the raw arguments of one call (strings from a
  form/query string, or JSON values from an application/json body) into Python values, and
  rejects them with Telegram's own error wording where it matters to clients;
* is what we answer well formed? `check_object` lists every way an object the sandbox is about
  to return deviates from the schema type (missing required field, unknown field, wrong type).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from sandbox.errors import BotAPIError, bad_request

SCHEMA_RESOURCE = "bot_api_schema.json"
ARRAY_PREFIX = "Array of "


@dataclass(frozen=True)
class Param:
    """One parameter of a method, or one field of a type."""

    name: str
    types: tuple[str, ...]
    required: bool
    # Discriminator value of a union member ("creator" for ChatMemberOwner.status), else None.
    const: str | None = None


@dataclass(frozen=True)
class Method:
    name: str
    params: Mapping[str, Param]
    returns: tuple[str, ...]


@dataclass(frozen=True)
class TypeDef:
    name: str
    fields: Mapping[str, Param]
    # Non-empty for a union such as ChatMember: the value is exactly one of these types.
    subtypes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BotApiSchema:
    version: str
    methods: Mapping[str, Method]
    types: Mapping[str, TypeDef]
    _by_lower: Mapping[str, Method] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen, so the derived index is set through object.__setattr__.
        index = MappingProxyType({name.lower(): m for name, m in self.methods.items()})
        object.__setattr__(self, "_by_lower", index)

    def method(self, name: str) -> Method | None:
        """Look a method up the way Telegram does: case-insensitively."""
        return self._by_lower.get(name.lower())


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart body, as the server hands it to `parse_params`."""

    filename: str
    content_type: str
    data: bytes


# --------------------------------------------------------------------------- loading


def _params(raw_fields: list[dict[str, Any]]) -> Mapping[str, Param]:
    return MappingProxyType(
        {
            f["name"]: Param(f["name"], tuple(f["types"]), bool(f["required"]), f.get("const"))
            for f in raw_fields
        }
    )


def schema_from_table(table: Mapping[str, Any]) -> BotApiSchema:
    """Build the schema object from the generated table (a parsed bot_api_schema.json)."""
    methods = {
        name: Method(name, _params(m["fields"]), tuple(m["returns"]))
        for name, m in table["methods"].items()
    }
    types = {
        name: TypeDef(name, _params(t["fields"]), tuple(t.get("subtypes", ())))
        for name, t in table["types"].items()
    }
    return BotApiSchema(str(table["version"]), MappingProxyType(methods), MappingProxyType(types))


@functools.cache
def load_schema() -> BotApiSchema:
    """The checked-in table, parsed once per process."""
    text = resources.files("sandbox").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return schema_from_table(json.loads(text))


def result_type_fields(type_name: str) -> Mapping[str, Param]:
    """Fields of a (non-union) schema type; empty for unknown types and unions."""
    typedef = load_schema().types.get(type_name)
    return typedef.fields if typedef is not None else MappingProxyType({})


# --------------------------------------------------------------------------- errors

# Telegram's own wording for a missing parameter, where it is not the generic
# 'parameter "x" is required'. Keyed by (lower-case method name or "*", parameter name).
MISSING_PARAM_WORDING: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("*", "chat_id"): "chat_id is empty",
        ("sendmessage", "text"): "message text is empty",
        ("editmessagetext", "text"): "message text is empty",
        ("*", "message_id"): "message identifier is not specified",
        ("*", "inline_message_id"): "message identifier is not specified",
        # The real server passes the id on as 0; the QUERY_ID_INVALID that comes back is
        # rewritten by telegram-bot-api into this sentence before it reaches the client.
        ("*", "callback_query_id"): (
            "query is too old and response timeout expired or query ID is invalid"
        ),
        ("*", "user_id"): "invalid user_id specified",
    }
)

# Names used in "can't parse <label> JSON object"; by default the parameter name with spaces.
_JSON_LABELS: Mapping[str, str] = MappingProxyType(
    {"reply_markup": "reply keyboard markup", "media": "input media"}
)

# Parameters holding a chat: an unusable value means the chat cannot exist.
_CHAT_PARAMS = frozenset({"chat_id", "from_chat_id"})

_SCALARS = frozenset({"Integer", "Float", "Boolean", "String", "InputFile"})
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BOOL_WORDS: Mapping[str, bool] = MappingProxyType(
    {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}
)


def missing_param_error(method_name: str, param_name: str) -> BotAPIError:
    """The 400 for a missing (or empty) parameter, worded as Telegram words it.

    Exported so the server can use it for parameters the schema marks optional but a
    particular call needs (editMessageText without text and without rich_message, ...).
    """
    key = method_name.lower()
    wording = MISSING_PARAM_WORDING.get((key, param_name)) or MISSING_PARAM_WORDING.get(
        ("*", param_name)
    )
    if wording is None:
        method = load_schema().method(method_name)
        param = method.params.get(param_name) if method is not None else None
        if param is not None and "InputFile" in param.types:
            # telegram-bot-api: "There is no document in the request" and so on.
            wording = f"there is no {param_name.replace('_', ' ')} in the request"
        else:
            wording = f'parameter "{param_name}" is required'
    return bad_request(wording)


class _Fail(Exception):
    """A complete error detail (without the "Bad Request: " prefix) found while decoding."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _invalid(name: str) -> _Fail:
    if name in _CHAT_PARAMS:
        return _Fail("chat not found")
    return _Fail(f"invalid {name} specified")


# --------------------------------------------------------------------------- parse_params


def parse_params(method: Method, raw: Mapping[str, Any], *, typed: bool) -> dict[str, Any]:
    """Decode and validate the arguments of one call of `method`.

    `typed=False`: form, multipart or query-string arguments; every value is a str, or an
    UploadedFile for a file part. aiogram sends strings as-is and JSON-encodes numbers,
    booleans, objects and arrays. `typed=True`: an application/json body, values keep their
    JSON types (Telegram flattens those to strings, so a JSON-encoded string is accepted too).

    Unknown parameters are dropped, as Telegram ignores them. Raises BotAPIError(400).
    """
    schema = load_schema()
    out: dict[str, Any] = {}
    for param in method.params.values():
        value = raw.get(param.name)
        if _is_absent(param, value):
            if param.required:
                raise missing_param_error(method.name, param.name)
            continue
        try:
            decoded = _decode_param(schema, param, value, raw, typed=typed)
            # Only "@username" is a valid non-numeric chat reference.
            if (
                param.name in _CHAT_PARAMS
                and isinstance(decoded, str)
                and (not decoded.startswith("@") or len(decoded) < 2)
            ):
                raise _Fail("chat not found")
        except _Fail as exc:
            raise bad_request(exc.detail) from None
        out[param.name] = decoded
    return out


def _is_absent(param: Param, value: Any) -> bool:
    if value is None or (isinstance(value, str) and value == ""):
        return True
    # Telegram reads file parts separately from arguments: a file part under the name of a
    # non-file parameter leaves that argument unset.
    return isinstance(value, UploadedFile) and "InputFile" not in param.types


def _decode_param(
    schema: BotApiSchema, param: Param, value: Any, raw: Mapping[str, Any], *, typed: bool
) -> Any:
    scalars = [t for t in param.types if t in _SCALARS]
    structured = [t for t in param.types if t not in _SCALARS]

    if isinstance(value, UploadedFile):
        return value  # _is_absent already ensured InputFile is among the types
    if isinstance(value, (list, dict)):
        if not typed or not structured:
            raise _invalid(param.name)
        return _check_structured(schema, param.name, structured, value)

    for type_name in scalars:
        ok, decoded = _decode_scalar(param.name, type_name, value, raw)
        if ok:
            return decoded
    if isinstance(value, str) and structured:
        try:
            parsed = json.loads(value)
        except ValueError:
            label = _JSON_LABELS.get(param.name, param.name.replace("_", " "))
            raise _Fail(f"can't parse {label} JSON object") from None
        return _check_structured(schema, param.name, structured, parsed)
    raise _invalid(param.name)


def _decode_scalar(
    name: str, type_name: str, value: Any, raw: Mapping[str, Any]
) -> tuple[bool, Any]:
    """(True, decoded) if `value` is acceptable as the scalar type, else (False, None)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "Integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            return True, int(value)
    elif type_name == "Float":
        if is_number and math.isfinite(value):
            return True, float(value)
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value):
            return True, float(value)
    elif type_name == "Boolean":
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value in _BOOL_WORDS:
            return True, _BOOL_WORDS[value]
    elif type_name == "String":
        if isinstance(value, str):
            return True, value
        if is_number:
            return True, str(value)  # Telegram stringifies JSON numbers given for strings
    elif type_name == "InputFile" and isinstance(value, str):
        if value.startswith("attach://"):
            # aiogram sends the field as "attach://<part>" plus a file part named <part>.
            part = raw.get(value.removeprefix("attach://"))
            if not isinstance(part, UploadedFile):
                # What telegram-bot-api answers when the referenced part is not there.
                raise _Fail(f"there is no {name.replace('_', ' ')} in the request")
            return True, part
        return True, value  # a file_id or an HTTP URL
    return False, None


def _check_structured(schema: BotApiSchema, name: str, type_exprs: list[str], value: Any) -> Any:
    arrays = [t for t in type_exprs if t.startswith(ARRAY_PREFIX)]
    objects = [t for t in type_exprs if not t.startswith(ARRAY_PREFIX)]
    label = _JSON_LABELS.get(name, name.replace("_", " "))

    if isinstance(value, list) and arrays:
        element = arrays[0].removeprefix(ARRAY_PREFIX)
        for item in value:
            problem = _check_value(schema, element, item, deep=True)
            if problem is not None:
                raise _Fail(f"can't parse {element}: {problem}")
        return value
    if isinstance(value, dict) and objects:
        # Prefer the member whose required fields are all there: {"inline_keyboard": ...}
        # is an InlineKeyboardMarkup even if its buttons are wrong.
        ranked = sorted(objects, key=lambda t: not _has_required(schema, t, value))
        problems = [(t, _check_value(schema, t, value, deep=True)) for t in ranked]
        for _, problem in problems:
            if problem is None:
                return value
        first_type, first_problem = problems[0]
        raise _Fail(f"can't parse {first_type}: {first_problem}")
    if objects:
        raise _Fail(f"object expected as {label}")
    raise _Fail(f"expected an Array of {arrays[0].removeprefix(ARRAY_PREFIX)}")


def _has_required(schema: BotApiSchema, type_name: str, value: Mapping[str, Any]) -> bool:
    typedef = schema.types.get(type_name)
    if typedef is None:
        return False
    return all(p.name in value for p in typedef.fields.values() if p.required)


def _scalar_fits(type_name: str, value: Any) -> bool:
    if type_name == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "Boolean":
        return isinstance(value, bool)
    # String; InputFile inside JSON is a file_id, URL or "attach://<part>" string.
    return isinstance(value, str)


def _check_value(schema: BotApiSchema, type_expr: str, value: Any, *, deep: bool) -> str | None:
    """None if an input JSON value fits `type_expr`, else the first problem found.

    Objects are checked one level deep (`deep=True`): their own fields must be present and of
    the right JSON kind, but nested objects are only checked to be objects. Keyboards are the
    exception, since a wrong button is the classic bot bug; their errors raise _Fail directly
    with Telegram's wording.
    """
    if type_expr.startswith(ARRAY_PREFIX):
        if not isinstance(value, list):
            return f"expected an {type_expr}"
        for item in value:
            problem = _check_value(schema, type_expr.removeprefix(ARRAY_PREFIX), item, deep=deep)
            if problem is not None:
                return problem
        return None
    if type_expr in _SCALARS:
        return None if _scalar_fits(type_expr, value) else f"expected {type_expr}"
    typedef = schema.types.get(type_expr)
    if typedef is None:
        return None
    if not isinstance(value, dict):
        return f"{type_expr} must be an Object"
    if typedef.subtypes:
        return _check_union(schema, typedef, value, deep=deep)
    special = _SPECIAL_CHECKS.get(type_expr)
    if special is not None:
        return special(schema, value)
    if not deep:
        return None
    for param in typedef.fields.values():
        item = value.get(param.name)
        if item is None:
            if param.required:
                return f'Can\'t find field "{param.name}"'
            continue
        if param.const is not None and item != param.const:
            return f'Field "{param.name}" must be "{param.const}"'
        if all(_check_value(schema, t, item, deep=False) is not None for t in param.types):
            return f'Field "{param.name}" must be of type {" or ".join(param.types)}'
    return None


def _check_union(
    schema: BotApiSchema, typedef: TypeDef, value: Mapping[str, Any], *, deep: bool
) -> str | None:
    member = _union_member(schema, typedef, value)
    if member is not None:
        return _check_value(schema, member, value, deep=deep)
    problems = [_check_value(schema, t, value, deep=deep) for t in typedef.subtypes]
    if any(p is None for p in problems):
        return None
    return next((p for p in problems if p is not None), f"{typedef.name} expected")


def _union_member(schema: BotApiSchema, typedef: TypeDef, value: Mapping[str, Any]) -> str | None:
    """The subtype selected by a discriminator field ("type", "status", ...), if any."""
    for subtype in typedef.subtypes:
        sub = schema.types.get(subtype)
        if sub is None:
            continue
        for param in sub.fields.values():
            if param.const is not None and value.get(param.name) == param.const:
                return subtype
    return None


# --------------------------------------------------------------------------- keyboards

# Fields of InlineKeyboardButton that decorate it rather than say what it does.
_BUTTON_DECORATIONS = frozenset({"text", "icon_custom_emoji_id", "style"})
MAX_CALLBACK_DATA_BYTES = 64


def _check_inline_keyboard_markup(schema: BotApiSchema, value: Mapping[str, Any]) -> str | None:
    rows = value.get("inline_keyboard")
    if rows is None:
        return 'Can\'t find field "inline_keyboard"'
    if not isinstance(rows, list):
        raise _Fail('Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        if not isinstance(row, list):
            raise _Fail(
                'Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for button in row:
            problem = _inline_button_problem(schema, button)
            if problem is not None:
                raise _Fail(f"can't parse inline keyboard button: {problem}")
    return None


def _inline_button_problem(schema: BotApiSchema, button: Any) -> str | None:
    if not isinstance(button, dict):
        return "InlineKeyboardButton must be an Object"
    text = button.get("text")
    if text is None:
        return 'Can\'t find field "text"'
    if not isinstance(text, str):
        return 'Field "text" must be of type String'
    fields = schema.types["InlineKeyboardButton"].fields
    actions = [
        name for name in fields if name not in _BUTTON_DECORATIONS and button.get(name) is not None
    ]
    if not actions:
        return "Text buttons are unallowed in the inline keyboard"
    if len(actions) > 1:
        # The real server silently picks one; a bot relying on that is almost surely wrong.
        return f"exactly one action field must be set, found {', '.join(actions)}"
    action = actions[0]
    param = fields[action]
    if all(_check_value(schema, t, button[action], deep=False) is not None for t in param.types):
        return f'Field "{action}" must be of type {" or ".join(param.types)}'
    if action == "callback_data":
        size = len(button[action].encode("utf-8"))
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise _Fail("BUTTON_DATA_INVALID")
    if action == "url" and not button[action]:
        raise _Fail("BUTTON_URL_INVALID")
    return None


def _check_reply_keyboard_markup(schema: BotApiSchema, value: Mapping[str, Any]) -> str | None:
    rows = value.get("keyboard")
    if rows is None:
        return 'Can\'t find field "keyboard"'
    if not isinstance(rows, list):
        raise _Fail('Field "keyboard" of the ReplyKeyboardMarkup must be an Array')
    for row in rows:
        if not isinstance(row, list):
            raise _Fail('Field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
        for button in row:
            if isinstance(button, str):
                continue  # Telegram accepts a bare string as a text button
            if not isinstance(button, dict):
                raise _Fail("can't parse keyboard button: KeyboardButton must be an Object")
            if not isinstance(button.get("text"), str):
                raise _Fail('can\'t parse keyboard button: Field "text" must be of type String')
    return None


_SPECIAL_CHECKS = MappingProxyType(
    {
        "InlineKeyboardMarkup": _check_inline_keyboard_markup,
        "ReplyKeyboardMarkup": _check_reply_keyboard_markup,
    }
)


# --------------------------------------------------------------------------- check_object


def check_object(type_name: str, obj: Mapping[str, Any]) -> list[str]:
    """Every way `obj` (something the sandbox returns) deviates from schema type `type_name`.

    Checks recursively: required fields present and not null, no fields the type does not
    have, every value of a right type. Unions pick their member by discriminator. An empty
    list means the object is well formed.
    """
    problems: list[str] = []
    _report(load_schema(), type_name, obj, type_name, problems)
    return problems


def _report(
    schema: BotApiSchema, type_expr: str, value: Any, path: str, problems: list[str]
) -> None:
    if type_expr.startswith(ARRAY_PREFIX):
        if not isinstance(value, list):
            problems.append(f"{path}: expected an array")
            return
        element = type_expr.removeprefix(ARRAY_PREFIX)
        for index, item in enumerate(value):
            _report(schema, element, item, f"{path}[{index}]", problems)
        return
    if type_expr in _SCALARS:
        if not _scalar_fits(type_expr, value):
            problems.append(f"{path}: expected {type_expr}, got {type(value).__name__}")
        return
    typedef = schema.types.get(type_expr)
    if typedef is None:
        problems.append(f"{path}: unknown type {type_expr}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_expr} object, got {type(value).__name__}")
        return
    if typedef.subtypes:
        _report_union(schema, typedef, value, path, problems)
        return
    for param in typedef.fields.values():
        item = value.get(param.name)
        if item is None:
            if param.required:
                problems.append(f"{path}: missing required field {param.name!r}")
            continue
        if param.const is not None and item != param.const:
            problems.append(f"{path}.{param.name}: must be {param.const!r}, got {item!r}")
        _report_alternatives(schema, param.types, item, f"{path}.{param.name}", problems)
    for name in value:
        if name not in typedef.fields:
            problems.append(f"{path}: unknown field {name!r} for {type_expr}")


def _report_alternatives(
    schema: BotApiSchema, types: tuple[str, ...], value: Any, path: str, problems: list[str]
) -> None:
    # Several types ("Integer or String", "InputFile or String"): fine if any one fits.
    attempts: list[list[str]] = []
    for type_expr in types:
        found: list[str] = []
        _report(schema, type_expr, value, path, found)
        if not found:
            return
        attempts.append(found)
    fewest: list[str] = min(attempts, key=len)
    problems.extend(fewest)


def _report_union(
    schema: BotApiSchema, typedef: TypeDef, value: Mapping[str, Any], path: str, problems: list[str]
) -> None:
    member = _union_member(schema, typedef, value)
    if member is not None:
        _report(schema, member, value, f"{path}<{member}>", problems)
        return
    _report_alternatives(schema, typedef.subtypes, value, path, problems)
