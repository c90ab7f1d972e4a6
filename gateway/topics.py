"""The category catalogue: each category's forum topic and its hashtags (DESIGN.md contract)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.enums import Category


@dataclass(frozen=True)
class TopicSpec:
    category: Category
    name: str
    hashtags: tuple[str, ...]
    # One of the six colours Telegram allows for topic icons; None for the built-in General.
    icon_color: int | None


TOPICS: dict[Category, TopicSpec] = {
    spec.category: spec
    for spec in (
        TopicSpec(Category.AUTH, "🔐 Authentication & Security", ("#auth", "#security"), 16478047),
        TopicSpec(Category.PLUGIN, "🔌 Plugin Activity", ("#plugin",), 13338331),
        TopicSpec(
            Category.PAYMENT, "💰 Payment & Transactions", ("#payment", "#transaction"), 9367192
        ),
        TopicSpec(Category.COMMUNICATION, "📡 Communication Logs", ("#communication",), 7322096),
        TopicSpec(Category.SYSTEM, "⚙️ System Events", ("#system",), 16766590),
        TopicSpec(Category.GENERAL, "General", ("#general",), None),
    )
}

# Categories that get a topic of their own; `general` uses the group's built-in General topic.
CREATED_TOPICS: tuple[TopicSpec, ...] = tuple(s for s in TOPICS.values() if s.icon_color)
