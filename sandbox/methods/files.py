"""sendDocument (multipart upload or a known file_id) and getFile."""

from __future__ import annotations

import mimetypes
from typing import Any

from sandbox import objects
from sandbox.errors import BotAPIError, bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.methods.sending import add_bot_message, target_of
from sandbox.methods.text import formatted_caption
from sandbox.schema import UploadedFile
from sandbox.state import SandboxState
from sandbox.world import StoredFile

methods = MethodGroup()

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def _document(state: SandboxState, value: Any) -> StoredFile:
    if isinstance(value, UploadedFile):
        if not value.data:
            raise bad_request("file must be non-empty")
        if len(value.data) > MAX_UPLOAD_BYTES:
            raise BotAPIError(413, "Request Entity Too Large")
        name = value.filename or "document"
        guessed, _ = mimetypes.guess_type(name)
        mime = guessed or value.content_type or "application/octet-stream"
        return state.world.add_file(name, mime, value.data)
    if isinstance(value, str):
        known = state.world.files.get(value)
        if known is not None:
            return known
        if value.startswith(("http://", "https://")):
            raise bad_request("failed to get HTTP URL content")
    raise bad_request("wrong file identifier/HTTP URL specified")


@methods.add("sendDocument", required=("chat_id", "document"), counts_as_send=True)
async def send_document(state: SandboxState, params: Params) -> Any:
    target = target_of(state, params)
    caption, caption_entities = formatted_caption(
        params.get("caption"), params.get("parse_mode"), params.get("caption_entities")
    )
    stored = _document(state, params["document"])
    message = add_bot_message(
        state,
        target,
        params,
        caption=caption,
        caption_entities=caption_entities,
        parse_mode=params.get("parse_mode"),
        document_file_id=stored.file_id,
    )
    return objects.message(state.world, target.chat, message)


@methods.add("getFile", required=("file_id",))
async def get_file(state: SandboxState, params: Params) -> Any:
    stored = state.world.files.get(str(params["file_id"]))
    if stored is None:
        raise bad_request("invalid file_id")
    return objects.file(stored)
