"""What is sealed into `messages.encrypted_content` while a message waits to be delivered.

Shared by the submission path (which seals it) and the delivery worker (which opens it and
wipes it after delivery). Everything a sender wrote lives here, never in plain columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

ContentKind = Literal["text", "markdown", "html", "json_data"]
CONTENT_KINDS: tuple[ContentKind, ...] = ("text", "markdown", "html", "json_data")


@dataclass(frozen=True)
class OutboxPayload:
    kind: ContentKind
    value: Any  # str for text/markdown/html; any JSON value for json_data
    hashtags: tuple[str, ...] = ()
    # A topic named by context_labels["telegram.topic_id"]; None means the category's topic.
    thread_id: int | None = None
    disable_preview: bool = False
    # Inside the person's quiet hours: delivered without sound (disable_notification).
    silent: bool = False
    # Delete the Telegram copy this long after delivery.
    self_destruct_seconds: int | None = None
    # Carries a "Read, delete" button; deleted unread at Telegram's 48-hour limit.
    ephemeral: bool = False

    @property
    def digestible(self) -> bool:
        """Whether it may go out inside a digest: not if its copy must be deleted on its own."""
        return self.self_destruct_seconds is None and not self.ephemeral

    def size(self) -> int:
        """About how many characters the content holds (a json_data object as Python prints
        it): enough to tell a short message from a digest."""
        return len(str(self.value))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "hashtags": list(self.hashtags),
            "thread_id": self.thread_id,
            "disable_preview": self.disable_preview,
            "silent": self.silent,
            "self_destruct_seconds": self.self_destruct_seconds,
            "ephemeral": self.ephemeral,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxPayload:
        kind = data["kind"]
        if kind not in CONTENT_KINDS:
            raise ValueError(f"unknown content kind {kind!r}")
        thread = data.get("thread_id")
        destruct = data.get("self_destruct_seconds")
        return cls(
            kind=cast("ContentKind", kind),
            value=data["value"],
            hashtags=tuple(str(t) for t in data.get("hashtags", ())),
            thread_id=int(thread) if thread is not None else None,
            disable_preview=bool(data.get("disable_preview", False)),
            silent=bool(data.get("silent", False)),
            self_destruct_seconds=int(destruct) if destruct is not None else None,
            ephemeral=bool(data.get("ephemeral", False)),
        )
