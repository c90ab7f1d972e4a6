"""One Router per feature; bot.dispatcher includes them all."""

from __future__ import annotations

from aiogram import Router

from bot.routers import (
    contacts,
    ephemeral,
    fallback,
    membership,
    prefs,
    quiet,
    rights,
    sample,
    setup,
    start,
    status,
    tokens,
)


def feature_routers() -> list[Router]:
    features = [
        module.create_router()
        for module in (
            start,
            setup,
            membership,
            tokens,
            status,
            quiet,
            prefs,
            sample,
            ephemeral,
            rights,
            contacts,
        )
    ]
    # The catch-all for callback queries no feature understood must come last, after any
    # router added to the tuple above.
    return [*features, fallback.create_router()]
