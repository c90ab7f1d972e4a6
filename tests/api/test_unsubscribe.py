"""One-click unsubscribe (RFC 8058) over real HTTP: GET shows a button, POST unsubscribes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import contacts as sealing
from gateway.api.errors import error_middleware
from gateway.api.keys import SESSIONMAKER
from gateway.api.unsubscribe import ROUTE, UNSUBSCRIBE, add_unsubscribe_routes
from gateway.channels.webhook import WebhookChannel
from gateway.contact_setup import UNSUBSCRIBED_REASON, ContactSetup
from gateway.contacts import UNSUBSCRIBE_PATH
from gateway.content_cipher import ContentCipher
from storage.engine import create_engine, create_sessionmaker
from storage.enums import Channel, ContactState
from storage.models import Contact, User

Client = TestClient[web.Request, web.Application]
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
async def setup() -> AsyncIterator[ContactSetup]:
    webhooks = WebhookChannel()
    yield ContactSetup(
        ContentCipher(b"u" * 32), None, webhooks, public_url="https://gateway.example.org"
    )
    await webhooks.close()


def make_app(
    setup: ContactSetup, sessionmaker: async_sessionmaker[AsyncSession]
) -> web.Application:
    app = web.Application()
    app[UNSUBSCRIBE] = setup
    app[SESSIONMAKER] = sessionmaker
    add_unsubscribe_routes(app)
    return app


@pytest.fixture
async def client(
    aiohttp_client: object,
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Client:
    client: Client = await aiohttp_client(make_app(setup, sessionmaker))  # type: ignore[operator]
    return client


@pytest.fixture
async def token(sessionmaker: async_sessionmaker[AsyncSession], setup: ContactSetup) -> str:
    """A verified email contact; the token of its List-Unsubscribe link."""
    token, token_hash = sealing.new_unsubscribe_token()
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=77)
        session.add(user)
        await session.flush()
        session.add(
            Contact(
                user_id=user.id,
                channel=Channel.EMAIL,
                sealed=sealing.seal(
                    setup._cipher,
                    user.id,
                    Channel.EMAIL,
                    {"address": "ada@example.org", "unsubscribe": token},
                ),
                state=ContactState.VERIFIED,
                code_attempts=0,
                unsubscribe_hash=token_hash,
            )
        )
    return token


async def email_state(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[ContactState, str | None]:
    """The state of the only contact there is."""
    async with sessionmaker() as session:
        (contact,) = (await session.scalars(select(Contact))).all()
        return contact.state, contact.state_reason


def url(token: str) -> str:
    return f"{UNSUBSCRIBE_PATH}/{token}"


def test_route_is_under_the_api_prefix() -> None:
    assert ROUTE == "/api/v1/communication/unsubscribe/{token}"


async def test_get_shows_a_button_and_changes_nothing(
    client: Client, token: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.get(url(token), allow_redirects=False)
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<form method="post">' in page
    assert 'name="List-Unsubscribe" value="One-Click"' in page
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    head = await client.head(url(token), allow_redirects=False)
    assert head.status == 200
    assert await email_state(sessionmaker) == (ContactState.VERIFIED, None)


async def test_one_click_post_unsubscribes_without_redirect(
    client: Client, token: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # What a mailbox provider sends (RFC 8058 section 3.2): no cookies, no credentials.
    response = await client.post(url(token), data=ONE_CLICK, allow_redirects=False)
    assert response.status == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    done = await response.text()
    assert "Unsubscribed" in done
    assert await email_state(sessionmaker) == (ContactState.DISABLED, UNSUBSCRIBED_REASON)

    # Again (a provider retrying, a second click): the same answer, the same state.
    again = await client.post(url(token), data=ONE_CLICK, allow_redirects=False)
    assert again.status == 200
    assert await again.text() == done
    assert await email_state(sessionmaker) == (ContactState.DISABLED, UNSUBSCRIBED_REASON)


async def test_unknown_tokens_get_the_same_answer(
    client: Client, token: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    real = await client.post(url(token), data=ONE_CLICK)
    expected = await real.text()
    for other in ("A" * 32, "short", "not-a-token-%2E%2E", "x" * 300):
        response = await client.post(url(other), data=ONE_CLICK, allow_redirects=False)
        assert response.status == 200, other
        assert await response.text() == expected
    # An empty body (a browser without the hidden field) is a one-click too.
    response = await client.post(url("B" * 32), allow_redirects=False)
    assert response.status == 200


async def test_the_token_is_not_logged(
    client: Client, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await client.post(url(token), data=ONE_CLICK)
        await client.post(url("C" * 32), data=ONE_CLICK)
    # Ours only: aiohttp's access log (off in `serve`) would print the path.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))
    assert "unsubscribe" in ours
    assert token not in ours
    assert "C" * 32 not in ours
    assert "ada@example.org" not in ours


async def test_an_unexpected_error_logs_the_route_not_the_token(
    aiohttp_client: object,
    setup: ContactSetup,
    sessionmaker: async_sessionmaker[AsyncSession],
    token: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_: object) -> bool:
        raise ValueError("a bug")

    monkeypatch.setattr(setup, "unsubscribe", broken)
    app = make_app(setup, sessionmaker)
    app.middlewares.append(error_middleware)
    client: Client = await aiohttp_client(app)  # type: ignore[operator]
    with caplog.at_level(logging.DEBUG):
        response = await client.post(url(token), data=ONE_CLICK)
    assert response.status >= 500
    # Ours only, traceback included: aiohttp's access log (off in `serve`) prints the path.
    ours = "\n".join(
        logging.Formatter().format(r) for r in caplog.records if r.name.startswith("gateway")
    )
    assert f"unhandled error on POST {ROUTE}" in ours
    assert token not in ours


async def test_database_failure_is_503_in_plain_text(
    aiohttp_client: object, setup: ContactSetup, tmp_path: Path
) -> None:
    # A database without the tables: every query fails.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        client: Client = await aiohttp_client(  # type: ignore[operator]
            make_app(setup, create_sessionmaker(engine))
        )
        response = await client.post(url("D" * 32), data=ONE_CLICK, allow_redirects=False)
        assert response.status == 503
        assert response.content_type == "text/plain"
        assert response.headers["Retry-After"] == "60"
    finally:
        await engine.dispose()
