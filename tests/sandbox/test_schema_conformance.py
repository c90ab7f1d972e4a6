"""Result objects match the reference Bot API schema; implemented methods match its tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.client import SandboxClient
from sandbox.methods import IMPLEMENTED
from sandbox.objects import ADMIN_RIGHTS_NEWER_THAN_REFERENCE
from sandbox.schema import check_object
from tests.sandbox.conftest import Scene, raw_call

REFERENCE = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "telegram-bot-api-10.1.json"
)


def assert_shape(type_name: str, obj: Any) -> None:
    problems = [
        p
        for p in check_object(type_name, obj)
        if not any(newer in p for newer in ADMIN_RIGHTS_NEWER_THAN_REFERENCE)
    ]
    assert problems == [], f"{type_name}: {problems}"


def assert_message(message: dict[str, Any]) -> None:
    assert_shape("Message", message)
    assert_shape("Chat", message["chat"])
    assert_shape("User", message["from"])
    for key, type_name in (
        ("document", "Document"),
        ("contact", "Contact"),
        ("forum_topic_created", "ForumTopicCreated"),
        ("reply_markup", "InlineKeyboardMarkup"),
    ):
        if key in message:
            assert_shape(type_name, message[key])
    for entity in message.get("entities", []):
        assert_shape("MessageEntity", entity)


class Api:
    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url

    async def __call__(self, method: str, **params: Any) -> Any:
        status, body = await raw_call(self.http, self.base_url, method, json=params)
        assert status == 200, body
        return body["result"]


async def test_results_have_schema_shapes(
    http: aiohttp.ClientSession, base_url: str, control: SandboxClient, scene: Scene
) -> None:
    api = Api(http, base_url)
    assert_shape("User", await api("getMe"))
    keyboard = {"inline_keyboard": [[{"text": "ok", "callback_data": "ok"}]]}
    sent = await api(
        "sendMessage",
        chat_id=scene.user_id,
        text="<b>hi</b>",
        parse_mode="HTML",
        reply_markup=keyboard,
    )
    assert_message(sent)
    assert_message(
        await api(
            "editMessageText",
            chat_id=scene.user_id,
            message_id=sent["message_id"],
            text="edited",
            reply_markup=keyboard,
        )
    )
    topic = await api("createForumTopic", chat_id=scene.group_id, name="Topic")
    assert_shape("ForumTopic", topic)
    in_topic = await api(
        "sendMessage",
        chat_id=scene.group_id,
        text="x",
        message_thread_id=topic["message_thread_id"],
    )
    assert_message(in_topic)
    reply = await api(
        "sendMessage",
        chat_id=scene.group_id,
        text="a reply",
        reply_parameters={"message_id": in_topic["message_id"]},
    )
    assert_message(reply)
    assert reply["reply_to_message"]["message_id"] == in_topic["message_id"]
    # a reply without message_thread_id lands in the replied message's topic
    assert reply["message_thread_id"] == topic["message_thread_id"]
    form = aiohttp.FormData()
    form.add_field("chat_id", str(scene.user_id))
    form.add_field("document", b"abc", filename="a.bin")
    status, body = await raw_call(http, base_url, "sendDocument", data=form)
    assert status == 200, body
    assert_message(body["result"])
    assert_shape("File", await api("getFile", file_id=body["result"]["document"]["file_id"]))
    for chat_id in (scene.group_id, scene.user_id):
        assert_shape("ChatFullInfo", await api("getChat", chat_id=chat_id))
    assert_shape(
        "ChatMember", await api("getChatMember", chat_id=scene.group_id, user_id=scene.user_id)
    )
    for member in await api("getChatAdministrators", chat_id=scene.group_id):
        assert_shape("ChatMember", member)
    assert_shape("WebhookInfo", await api("getWebhookInfo"))
    await api("setMyCommands", commands=[{"command": "start", "description": "Start"}])
    for command in await api("getMyCommands"):
        assert_shape("BotCommand", command)

    await control.press_button(scene.user_id, scene.user_id, sent["message_id"], "ok")
    await control.share_contact(scene.user_id)
    await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="member")
    updates = await api("getUpdates")
    kinds = set()
    for update in updates:
        assert_shape("Update", update)
        kind = next(k for k in update if k != "update_id")
        kinds.add(kind)
        if kind == "message":
            assert_message(update[kind])
        elif kind == "callback_query":
            assert_shape("CallbackQuery", update[kind])
            assert_message(update[kind]["message"])
        elif kind == "my_chat_member":
            assert_shape("ChatMemberUpdated", update[kind])
            assert_shape("ChatMember", update[kind]["old_chat_member"])
            assert_shape("ChatMember", update[kind]["new_chat_member"])
    assert kinds == {"message", "callback_query", "my_chat_member"}


def test_implemented_methods_match_the_reference_schema() -> None:
    if not REFERENCE.exists():
        pytest.skip(f"reference schema not found at {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())["methods"]
    by_lower = {name.lower(): spec for name, spec in reference.items()}
    for key, spec in IMPLEMENTED.items():
        assert key in by_lower, f"{spec.name} is not a Bot API method"
        ref = by_lower[key]
        assert ref["name"] == spec.name
        required = {f["name"] for f in ref.get("fields", []) if f["required"]}
        assert spec.required == required, f"{spec.name}: required parameters differ"
