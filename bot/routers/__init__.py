"""One Router per feature; bot.dispatcher includes them all."""

from __future__ import annotations

from aiogram import Router

from bot.routers import membership, quiet, setup, start, status, tokens


def feature_routers() -> list[Router]:
    return [module.create_router() for module in (start, setup, membership, tokens, status, quiet)]
