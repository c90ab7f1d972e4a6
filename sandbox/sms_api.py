"""A local stand-in for a Twilio-compatible SMS API (tests and `libral-gateway sandbox`).

Speaks the part of Twilio's REST API the gateway uses:

- `POST /2010-04-01/Accounts/{sid}/Messages.json` (form fields `To`, `From`, `Body`, HTTP basic
  auth with the account sid and auth token) → 201 with a Message resource (`sid` "SM…",
  `status` "queued", `to`, `from`, `body`, `num_segments`, …);
- `GET /2010-04-01/Accounts/{sid}.json` → 200 with the Account resource.

Errors come in Twilio's shape, `{"code", "message", "more_info", "status"}`: 401/20003 for bad
credentials, 404/20404 for another account's path, 400/21604, 21603, 21602 for a missing `To`,
`From`, `Body`, 400/21211 for a `To` that is not E.164, 400/21212 for an invalid `From`,
400/21614 for a number in the `unreachable` set, 400/21610 for one in `unsubscribed`, and
400/21617 for a body over 1600 characters.

What was accepted is recorded (`SmsApiState.messages`); `wait_for_messages` lets a test wait for
it without sleeping. Failures can be scripted: the next N requests answer a given status (503,
429 with Retry-After, ...) or hang until released.

Control API, JSON:
- `GET /sandbox/messages?count=N&timeout=S`: `{"messages": [...]}`, waiting for at least N;
- `DELETE /sandbox/messages`: forget them;
- `POST /sandbox/failures` `{"status", "times", "retry_after", "code", "route", "hang"}`: script
  a failure (route `messages`, `account` or `*`); `DELETE /sandbox/failures`: clear them.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Any, Literal

from aiohttp import web

from sandbox import scripted_failures
from sandbox.scripted_failures import ScriptedStandIn, add_control_routes, failure_from_json

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-sms-auth-token"  # noqa: S105 - a well-known sandbox value
MAX_BODY_LENGTH = 1600

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

Route = Literal["messages", "account", "*"]

# GSM 03.38: characters of the default alphabet (one septet) and of its extension (two).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """How many SMS segments `body` takes: GSM-7 (160, or 153 per part) when every character is
    in the GSM alphabet, else UCS-2 (70, or 67 per part, counting UTF-16 code units)."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body):
        units = sum(2 if ch in _GSM_EXTENSION else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


@dataclass(frozen=True)
class SmsRecord:
    """One accepted message, as the stand-in received it."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    num_segments: int
    date_created: str


@dataclass(kw_only=True)
class ScriptedFailure(scripted_failures.ScriptedFailure):
    """A scripted failure that may be limited to one of the API's routes, answered with
    Twilio's error `message`."""

    message: str = "scripted failure"
    route: Route = "*"

    def matches(self, route: str) -> bool:
        return self.route in ("*", route)


class SandboxSmsError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
        headers=headers,
    )


@dataclass
class SmsApiState(ScriptedStandIn[SmsRecord, ScriptedFailure]):
    """`requests` counts every request to the Twilio API, failed or not."""

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = field(default=DEFAULT_AUTH_TOKEN, repr=False)
    unreachable: set[str] = field(default_factory=set)
    unsubscribed: set[str] = field(default_factory=set)

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        code: int | None = None,
        route: Route = "*",
        hang: bool = False,
    ) -> None:
        """Make the next `times` matching requests fail with `status` (or hang)."""
        self.script(
            ScriptedFailure(
                status=status,
                times=times,
                retry_after=retry_after,
                code=code,
                route=route,
                hang=hang,
            )
        )


SMS_STATE_KEY = web.AppKey("sms_api_state", SmsApiState)


def _state(request: web.Request) -> SmsApiState:
    return request.app[SMS_STATE_KEY]


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(login, password) from an `Authorization: Basic ...` value, or None."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def _authenticate(request: web.Request, state: SmsApiState) -> None:
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    if (
        credentials is None
        or not secrets.compare_digest(credentials[0].encode(), state.account_sid.encode())
        or not secrets.compare_digest(credentials[1].encode(), state.auth_token.encode())
    ):
        raise SandboxSmsError(401, 20003, "Authenticate")
    if request.match_info["sid"] != state.account_sid:
        raise SandboxSmsError(404, 20404, "The requested resource was not found")


async def _scripted(state: SmsApiState, route: Route) -> web.Response | None:
    rule = await state.scripted_failure(route)
    if rule is None:
        return None
    code = rule.code or 20000 + rule.status
    return twilio_error(rule.status, code, rule.message, rule.retry_headers())


