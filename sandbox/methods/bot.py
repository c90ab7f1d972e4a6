"""getMe and the bot's command lists (per scope and language)."""

from __future__ import annotations

import json
import re
from typing import Any

from sandbox import objects
from sandbox.access import chat_id_of
from sandbox.errors import bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.state import SandboxState

methods = MethodGroup()

MAX_COMMANDS = 100
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_LANGUAGE = re.compile(r"^([a-z]{2})?$")
_SCOPES_WITH_CHAT = {"chat", "chat_administrators", "chat_member"}
_SCOPES = {"default", "all_private_chats", "all_group_chats", "all_chat_administrators"}


def _scope_key(params: Params) -> tuple[str, str]:
    scope: Any = params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in _SCOPES | _SCOPES_WITH_CHAT:
        raise bad_request("can't parse BotCommandScope: unknown scope type")
    if scope["type"] in _SCOPES_WITH_CHAT:
        chat_id_of(scope.get("chat_id"))
        if scope["type"] == "chat_member" and not isinstance(scope.get("user_id"), int):
            raise bad_request("user not found")
    language = params.get("language_code") or ""
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise bad_request("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language


@methods.add("getMe")
async def get_me(state: SandboxState, params: Params) -> Any:
    return objects.bot_user_full(state.bot)


@methods.add("setMyCommands", required=("commands",))
async def set_my_commands(state: SandboxState, params: Params) -> Any:
    commands = params["commands"]
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise bad_request("too many commands specified")
    cleaned: list[dict[str, str]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND.match(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
            raise bad_request("command description must be non-empty")
        cleaned.append({"command": command, "description": description})
    key = _scope_key(params)
    if cleaned:
        state.world.commands[key] = cleaned
    else:
        state.world.commands.pop(key, None)
    return True


@methods.add("getMyCommands")
async def get_my_commands(state: SandboxState, params: Params) -> Any:
    return list(state.world.commands.get(_scope_key(params), []))


@methods.add("deleteMyCommands")
async def delete_my_commands(state: SandboxState, params: Params) -> Any:
    state.world.commands.pop(_scope_key(params), None)
    return True
