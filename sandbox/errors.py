"""The one exception the sandbox raises to answer a Bot API call with an error envelope."""

from __future__ import annotations

from typing import Any


class BotAPIError(Exception):
    """A Telegram-style failure: becomes `{"ok": false, "error_code", "description", ...}`."""

    def __init__(
        self,
        error_code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> BotAPIError:
    """400 with Telegram's "Bad Request: ..." prefix."""
    return BotAPIError(400, f"Bad Request: {detail}")
