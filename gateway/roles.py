"""What a `libral-gateway serve` process runs (`--role`). Kept apart from gateway.runtime,
which is slow to import (aiogram), so that the command line can offer the choices at once."""

from __future__ import annotations

from typing import Literal

# "all": bot, HTTP API, delivery worker and scheduled work (one such process per bot token).
# "api": the HTTP API alone, to run more of beside it (see README, Running several processes).
Role = Literal["all", "api"]
ROLES: tuple[Role, ...] = ("all", "api")
