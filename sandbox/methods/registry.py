"""How Bot API method handlers are declared: name, required parameters, flood accounting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.state import SandboxState

Params = dict[str, Any]
Handler = Callable[[SandboxState, Params], Awaitable[Any]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    required: frozenset[str]
    handler: Handler
    counts_as_send: bool
    """True if a successful call sends a message into `chat_id` (subject to flood control)."""


class MethodGroup:
    """The methods of one area (messages, topics...), registered with `@group.add(...)`."""

    def __init__(self) -> None:
        self.specs: list[MethodSpec] = []

    def add(
        self, name: str, *, required: Iterable[str] = (), counts_as_send: bool = False
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.specs.append(MethodSpec(name, frozenset(required), handler, counts_as_send))
            return handler

        return register


def method_table(*groups: MethodGroup) -> Mapping[str, MethodSpec]:
    """Implemented methods keyed by lower-cased name (Bot API method names ignore case)."""
    table: dict[str, MethodSpec] = {}
    for group in groups:
        for spec in group.specs:
            key = spec.name.lower()
            if key in table:
                raise ValueError(f"{spec.name} is implemented twice")
            table[key] = spec
    return table
