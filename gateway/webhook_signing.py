"""Standard Webhooks 1.0.0 symmetric signatures (HMAC-SHA256, `v1`), pure and stdlib-only.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature header is a
space-separated list of `v1,<base64 HMAC-SHA256>` (several during a secret rotation). Secrets
are shown to people as `whsec_` + base64 of 24 to 64 random bytes.

`sign`/`headers` are what the webhook channel sends; `verify` is what a receiver does (our
sandbox receiver and tests use it). Nothing here logs, and no error message carries a secret,
a signature or the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 (the spec's prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds either side of now, as the reference implementations use

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# The id goes into a header and into the signed content, where a "." would make
# `id.timestamp.body` ambiguous (the spec forbids it).
_VALID_ID = re.compile(r"[!-\-/-~]{1,256}")  # printable ASCII but "." (no spaces)
_DIGITS = re.compile(r"[0-9]{1,12}")


class SignatureError(ValueError):
    """A webhook did not verify; the message says why (never a secret or a signature)."""


def new_secret(nbytes: int = DEFAULT_SECRET_BYTES) -> str:
    """A fresh signing secret: `whsec_` + base64 of `nbytes` (24..64) random bytes."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes,"
            f" not {nbytes}"
        )
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret; ValueError if the secret is malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"a webhook secret is {SECRET_PREFIX!r} followed by standard base64 (A-Z a-z 0-9 + /,"
            " padded with =)"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes,"
            f" this one {len(key)}"
        )
    return key


def _check_id(msg_id: str) -> None:
    if not _VALID_ID.fullmatch(msg_id):
        raise ValueError(
            "a webhook id is 1 to 256 printable ASCII characters, without '.' or spaces"
        )


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

    `timestamp` is the attempt's Unix time in whole seconds; `body` the exact bytes sent.
    """
    _check_id(msg_id)
    if timestamp < 0:
        raise ValueError("a webhook timestamp is a non-negative Unix time in seconds")
    digest = _signature(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The request headers of one signed JSON webhook attempt."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def _unix(now: datetime | float) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        return now.timestamp()
    return float(now)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check a received webhook; raise SignatureError (a ValueError) saying why it fails.

    `headers` are looked up case-insensitively. The timestamp must be within `tolerance`
    seconds of `now` (an aware datetime or Unix seconds), either way; any one of the
    space-separated `v1` signatures may match (compared in constant time). ValueError if the
    secret itself is malformed.
    """
    key = secret_key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER)
    signatures = lowered.get(SIGNATURE_HEADER)
    if not msg_id or not stamp or not signatures:
        raise SignatureError(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    if not _VALID_ID.fullmatch(msg_id):
        raise SignatureError(f"malformed {ID_HEADER} header")
    if not _DIGITS.fullmatch(stamp):
        raise SignatureError(f"malformed {TIMESTAMP_HEADER} header")
    timestamp = int(stamp)
    current = _unix(now)
    if timestamp < current - tolerance:
        raise SignatureError("timestamp too old")
    if timestamp > current + tolerance:
        raise SignatureError("timestamp too new")

    expected = _signature(key, msg_id, timestamp, body)
    matched = False
    for candidate in signatures.split(" "):
        version, sep, encoded = candidate.partition(",")
        if not sep or version != SIGNATURE_VERSION:
            continue  # empty (double space), or another scheme such as v1a
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # No early exit: every candidate is compared, each in constant time.
        matched = hmac.compare_digest(expected, given) or matched
    if not matched:
        raise SignatureError("no matching signature")
