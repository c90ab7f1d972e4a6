"""The person's channels besides Telegram, in the private chat: /email (verified by a mailed
code), /webhook (signed; the secret is shown once), /phone (only the person's own contact, shared
with Telegram's request_contact button), /push (an ntfy topic) and /channels (all of them,
masked).

The work is gateway.contact_setup.ContactSetup's, injected as `contact_setup` (None: this
deployment offers no such channels). It commits before a handler replies. Logs carry ids only:
never an address, a number, a URL, a topic, a secret or a code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keyboards, texts
from gateway.contact_setup import CODE_VALIDITY, ContactSetup, ContactSummary, SetupError
from storage.enums import Channel
from storage.models import User

log = logging.getLogger(__name__)

OFF = "off"
CHANNEL_COMMANDS = ("email", "webhook", "phone", "push", "channels")


def _line(summary: ContactSummary) -> str:
    return texts.contact_line(
        summary.channel.value, summary.state.value, summary.reason, summary.shown
    )


async def _ready(
    message: Message, user: User | None, contact_setup: ContactSetup | None
) -> ContactSetup | None:
    """The service if this person may use it now; otherwise tells them why not."""
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return None
    if contact_setup is None:
        await message.answer(texts.CONTACTS_UNAVAILABLE)
        return None
    return contact_setup


async def _show(
    message: Message,
    setup: ContactSetup,
    session: AsyncSession,
    user: User,
    channel: Channel,
    usage: str,
) -> None:
    summary = await setup.describe(session, user.id, channel)
    line = texts.no_contact(channel.value) if summary is None else _line(summary)
    await message.answer(f"{line}\n\n{usage}")


async def _remove(
    message: Message, setup: ContactSetup, session: AsyncSession, user: User, channel: Channel
) -> None:
    existed = await setup.remove(session, user.id, channel)
    await message.answer(texts.contact_removed(channel.value, existed=existed))


def _is_off(args: list[str]) -> bool:
    return [a.lower() for a in args] == [OFF]


async def outside_private(message: Message) -> None:
    await message.answer(texts.CONTACTS_PRIVATE_ONLY)


# --- /email -----------------------------------------------------------------------------------


async def email(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    async def change(setup: ContactSetup, user_id: int, args: list[str]) -> None:
        if args[0].lower() == "verify":
            if len(args) != 2:
                raise SetupError("send the code from the email: /email verify 123456")
            shown = await setup.verify_email(session, user_id, args[1])
            await message.answer(texts.email_verified(shown))
        elif len(args) == 1:
            started = await setup.start_email(session, user_id, args[0])
            if started.already_verified:
                await message.answer(texts.email_already_verified(started.shown))
            else:
                minutes = int(CODE_VALIDITY.total_seconds() // 60)
                await message.answer(texts.email_code_sent(started.shown, minutes))
        else:
            raise SetupError("send one address, e.g. /email you@example.org")

    await _channel_command(
        message, command, session, user, contact_setup, Channel.EMAIL, texts.EMAIL_USAGE, change
    )


# --- /webhook ---------------------------------------------------------------------------------


async def webhook(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    async def change(setup: ContactSetup, user_id: int, args: list[str]) -> None:
        if len(args) == 1 and args[0].lower() == "test":
            await message.answer(await setup.test_webhook(session, user_id))
        elif len(args) == 1:
            secret = await setup.set_webhook(session, user_id, args[0])
            summary = await setup.describe(session, user_id, Channel.WEBHOOK)
            host = summary.shown if summary is not None else "your endpoint"
            # The secret goes to the person once, here; it is never logged.
            await message.answer(texts.webhook_registered(secret, host))
        else:
            raise SetupError("send one URL, e.g. /webhook https://example.org/hooks/libral")

    await _channel_command(
        message, command, session, user, contact_setup, Channel.WEBHOOK, texts.WEBHOOK_USAGE, change
    )


# --- /phone and the shared contact ------------------------------------------------------------


async def phone(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    setup = await _ready(message, user, contact_setup)
    if setup is None or user is None:
        return
    args = (command.args or "").split()
    if _is_off(args):
        await _remove(message, setup, session, user, Channel.SMS)
        return
    if args:
        await message.answer(texts.PHONE_ONLY_BY_BUTTON)
        return
    summary = await setup.describe(session, user.id, Channel.SMS)
    current = "" if summary is None else f"{_line(summary)}\n\n"
    await message.answer(f"{current}{texts.PHONE_ASK}", reply_markup=keyboards.phone_request())


def is_own_contact(message: Message) -> bool:
    """Telegram marks a contact with the user id it belongs to; only the sender's own counts."""
    contact = message.contact
    return (
        contact is not None
        and message.from_user is not None
        and contact.user_id is not None
        and contact.user_id == message.from_user.id
    )


