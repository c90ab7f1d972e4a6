"""getChat, getChatMember, getChatAdministrators."""

from __future__ import annotations

from typing import Any

from sandbox import objects
from sandbox.access import as_int, bot_chat
from sandbox.errors import BotAPIError, bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.state import SandboxState
from sandbox.world import Chat

methods = MethodGroup()


def _known_chat(state: SandboxState, chat_id: Any) -> Chat:
    try:
        return bot_chat(state, chat_id)
    except BotAPIError as error:
        if error.error_code == 403 and "initiate" in error.description:
            raise bad_request("chat not found") from None
        raise


@methods.add("getChat", required=("chat_id",))
async def get_chat(state: SandboxState, params: Params) -> Any:
    return objects.chat_full_info(state.world, _known_chat(state, params["chat_id"]))


@methods.add("getChatMember", required=("chat_id", "user_id"))
async def get_chat_member(state: SandboxState, params: Params) -> Any:
    chat = _known_chat(state, params["chat_id"])
    user_id = as_int(params["user_id"], "user_id")
    if state.world.user(user_id) is None:
        raise bad_request("user not found")
    return objects.chat_member(state.world, chat.member(user_id))


@methods.add("getChatAdministrators", required=("chat_id",))
async def get_chat_administrators(state: SandboxState, params: Params) -> Any:
    chat = _known_chat(state, params["chat_id"])
    if chat.is_private:
        raise bad_request("there are no administrators in the private chat")
    admins = sorted(
        (m for m in chat.members.values() if m.is_admin),
        key=lambda m: (m.status != "creator", m.user_id),
    )
    return [objects.chat_member(state.world, m) for m in admins]