def _message_resource(record: SmsRecord) -> dict[str, Any]:
    base = f"/2010-04-01/Accounts/{record.account_sid}/Messages/{record.sid}"
    return {
        "sid": record.sid,
        "account_sid": record.account_sid,
        "api_version": "2010-04-01",
        "to": record.to,
        "from": record.from_,
        "body": record.body,
        "status": "queued",
        "direction": "outbound-api",
        "num_segments": str(record.num_segments),
        "num_media": "0",
        "date_created": record.date_created,
        "date_updated": record.date_created,
        "date_sent": None,
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "messaging_service_sid": None,
        "uri": f"{base}.json",
        "subresource_uris": {"media": f"{base}/Media.json"},
    }


async def create_message(request: web.Request) -> web.Response:
    state = _state(request)
    state.requests += 1
    try:
        _authenticate(request, state)
        if (failure := await _scripted(state, "messages")) is not None:
            return failure
        form = await request.post()
        to, sender, body = (form.get(name) for name in ("To", "From", "Body"))
        if not isinstance(to, str) or not to:
            raise SandboxSmsError(400, 21604, "A 'To' phone number is required.")
        if not isinstance(sender, str) or not sender:
            raise SandboxSmsError(400, 21603, "A 'From' phone number is required.")
        if not isinstance(body, str) or not body:
            raise SandboxSmsError(400, 21602, "Message body is required.")
        if not E164.fullmatch(to):
            raise SandboxSmsError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (E164.fullmatch(sender) or ALPHANUMERIC_SENDER.fullmatch(sender)):
            raise SandboxSmsError(400, 21212, f"The 'From' number {sender} is not valid.")
        if to in state.unreachable:
            raise SandboxSmsError(400, 21614, f"'To' number {to} is not a valid mobile number")
        if to in state.unsubscribed:
            raise SandboxSmsError(400, 21610, "Attempt to send to unsubscribed recipient")
        if len(body) > MAX_BODY_LENGTH:
            raise SandboxSmsError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
    except SandboxSmsError as err:
        return twilio_error(err.status, err.code, err.message)
    record = SmsRecord(
        sid="SM" + secrets.token_hex(16),
        account_sid=state.account_sid,
        to=to,
        from_=sender,
        body=body,
        num_segments=segments(body),
        date_created=formatdate(usegmt=True),
    )
    await state.record(record)
    return web.json_response(_message_resource(record), status=201)


async def fetch_account(request: web.Request) -> web.Response:
    state = _state(request)
    state.requests += 1
    try:
        _authenticate(request, state)
    except SandboxSmsError as err:
        return twilio_error(err.status, err.code, err.message)
    if (failure := await _scripted(state, "account")) is not None:
        return failure
    return web.json_response(
        {
            "sid": state.account_sid,
            "friendly_name": "Libral sandbox",
            "status": "active",
            "type": "Full",
            "uri": f"/2010-04-01/Accounts/{state.account_sid}.json",
        }
    )


# --- control API ---------------------------------------------------------------------------------


def _record_view(record: SmsRecord) -> dict[str, Any]:
    view = asdict(record)
    view["from"] = view.pop("from_")
    return view


def _failure_from_json(data: Any) -> ScriptedFailure:
    """The shared fields, and `route` (`messages`, `account` or `*`), which only Twilio's API
    scripts apart."""
    route = data.get("route", "*")
    if route not in ("messages", "account", "*"):
        raise ValueError(route)
    return failure_from_json(data, ScriptedFailure, route=route)


def create_sms_api_app(
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    unreachable: Iterable[str] = (),
    unsubscribed: Iterable[str] = (),
) -> web.Application:
    """The stand-in for one account; `unreachable`/`unsubscribed` numbers answer 21614/21610."""
    state = SmsApiState(
        account_sid=account_sid,
        auth_token=auth_token,
        unreachable=set(unreachable),
        unsubscribed=set(unsubscribed),
    )
    app = web.Application()
    app[SMS_STATE_KEY] = state
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create_message)
    app.router.add_get("/2010-04-01/Accounts/{sid}.json", fetch_account)
    add_control_routes(
        app,
        state,
        view=_record_view,
        parse_failure=_failure_from_json,
        expected="{status, times, retry_after, code, route, hang}",
    )
    return app


def sms_api_state(app: web.Application) -> SmsApiState:
    """The state behind an app from `create_sms_api_app` (for in-process inspection)."""
    return app[SMS_STATE_KEY]