async def shared_contact(
    message: Message,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED, reply_markup=keyboards.remove_reply_keyboard())
        return
    if contact_setup is None:
        await message.answer(
            texts.CONTACTS_UNAVAILABLE, reply_markup=keyboards.remove_reply_keyboard()
        )
        return
    if not is_own_contact(message) or message.contact is None:
        log.info("user %s shared a contact that is not their own: refused", user.id)
        await message.answer(texts.PHONE_NOT_YOURS, reply_markup=keyboards.phone_request())
        return
    try:
        shown = await contact_setup.set_phone(session, user.id, message.contact.phone_number)
    except SetupError as problem:
        await session.rollback()
        await message.answer(
            texts.setup_refused(str(problem), texts.PHONE_USAGE),
            reply_markup=keyboards.remove_reply_keyboard(),
        )
        return
    await message.answer(texts.phone_saved(shown), reply_markup=keyboards.remove_reply_keyboard())


# --- /push ------------------------------------------------------------------------------------


async def push(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    async def change(setup: ContactSetup, user_id: int, args: list[str]) -> None:
        if len(args) <= 2:
            token = args[1] if len(args) == 2 else None
            host = await setup.set_push(session, user_id, args[0], token)
            await message.answer(texts.push_saved(host, token=token is not None))
        else:
            raise SetupError("send the URL and at most a token, e.g. /push https://ntfy.sh/topic")

    await _channel_command(
        message, command, session, user, contact_setup, Channel.PUSH, texts.PUSH_USAGE, change
    )


# --- what /email, /webhook and /push share ----------------------------------------------------


_Change = Callable[[ContactSetup, int, list[str]], Awaitable[None]]
"""What a channel command does with its arguments once `off` is ruled out: `(setup, user id,
args)`; it raises SetupError to refuse."""


async def _channel_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None,
    channel: Channel,
    usage: str,
    change: _Change,
) -> None:
    """The run /email, /webhook and /push share, in one place so the three cannot drift apart:
    the person must be able to use the service; no arguments shows the channel with its usage;
    `off` removes it; anything else goes to `change`. A SetupError from either is rolled back
    and answered with the reason and the channel's usage."""
    setup = await _ready(message, user, contact_setup)
    if setup is None or user is None:
        return
    args = (command.args or "").split()
    if not args:
        await _show(message, setup, session, user, channel, usage)
        return
    try:
        if _is_off(args):
            await _remove(message, setup, session, user, channel)
        else:
            await change(setup, user.id, args)
    except SetupError as problem:
        await session.rollback()
        await message.answer(texts.setup_refused(str(problem), usage))


# --- /channels --------------------------------------------------------------------------------


async def channels(
    message: Message,
    session: AsyncSession,
    user: User | None,
    contact_setup: ContactSetup | None = None,
) -> None:
    setup = await _ready(message, user, contact_setup)
    if setup is None or user is None:
        return
    summaries = await setup.describe_all(session, user.id)
    await message.answer(texts.channel_list([_line(s) for s in summaries]))


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="contacts")
    private = F.chat.type == ChatType.PRIVATE
    router.message.register(
        outside_private, Command(*CHANNEL_COMMANDS), F.chat.type != ChatType.PRIVATE
    )
    router.message.register(email, Command("email"), private)
    router.message.register(webhook, Command("webhook"), private)
    router.message.register(phone, Command("phone"), private)
    router.message.register(push, Command("push"), private)
    router.message.register(channels, Command("channels"), private)
    router.message.register(shared_contact, F.contact, private)
    return router
