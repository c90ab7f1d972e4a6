"""sendMessage, editMessageText, editMessageReplyMarkup, deleteMessage, deleteMessages."""

from __future__ import annotations

from typing import Any

from sandbox import objects
from sandbox.access import as_int, bot_chat, message_in
from sandbox.errors import bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.methods.sending import add_bot_message, check_reply_markup, target_of
from sandbox.methods.text import formatted_text
from sandbox.state import SandboxState
from sandbox.world import Chat, Message

methods = MethodGroup()

DELETE_WINDOW_SECONDS = 48 * 3600
MAX_DELETE_BATCH = 100
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_UNDELETABLE_SERVICE = ("forum_topic_created", "supergroup_chat_created")


@methods.add("sendMessage", required=("chat_id", "text"), counts_as_send=True)
async def send_message(state: SandboxState, params: Params) -> Any:
    target = target_of(state, params)
    text, entities = formatted_text(
        params["text"], params.get("parse_mode"), params.get("entities")
    )
    preview = params.get("link_preview_options")
    message = add_bot_message(
        state,
        target,
        params,
        text=text,
        entities=entities,
        parse_mode=params.get("parse_mode"),
        link_preview_options=preview if isinstance(preview, dict) else None,
    )
    return objects.message(state.world, target.chat, message)


def _editable(state: SandboxState, params: Params) -> tuple[Chat, Message]:
    if params.get("inline_message_id") is not None:
        raise bad_request("inline messages are not supported by the sandbox")
    if params.get("chat_id") is None or params.get("message_id") is None:
        raise bad_request("message identifier is not specified")
    chat = bot_chat(state, params["chat_id"])
    message = message_in(chat, params["message_id"], "message to edit not found")
    if message.from_id != state.bot.id or message.extra:
        raise bad_request("message can't be edited")
    return chat, message


@methods.add("editMessageText", counts_as_send=True)
async def edit_message_text(state: SandboxState, params: Params) -> Any:
    chat, message = _editable(state, params)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = formatted_text(
        params.get("text") or "", params.get("parse_mode"), params.get("entities")
    )
    markup = check_reply_markup(params.get("reply_markup"))
    if text == message.text and entities == message.entities and markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    preview = params.get("link_preview_options")
    message.text, message.entities = text, entities
    message.parse_mode = params.get("parse_mode")
    message.link_preview_options = preview if isinstance(preview, dict) else None
    message.reply_markup = markup  # editing without reply_markup removes the keyboard
    message.edit_date = state.clock.timestamp()
    return objects.message(state.world, chat, message)


@methods.add("editMessageReplyMarkup", counts_as_send=True)
async def edit_message_reply_markup(state: SandboxState, params: Params) -> Any:
    chat, message = _editable(state, params)
    markup = check_reply_markup(params.get("reply_markup"))
    if markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    message.reply_markup = markup
    message.edit_date = state.clock.timestamp()
    return objects.message(state.world, chat, message)


def _why_not_deletable(state: SandboxState, chat: Chat, message_id: int) -> str | None:
    message = chat.live_message(message_id)
    if message is None:
        return "message to delete not found"
    if any(key in message.extra for key in _UNDELETABLE_SERVICE):
        return "message can't be deleted"
    if state.clock.now() - message.date >= DELETE_WINDOW_SECONDS:
        return "message can't be deleted"
    if (
        not chat.is_private
        and message.from_id != state.bot.id
        and not chat.member(state.bot.id).can("can_delete_messages")
    ):
        return "message can't be deleted"
    return None


def _delete(state: SandboxState, chat: Chat, message_id: int) -> None:
    chat.messages[message_id].deleted_at = state.clock.timestamp()


@methods.add("deleteMessage", required=("chat_id", "message_id"))
async def delete_message(state: SandboxState, params: Params) -> Any:
    chat = bot_chat(state, params["chat_id"])
    message_id = as_int(params["message_id"], "message_id")
    problem = _why_not_deletable(state, chat, message_id)
    if problem is not None:
        raise bad_request(problem)
    _delete(state, chat, message_id)
    return True


@methods.add("deleteMessages", required=("chat_id", "message_ids"))
async def delete_messages(state: SandboxState, params: Params) -> Any:
    chat = bot_chat(state, params["chat_id"])
    ids = params["message_ids"]
    if not isinstance(ids, list) or not ids:
        raise bad_request("message identifiers are not specified")
    if len(ids) > MAX_DELETE_BATCH:
        raise bad_request("too many message identifiers specified")
    for message_id in dict.fromkeys(as_int(i, "message_ids") for i in ids):
        # Like Telegram: the messages that can't be deleted are skipped silently.
        if _why_not_deletable(state, chat, message_id) is None:
            _delete(state, chat, message_id)
    return True
