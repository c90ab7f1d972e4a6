"""The control API's JSON views of sandbox state (what tests and the CLI inspect)."""

from __future__ import annotations

from typing import Any

from sandbox import objects
from sandbox.state import SandboxState
from sandbox.world import Chat, Message


def _message(state: SandboxState, m: Message) -> dict[str, Any]:
    sender = state.world.user(m.from_id)
    stored = state.world.files.get(m.document_file_id or "")
    return {
        "message_id": m.message_id,
        "from": objects.user(sender) if sender else {"id": m.from_id},
        "text": m.text,
        "entities": m.entities,
        "parse_mode": m.parse_mode,
        "caption": m.caption,
        "caption_entities": m.caption_entities,
        "message_thread_id": m.message_thread_id,
        "is_topic_message": m.is_topic_message,
        "reply_to_message_id": m.reply_to_message_id,
        "reply_markup": m.reply_markup,
        "disable_notification": m.disable_notification,
        "protect_content": m.protect_content,
        "link_preview_options": m.link_preview_options,
        "document": objects.document(stored) if stored else None,
        "service": m.extra or None,
        "date": m.date,
        "edited_at": m.edit_date,
        "deleted_at": m.deleted_at,
    }


def chat_view(state: SandboxState, chat: Chat) -> dict[str, Any]:
    world = state.world
    return {
        "id": chat.id,
        "type": chat.type,
        "title": chat.title,
        "is_forum": chat.is_forum,
        "version": state.changes.version,
        "members": [
            {
                "user_id": m.user_id,
                "status": m.status,
                "rights": m.rights,
                "user": objects.user(u) if (u := world.user(m.user_id)) else None,
            }
            for m in chat.members.values()
        ],
        "topics": [
            {
                "message_thread_id": t.thread_id,
                "name": t.name,
                "icon_color": t.icon_color,
                "icon_custom_emoji_id": t.icon_custom_emoji_id,
                "created_by": t.created_by,
                "deleted_at": t.deleted_at,
            }
            for t in chat.topics.values()
        ],
        "messages": [_message(state, m) for m in chat.messages.values()],
        "callback_queries": [
            {
                "id": q.id,
                "from_id": q.from_id,
                "message_id": q.message_id,
                "data": q.data,
                "answered": q.answered_at is not None,
                "answer": q.answer,
            }
            for q in world.callbacks.values()
            if q.chat_id == chat.id
        ],
    }
