"""sendDocument as a multipart upload, getFile and the /file/ download."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from sandbox.client import SandboxClient
from sandbox.state import DEFAULT_BOT_TOKEN
from tests.sandbox.conftest import Scene, raw_call

PAYLOAD = b"id,amount\n1,9.99\n" * 100


async def test_upload_get_file_and_download(
    bot: Bot, control: SandboxClient, scene: Scene, http: aiohttp.ClientSession, base_url: str
) -> None:
    topic = await bot.create_forum_topic(scene.group_id, "Exports")
    sent = await bot.send_document(
        scene.group_id,
        BufferedInputFile(PAYLOAD, filename="report.csv"),
        caption="<i>monthly</i> report",
        parse_mode="HTML",
        message_thread_id=topic.message_thread_id,
    )
    document = sent.document
    assert document is not None
    assert document.file_name == "report.csv"
    assert document.mime_type == "text/csv"
    assert document.file_size == len(PAYLOAD)
    assert document.file_unique_id
    assert sent.caption == "monthly report"
    assert sent.message_thread_id == topic.message_thread_id

    file = await bot.get_file(document.file_id)
    assert file.file_path is not None
    assert file.file_size == len(PAYLOAD)
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.read() == PAYLOAD

    url = f"{base_url}/file/bot{DEFAULT_BOT_TOKEN}/{file.file_path}"
    async with http.get(url) as response:
        assert response.status == 200
        assert await response.read() == PAYLOAD
    async with http.get(url.replace(DEFAULT_BOT_TOKEN, "1:" + "x" * 35)) as response:
        assert response.status == 401

    stored = (await control.get_chat(scene.group_id)).message(sent.message_id)
    assert stored.document is not None
    assert stored.document["file_id"] == document.file_id

    again = await bot.send_document(scene.user_id, document.file_id)
    assert again.document is not None
    assert again.document.file_id == document.file_id


async def test_document_posted_directly_and_missing_attachment(
    http: aiohttp.ClientSession, base_url: str, scene: Scene
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(scene.user_id))
    form.add_field("document", b"direct", filename="d.txt", content_type="text/plain")
    status, body = await raw_call(http, base_url, "sendDocument", data=form)
    assert status == 200, body
    assert body["result"]["document"]["file_size"] == len(b"direct")
    form = aiohttp.FormData()
    form.add_field("chat_id", str(scene.user_id))
    form.add_field("document", "attach://missing")
    form.add_field("other", b"x", filename="x.bin")
    status, body = await raw_call(http, base_url, "sendDocument", data=form)
    assert status == 400
    assert body["description"] == "Bad Request: there is no document in the request"


async def test_bad_file_ids(bot: Bot, scene: Scene) -> None:
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(scene.user_id, "not-a-file-id")
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("not-a-file-id")
