"""One-click email unsubscribe (RFC 8058): `/api/v1/communication/unsubscribe/{token}`.

Every email carries `List-Unsubscribe: <https://.../unsubscribe/{token}>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`. Mailbox providers then POST to that URL
(body `List-Unsubscribe=One-Click`) without cookies or credentials; so

- `POST` unsubscribes (gateway.contact_setup.ContactSetup.unsubscribe) and answers 200 with a
  tiny HTML page, never a redirect. It needs no auth (the token is the authority: 192 random
  bits, stored only as its SHA-256) and ignores the body, so a plain form POST works too;
- `GET` (and HEAD) only shows a page with a button that POSTs to the same URL: link scanners and
  prefetchers that follow the link do not unsubscribe anyone.

Decision: POST answers the same 200 page whether the token matched an address, had been used
already, or never existed. The endpoint is public, so it must not be an oracle for which tokens
are live; the person who clicked learns what they need ("no more emails for this link").
Malformed tokens get the same answer. Only a database failure differs (503, plain text), so a
provider may try again.

Tokens are capabilities: they are never logged here (and the route's path holds one, so keep
access logs off or masked for it). The page sets no cookies, loads nothing from elsewhere and is
not cached or indexed.

Registration (the composition root): put the ContactSetup under `UNSUBSCRIBE` and the
sessionmaker under gateway.api.keys.SESSIONMAKER, route `ROUTE` to `unsubscribe_page` (GET) and
`unsubscribe_now` (POST) (`add_unsubscribe_routes` does both), and exempt the path from bearer
auth.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.keys import SESSIONMAKER
from gateway.contact_setup import ContactSetup
from gateway.contacts import UNSUBSCRIBE_PATH

log = logging.getLogger(__name__)

UNSUBSCRIBE = web.AppKey("contact_setup", ContactSetup)
ROUTE = f"{UNSUBSCRIBE_PATH}/{{token}}"

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the URL holds the token
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em;"
    "line-height:1.5;color:#222}button{font-size:1em;padding:.5em 1.2em;cursor:pointer}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )


# The form has no action: it POSTs to this very URL, wherever the gateway is reached from.
CONFIRM_PAGE = _page(
    "Unsubscribe from Libral Gateway emails",
    "<p>Press the button to stop the emails Libral Gateway sends to this address. "
    "Nothing changes until you press it.</p>\n"
    '<form method="post">\n'
    '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
    '<button type="submit">Unsubscribe</button>\n'
    "</form>\n"
    "<p>You can add an address again at any time with <code>/email</code> in the bot.</p>",
)
DONE_PAGE = _page(
    "Unsubscribed",
    "<p>No more emails will be sent for this link. Your other channels (Telegram, webhook, "
    "push) are unchanged.</p>\n"
    "<p>To get emails again, add the address in the bot with <code>/email</code>.</p>",
)
UNAVAILABLE_TEXT = "Could not unsubscribe right now; please try again in a few minutes.\n"


def _html(text: str) -> web.Response:
    return web.Response(
        text=text, content_type="text/html", charset="utf-8", headers=_HEADERS, status=200
    )


async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    """GET: the confirmation page with its button; changes nothing."""
    return _html(CONFIRM_PAGE)


async def unsubscribe_now(request: web.Request) -> web.StreamResponse:
    """POST: one-click unsubscribe; 200 and the same page for any token (see the module doc)."""
    token = request.match_info.get("token", "")
    setup = request.app[UNSUBSCRIBE]
    try:
        async with request.app[SESSIONMAKER]() as session:
            matched = await setup.unsubscribe(session, token)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("one-click unsubscribe failed: %s", type(exc).__name__)
        return web.Response(
            text=UNAVAILABLE_TEXT,
            content_type="text/plain",
            charset="utf-8",
            headers={**_HEADERS, "Retry-After": "60"},
            status=503,
        )
    log.info("one-click unsubscribe request (matched: %s)", matched)
    return _html(DONE_PAGE)


def add_unsubscribe_routes(app: web.Application) -> None:
    """GET (and HEAD) `unsubscribe_page`, POST `unsubscribe_now` on `ROUTE`."""
    app.router.add_get(ROUTE, unsubscribe_page)
    app.router.add_post(ROUTE, unsubscribe_now)
