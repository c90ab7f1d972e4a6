"""The control API's contract and its error answers."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot

from sandbox.client import SandboxClient, SandboxControlError
from tests.sandbox.conftest import Scene


async def _post(
    http: aiohttp.ClientSession, base_url: str, path: str, **kwargs: object
) -> tuple[int, dict[str, object]]:
    async with http.post(f"{base_url}/sandbox/{path}", **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_ids_have_telegram_shapes(control: SandboxClient) -> None:
    user = await control.create_user("Grace", username="grace", language_code="en")
    group = await control.create_group("Ops", owner_id=user, is_forum=True)
    assert user > 0
    assert str(group).startswith("-100")
    assert len(str(group)) == 14
    chat = await control.get_chat(group)
    assert chat.is_forum
    assert chat.type == "supergroup"
    owner = chat.member(user)
    assert owner is not None
    assert owner.status == "creator"


async def test_errors_are_json_with_clear_messages(
    http: aiohttp.ClientSession, base_url: str, control: SandboxClient
) -> None:
    status, body = await _post(
        http, base_url, "users", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert "bad JSON" in str(body["error"])
    status, body = await _post(http, base_url, "users", json={})
    assert status == 400
    assert "first_name" in str(body["error"])
    status, body = await _post(http, base_url, "groups", json={"title": "t", "owner_id": "1"})
    assert status == 400
    assert "owner_id" in str(body["error"])
    with pytest.raises(SandboxControlError) as unknown_user:
        await control.send_message(424242, 424242, "hi")
    assert unknown_user.value.status == 404
    assert "unknown user 424242" in unknown_user.value.message
    with pytest.raises(SandboxControlError) as unknown_chat:
        await control.get_chat(-1009999999999)
    assert unknown_chat.value.status == 404
    assert "unknown chat" in unknown_chat.value.message
    with pytest.raises(SandboxControlError) as no_owner:
        await control.create_group("t", owner_id=5)
    assert no_owner.value.status == 404
    async with http.get(f"{base_url}/sandbox/nothing-here") as response:
        assert response.status == 404
        assert "error" in await response.json()


async def test_user_messages_topics_and_contacts(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    with pytest.raises(SandboxControlError, match="unknown topic"):
        await control.send_message(scene.user_id, scene.group_id, "x", message_thread_id=77)
    with pytest.raises(SandboxControlError, match="own private chat"):
        await control.send_message(scene.user_id, scene.user_id + 1, "x")
    seen = await bot.get_updates()
    contact_message = await control.share_contact(scene.user_id)
    updates = await bot.get_updates(offset=seen[-1].update_id + 1)
    message = updates[0].message
    assert message is not None
    assert message.message_id == contact_message
    assert message.contact is not None
    assert message.contact.user_id == scene.user_id
    assert message.contact.phone_number.startswith("+")
    command = await control.send_message(scene.user_id, scene.user_id, "/settings now")
    stored = (await control.get_chat(scene.user_id)).message(command)
    assert stored.entities == [{"type": "bot_command", "offset": 0, "length": 9}]


async def test_reset_forgets_everything(bot: Bot, control: SandboxClient, scene: Scene) -> None:
    await bot.send_message(scene.user_id, "x")
    await control.reset()
    assert await control.get_calls() == []
    with pytest.raises(SandboxControlError):
        await control.get_chat(scene.user_id)
    assert await bot.get_updates() == []
    assert (await bot.get_me()).id == bot.id


async def test_clock_only_moves_forward(control: SandboxClient) -> None:
    now = await control.advance_clock(10)
    assert await control.advance_clock(0) == pytest.approx(now)
    with pytest.raises(SandboxControlError, match="only moves forward"):
        await control.advance_clock(-1)


async def test_flood_and_fault_settings_are_validated(control: SandboxClient) -> None:
    with pytest.raises(SandboxControlError, match="at least 1"):
        await control.set_flood(private_chat_per_second=0)
    with pytest.raises(SandboxControlError, match="error_code"):
        await control.add_fault("getMe", error_code=200, description="fine")
    with pytest.raises(SandboxControlError, match="probability"):
        await control.add_fault("getMe", error_code=500, description="x", probability=2.0)


async def test_calls_after_the_ones_already_seen(
    bot: Bot, control: SandboxClient, scene: Scene, http: aiohttp.ClientSession, base_url: str
) -> None:
    everything = await control.get_calls()
    seen = len(everything)
    await bot.send_message(scene.user_id, "one")
    await bot.send_message(scene.user_id, "two")
    newer = await control.get_calls(after=seen)
    assert [(c.method, c.params["text"]) for c in newer] == [
        ("sendMessage", "one"),
        ("sendMessage", "two"),
    ]
    assert await control.get_calls(after=seen + 2) == []
    assert await control.get_calls(after=seen + 50) == []
    assert await control.get_calls() == [*everything, *newer]
    async with http.get(f"{base_url}/sandbox/calls?after={seen + 1}") as response:
        body = await response.json()
    assert body["total"] == seen + 2
    assert [c["params"]["text"] for c in body["calls"]] == ["two"]
    for bad in ("-1", "two", ""):
        async with http.get(f"{base_url}/sandbox/calls?after={bad}") as response:
            assert response.status == 400, bad
            assert "after" in (await response.json())["error"]
