"""getUpdates (long polling) and the webhook settings that exclude it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sandbox.access import as_int
from sandbox.errors import BotAPIError, bad_request
from sandbox.methods.registry import MethodGroup, Params
from sandbox.state import SandboxState
from sandbox.world import Webhook

methods = MethodGroup()

WEBHOOK_PORTS = (80, 88, 443, 8443)
_SECRET_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _allowed_updates(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("can't parse allowed updates")
    return list(value)


@methods.add("getUpdates")
async def get_updates(state: SandboxState, params: Params) -> Any:
    if state.world.webhook is not None:
        raise BotAPIError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = params.get("offset")
    limit = as_int(params.get("limit", 100), "limit")
    timeout = as_int(params.get("timeout", 0), "timeout")
    return await state.updates.get_updates(
        offset=None if offset is None else as_int(offset, "offset"),
        limit=min(max(limit, 1), 100),
        poll_seconds=float(max(timeout, 0)),
        allowed_updates=_allowed_updates(params.get("allowed_updates")),
    )


@methods.add("setWebhook", required=("url",))
async def set_webhook(state: SandboxState, params: Params) -> Any:
    url = params["url"]
    if not isinstance(url, str):
        raise bad_request("bad webhook: invalid URL")
    if params.get("drop_pending_updates"):
        state.updates.drop_all()
    allowed = _allowed_updates(params.get("allowed_updates"))
    if url == "":
        state.world.webhook = None
        return True
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if (parts.port or 443) not in WEBHOOK_PORTS:
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    secret = params.get("secret_token")
    if secret is not None and (
        not isinstance(secret, str) or not 1 <= len(secret) <= 256 or set(secret) - _SECRET_CHARS
    ):
        raise bad_request("bad webhook: secret token contains unallowed characters")
    max_connections = as_int(params.get("max_connections", 40), "max_connections")
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    if allowed is not None:
        state.updates.allowed_updates = allowed
    ip = params.get("ip_address")
    state.world.webhook = Webhook(
        url=url,
        secret_token=secret,
        max_connections=max_connections,
        allowed_updates=allowed,
        ip_address=ip if isinstance(ip, str) else None,
    )
    return True


@methods.add("deleteWebhook")
async def delete_webhook(state: SandboxState, params: Params) -> Any:
    if params.get("drop_pending_updates"):
        state.updates.drop_all()
    state.world.webhook = None
    return True


@methods.add("getWebhookInfo")
async def get_webhook_info(state: SandboxState, params: Params) -> Any:
    hook = state.world.webhook
    info: dict[str, Any] = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": state.updates.pending_count,
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        if hook.ip_address:
            info["ip_address"] = hook.ip_address
        if state.updates.allowed_updates:
            info["allowed_updates"] = list(state.updates.allowed_updates)
    return info
