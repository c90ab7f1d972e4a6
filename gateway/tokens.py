"""Personal API tokens: `lgp_` + 43 URL-safe characters (256 bits); only a hash is stored.

The token carries 256 random bits, so a plain SHA-256 is enough to make a leaked database
useless for authentication; a slow password hash would only cost latency on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PERSONAL_PREFIX = "lgp_"
DISPLAY_PREFIX_LEN = 12  # "lgp_" + 8 characters: enough to tell tokens apart, useless to guess


@dataclass(frozen=True)
class NewToken:
    secret: str  # shown once to its owner, never stored or logged
    token_hash: str
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_personal_token() -> NewToken:
    secret = PERSONAL_PREFIX + secrets.token_urlsafe(32)
    return NewToken(
        secret=secret, token_hash=hash_token(secret), prefix=secret[:DISPLAY_PREFIX_LEN]
    )


def looks_like_token(value: str) -> bool:
    return value.startswith(PERSONAL_PREFIX) and 36 <= len(value) <= 200


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
