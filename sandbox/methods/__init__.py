"""The Bot API methods the sandbox implements, by area."""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.methods import bot, callbacks, chats, files, messages, topics, updates
from sandbox.methods.registry import MethodSpec, method_table

IMPLEMENTED: Mapping[str, MethodSpec] = method_table(
    bot.methods,
    updates.methods,
    messages.methods,
    files.methods,
    chats.methods,
    topics.methods,
    callbacks.methods,
)
"""Lower-cased method name -> spec (canonical name, required parameters, handler)."""

__all__ = ["IMPLEMENTED", "MethodSpec"]
