"""The HTTP surface itself: envelopes, tokens, unknown and unsupported methods, encodings."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramUnauthorizedError

from sandbox.client import SandboxClient
from sandbox.state import DEFAULT_BOT_TOKEN, bot_id_from_token
from tests.sandbox.conftest import Scene, make_bot, raw_call


def test_default_token_is_well_formed() -> None:
    digits, secret = DEFAULT_BOT_TOKEN.split(":")
    assert digits.isdigit()
    assert len(secret) == 35
    assert bot_id_from_token(DEFAULT_BOT_TOKEN) == int(digits)


async def test_unknown_method_is_404(http: aiohttp.ClientSession, base_url: str) -> None:
    status, body = await raw_call(http, base_url, "sendTelepathy", json={})
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_wrong_token_is_401(base_url: str) -> None:
    other = make_bot(base_url, "123456:" + "A" * 35)
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await other.get_me()
    finally:
        await other.session.close()


async def test_schema_method_the_sandbox_lacks_is_an_honest_400(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    status, body = await raw_call(http, base_url, "sendPoll", json={})
    assert status == 400
    assert body["description"] == "Bad Request: method not supported by the sandbox"


async def test_method_names_ignore_case_and_get_works(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    async with http.get(f"{base_url}/bot{DEFAULT_BOT_TOKEN}/GETME") as response:
        body = await response.json()
    assert response.status == 200
    assert body["ok"]
    assert body["result"]["is_bot"]


async def test_json_urlencoded_and_query_string_bodies(
    http: aiohttp.ClientSession, base_url: str, scene: Scene
) -> None:
    chat = scene.user_id
    status, body = await raw_call(
        http, base_url, "sendMessage", json={"chat_id": chat, "text": "j"}
    )
    assert (status, body["result"]["text"]) == (200, "j")
    form = {
        "chat_id": str(chat),
        "text": "f",
        "reply_markup": json.dumps({"inline_keyboard": [[{"text": "go", "callback_data": "go"}]]}),
    }
    status, body = await raw_call(http, base_url, "sendMessage", data=form)
    assert (status, body["result"]["text"]) == (200, "f")
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"
    status, body = await raw_call(
        http, base_url, "sendMessage", params={"chat_id": str(chat), "text": "q"}
    )
    assert (status, body["result"]["text"]) == (200, "q")


async def test_missing_required_parameter_and_bad_json(
    http: aiohttp.ClientSession, base_url: str, scene: Scene
) -> None:
    status, body = await raw_call(http, base_url, "sendMessage", json={"text": "no chat"})
    assert status == 400
    assert body["ok"] is False
    assert body["description"].startswith("Bad Request: ")
    assert "chat_id" in body["description"]
    status, body = await raw_call(
        http,
        base_url,
        "sendMessage",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert body["ok"] is False


async def test_call_log_records_every_call_without_tokens_or_bytes(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    from aiogram.types import BufferedInputFile

    await bot.send_message(scene.user_id, "hello")
    await bot.send_document(scene.user_id, BufferedInputFile(b"12345", filename="a.txt"))
    calls = await control.get_calls()
    assert [c.method for c in calls] == ["sendMessage", "sendDocument"]
    assert calls[0].params["text"] == "hello"
    assert calls[0].status == 200
    assert calls[1].params["document"] == {
        "filename": "a.txt",
        "content_type": "application/octet-stream",
        "size": 5,
    }
    assert DEFAULT_BOT_TOKEN not in json.dumps([c.params for c in calls])
