"""Encryption of message content at rest while it waits in the outbox.

AES-256-GCM with a random nonce per message and the message id as associated data, so a
ciphertext copied onto another row does not decrypt. The key comes from LIBRAL_CONTENT_KEY
(shared by every process of a scale-out deployment) or, for a single box, from a key file
created once with owner-only permissions.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_VERSION = b"\x01"  # leading byte so the scheme can change without guessing


class ContentKeyError(ValueError):
    """The configured key is unusable (the message names the problem, never the key)."""


class ContentDecryptError(Exception):
    """Stored content does not decrypt with this key (wrong key or tampered row)."""


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ContentKeyError("must be 32 bytes, URL-safe base64 encoded") from None
    if len(key) != 32:
        raise ContentKeyError("must be 32 bytes, URL-safe base64 encoded")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode().rstrip("=")


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it (0600) on first start."""
    if path.exists():
        return decode_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(new_key_text() + "\n")
    return decode_key(path.read_text())


class ContentCipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, message_id: str, payload: dict[str, Any]) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return _VERSION + nonce + self._aead.encrypt(nonce, plain, message_id.encode())

    def open(self, message_id: str, blob: bytes) -> dict[str, Any]:
        if not blob.startswith(_VERSION) or len(blob) < 1 + _NONCE_BYTES + 16:
            raise ContentDecryptError("unknown content format")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, message_id.encode())
        except InvalidTag:
            raise ContentDecryptError("content does not decrypt with this key") from None
        result: dict[str, Any] = json.loads(plain)
        return result
