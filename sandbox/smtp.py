"""A local SMTP server (aiosmtpd) standing in for the deployment's mail relay.

Tests and `libral-gateway sandbox` point the email channel at it; it keeps what it received in
`messages` and answers like a real server for a few recipient names, so the channel's error
handling runs against real SMTP replies:

- local part starting with `bounce`: RCPT gets `550 5.1.1 mailbox unavailable` (a bounce);
- `tempfail`: RCPT gets `451 4.3.0 try again later`;
- `spam`: DATA gets `554 5.7.1 message refused as spam` (a policy refusal of the message);
- `full`: DATA gets `552 5.2.2 mailbox full`.

With `username`/`password` it offers AUTH PLAIN and LOGIN over the plain connection (there is
no TLS here) and refuses MAIL before a successful AUTH.

It runs in the current event loop (`loop.create_server`, not aiosmtpd's threaded Controller),
so it lives inside a pytest-asyncio test or the sandbox's loop. It logs counts only, never an
address or a body, and quiets aiosmtpd's own `mail.log` (which logs addresses at INFO).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import secrets
import weakref
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("sandbox.smtp")

HOSTNAME = "smtp.sandbox.invalid"

RCPT_RULES: tuple[tuple[str, str], ...] = (
    ("bounce", "550 5.1.1 mailbox unavailable"),
    ("tempfail", "451 4.3.0 try again later"),
)
DATA_RULES: tuple[tuple[str, str], ...] = (
    ("spam", "554 5.7.1 message refused as spam"),
    ("full", "552 5.2.2 mailbox full"),
)


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str  # the envelope sender (MAIL FROM)
    recipients: tuple[str, ...]  # the envelope recipients (RCPT TO) that were accepted
    message: EmailMessage  # parsed with email.policy.default
    raw: bytes  # as received after DATA (CRLF line endings, dot-stuffing removed)


def _rule(rules: tuple[tuple[str, str], ...], address: str) -> str | None:
    local = address.rpartition("@")[0].lower()
    for prefix, reply in rules:
        if local.startswith(prefix):
            return reply
    return None


class _Handler:
    """aiosmtpd's handler hooks (its API is untyped: server, session and envelope are Any)."""

    def __init__(self, stand_in: SmtpStandIn) -> None:
        self._stand_in = stand_in

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self._stand_in.requires_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = _rule(RCPT_RULES, address)
        if reply is not None:
            self._stand_in.refused += 1
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            reply = _rule(DATA_RULES, address)
            if reply is not None:
                self._stand_in.refused += 1
                return reply
        raw = bytes(envelope.original_content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        await self._stand_in._received(
            ReceivedEmail(
                mail_from=str(envelope.mail_from),
                recipients=tuple(envelope.rcpt_tos),
                message=parsed,
                raw=raw,
            )
        )
        return "250 2.0.0 OK: queued"


class SmtpStandIn:
    """An SMTP server on localhost that records what it receives."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self._credentials = (
            (username.encode(), password.encode())
            if username is not None and password is not None
            else None
        )
        self.messages: list[ReceivedEmail] = []
        self.refused = 0  # recipients and messages refused by the rules above
        self.host = "127.0.0.1"
        self.port = 0
        self._handler = _Handler(self)
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def requires_auth(self) -> bool:
        return self._credentials is not None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0: a free port, then in `.port`)."""
        if self._server is not None:
            raise RuntimeError("the SMTP stand-in is already running")
        mail_log = logging.getLogger("mail.log")
        if mail_log.level == logging.NOTSET:  # unless someone configured it on purpose
            mail_log.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("SMTP stand-in listening on %s:%d", host, self.port)

    async def stop(self) -> None:
        """Stop listening, drop open connections and wait for their sessions to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        sessions = []
        for protocol in list(self._connections):
            if protocol.transport is not None:
                protocol.transport.close()
            task = getattr(protocol, "_handler_coroutine", None)
            if task is not None and not task.done():
                sessions.append(task)
        await server.wait_closed()
        await asyncio.gather(*sessions, return_exceptions=True)
        log.info("SMTP stand-in stopped after %d messages", len(self.messages))

    async def __aenter__(self) -> SmtpStandIn:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[ReceivedEmail]:
        """The first `count` messages, once that many have arrived; TimeoutError after `within`
        seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return self.messages[:count]

    def clear(self) -> None:
        self.messages.clear()
        self.refused = 0

    def _protocol(self) -> Any:
        protocol = SMTP(
            self._handler,
            hostname=HOSTNAME,
            ident="Libral Gateway sandbox SMTP",
            authenticator=self._authenticate if self._credentials else None,
            # AUTH without TLS: this stand-in only listens locally and has no certificate.
            auth_require_tls=self._credentials is None,
            timeout=60,
        )
        self._connections.add(protocol)
        return protocol

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        if self._credentials is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = self._credentials
        ok = secrets.compare_digest(auth_data.login, login) & secrets.compare_digest(
            auth_data.password, password
        )
        return AuthResult(success=bool(ok), handled=False)

    async def _received(self, received: ReceivedEmail) -> None:
        async with self._changed:
            self.messages.append(received)
            self._changed.notify_all()
        log.debug("SMTP stand-in received message %d", len(self.messages))
