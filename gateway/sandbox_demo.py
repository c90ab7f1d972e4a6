"""`libral-gateway sandbox --demo`: the whole product in one command, as a newcomer would use it.

Acts as a person through the sandbox's control API (start the bot, make a forum group, add the
bot, /setup, /token), sends sample messages through the real HTTP API with the token the bot
handed out, waits until the worker has delivered them, and prints the personal log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TextIO

import aiohttp

from sandbox.client import ChatView, MessageView, SandboxClient

ADMIN_RIGHTS = {
    "can_manage_topics": True,
    "can_delete_messages": True,
    "can_pin_messages": True,
    "can_invite_users": True,
}

SAMPLES: list[dict[str, Any]] = [
    {
        "category": "auth",
        "priority": "high",
        "content": {"text": "New sign-in to your account from <Firefox> on Linux."},
        "hashtags": ["login"],
    },
    {
        "category": "payment",
        "content": {"markdown": "**Payment received:** 12.50 EUR for *invoice 1042*."},
        "hashtags": ["invoice"],
    },
    {
        "category": "system",
        "content": {"json_data": {"host": "nas", "disk_used": "91%", "action": "cleanup"}},
    },
    {"content": {"html": "<b>Hello</b> from the <i>Libral Gateway</i> demo."}},
]

WAIT = 20.0


class DemoError(Exception):
    """A step of the demo did not happen; the message says which."""


def token_from(message: MessageView) -> str | None:
    """The personal token inside a /token reply's <code> entity, if there is one."""
    return next((t for t in message.entity_texts("code") if t.startswith("lgp_")), None)


async def _step(what: str, coro: Any) -> Any:
    try:
        return await coro
    except TimeoutError:
        raise DemoError(f"timed out waiting for: {what}") from None


def transcript(chat: ChatView) -> str:
    lines = [f"Personal log: {chat.title} (chat {chat.id})", ""]
    threads: list[tuple[int | None, str]] = [(None, "General")]
    threads += [(t.message_thread_id, t.name) for t in chat.topics if t.deleted_at is None]
    for thread_id, name in threads:
        shown = [m for m in chat.bot_messages() if m.message_thread_id == thread_id]
        lines.append(f"── {name}" + (f"  (thread {thread_id})" if thread_id else ""))
        if not shown:
            lines.append("   (no messages)")
        for message in shown:
            for text_line in (message.text or "").splitlines() or [""]:
                lines.append(f"   {text_line}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


async def run_demo(bot_api_url: str, api_url: str, out: TextIO) -> None:
    say: Callable[[str], None] = lambda text: print(text, file=out, flush=True)  # noqa: E731
    async with aiohttp.ClientSession() as http:
        world = SandboxClient(bot_api_url, http)
        ada = await world.create_user("Ada", language_code="en")
        say(f"1. A person (Ada, id {ada}) sends /start to the bot.")
        await world.send_message(ada, ada, "/start")
        await _step("the bot's /start reply", world.wait_for_bot_message(ada, within=WAIT))

        group = await world.create_group("Ada's log", owner_id=ada, is_forum=True)
        say(f"2. Ada creates a forum group ({group}) and adds the bot as admin with Manage topics.")
        await world.set_bot_membership(
            group, by_id=ada, status="administrator", rights=ADMIN_RIGHTS
        )
        await _step(
            "the topics and the welcome in General",
            world.wait_for_chat(
                group,
                lambda c: (
                    len(c.topics) >= 5
                    and any(m.message_thread_id is None for m in c.bot_messages())
                ),
                within=WAIT,
            ),
        )
        say("3. Ada sends /setup in the group again: nothing is duplicated.")
        await world.send_message(ada, group, "/setup")
        await _step(
            "the /setup answer",
            world.wait_for_chat(group, lambda c: len(c.bot_messages()) >= 2, within=WAIT),
        )

        say("4. Ada sends /token in private and gets a personal API token.")
        before = len((await world.get_chat(ada)).bot_messages())
        await world.send_message(ada, ada, "/token")
        chat = await _step(
            "the /token reply",
            world.wait_for_chat(ada, lambda c: len(c.bot_messages()) > before, within=WAIT),
        )
        token = token_from(chat.bot_messages()[-1])
        if token is None:
            raise DemoError("the bot's /token reply carries no token")

        say(f"5. A script POSTs {len(SAMPLES)} messages to {api_url}/api/v1/communication/send.")
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for sample in SAMPLES:
            async with http.post(
                f"{api_url}/api/v1/communication/send", json=sample, headers=headers
            ) as resp:
                body = await resp.json()
                if resp.status != 202:
                    raise DemoError(f"/send answered {resp.status}: {body}")
                ids.append(body["message_id"])
        await _step("delivery of every message", _all_delivered(http, api_url, headers, ids))
        say("6. All delivered. Ada's personal log now reads:\n")
        say(transcript(await world.get_chat(group)))


async def _all_delivered(
    http: aiohttp.ClientSession, api_url: str, headers: dict[str, str], ids: list[str]
) -> None:
    pending = set(ids)
    async with asyncio.timeout(WAIT):
        while pending:
            for message_id in sorted(pending):
                async with http.get(
                    f"{api_url}/api/v1/communication/messages/{message_id}", headers=headers
                ) as resp:
                    status = (await resp.json())["status"]
                if status == "delivered":
                    pending.discard(message_id)
                elif status == "failed":
                    raise DemoError(f"message {message_id} failed")
            if pending:
                # The API has no push for delivery status; a short pause between polls.
                await asyncio.sleep(0.1)
