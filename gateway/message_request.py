"""The `POST /send` body (DESIGN.md's MessageRequest/MessageContent), validated with pydantic.

Validation errors name the field (`content.text`, `retention_seconds`) so a caller can fix the
request without guessing; unknown fields are refused so typos do not silently do nothing.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from gateway.outbox_payload import CONTENT_KINDS, ContentKind
from storage.enums import Category, Channel, Priority

MAX_TEXT_BYTES = 64 * 1024
DEFAULT_RETENTION_SECONDS = 86_400
MAX_RETENTION_SECONDS = 30 * 86_400
MAX_SELF_DESTRUCT_SECONDS = 48 * 3600
MAX_JSON_DEPTH = 32


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


TOPIC_LABEL = "telegram.topic_id"
CATEGORY_LABEL = "category"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class MessageContent(_Strict):
    text: str | None = None
    markdown: str | None = None
    html: str | None = None
    json_data: Any = None
    encrypted_content: str | None = None
    # None: the recipient's default (/prefs → Privacy).
    ephemeral: StrictBool | None = None
    self_destruct_seconds: StrictInt | None = None
    disable_preview: StrictBool = False

    @model_validator(mode="after")
    def _one_kind(self) -> MessageContent:
        given = [k for k in CONTENT_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"exactly one of text, markdown, html, json_data is required (found {found})"
            )
        value = getattr(self, given[0])
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(f"{given[0]} is empty")
            try:
                size = len(value.encode())
            except UnicodeEncodeError:
                raise ValueError(f"{given[0]} holds text that is not valid Unicode") from None
            if size > MAX_TEXT_BYTES:
                raise ValueError(f"{given[0]} is longer than 64 KiB")
        else:
            # Structured data gets the same budget as text, measured as the JSON it arrived as;
            # NaN/Infinity are not JSON and could not be rendered later.
            try:
                encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise ValueError("json_data holds text that is not valid Unicode") from None
            except ValueError:
                raise ValueError("json_data must not contain NaN or Infinity") from None
            if len(encoded) > MAX_TEXT_BYTES:
                raise ValueError("json_data is longer than 64 KiB")
            if _depth(value) > MAX_JSON_DEPTH:
                # Pretty-printed, deep nesting multiplies: a few KiB would become hundreds of
                # Telegram messages.
                raise ValueError(f"json_data is nested deeper than {MAX_JSON_DEPTH} levels")
        # Later features; refusing them beats accepting a promise the gateway does not keep.
        if self.encrypted_content is not None:
            raise ValueError("encrypted_content is not supported yet")
        return self

    @field_validator("self_destruct_seconds")
    @classmethod
    def _deletable_in_time(cls, value: int | None) -> int | None:
        if value is None:
            return None
        if value < 1:
            raise ValueError("must be at least 1 second")
        if value > MAX_SELF_DESTRUCT_SECONDS:
            raise ValueError(
                f"must be at most {MAX_SELF_DESTRUCT_SECONDS} (48 hours): Telegram lets a bot "
                "delete its messages only within 48 hours of sending them"
            )
        return value

    @property
    def kind(self) -> ContentKind:
        return next(k for k in CONTENT_KINDS if getattr(self, k) is not None)

    @property
    def value(self) -> Any:
        return getattr(self, self.kind)


class MessageRequest(_Strict):
    recipient: str | None = None
    category: Category | None = None
    priority: Priority = Priority.NORMAL
    content: MessageContent
    hashtags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=30)] = []
    context_labels: dict[str, str | int] = {}
    channels: list[Channel] | None = None
    # None: the recipient's default (/retention), else DEFAULT_RETENTION_SECONDS.
    retention_seconds: Annotated[StrictInt, Field(ge=1, le=MAX_RETENTION_SECONDS)] | None = None
    gdpr_compliant: StrictBool = True
    personal_data_included: StrictBool = False
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None

    @model_validator(mode="after")
    def _labels(self) -> MessageRequest:
        label = self.context_labels.get(CATEGORY_LABEL)
        if label is not None and str(label) not in {c.value for c in Category}:
            raise ValueError(
                "context_labels.category must be one of " + ", ".join(c.value for c in Category)
            )
        topic = self.context_labels.get(TOPIC_LABEL)
        if topic is not None and not re.fullmatch(r"-?[0-9]{1,18}", str(topic)):
            raise ValueError("context_labels.telegram.topic_id must be an integer thread id")
        if self.channels is not None and not self.channels:
            raise ValueError("channels: leave it out, or name at least one channel")
        return self

    def resolved_category(self) -> Category:
        if self.category is not None:
            return self.category
        label = self.context_labels.get(CATEGORY_LABEL)
        return Category(str(label)) if label is not None else Category.GENERAL

    def topic_thread_id(self) -> int | None:
        topic = self.context_labels.get(TOPIC_LABEL)
        return int(topic) if topic is not None else None
