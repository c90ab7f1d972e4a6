"""`libral-gateway sandbox` end to end: starts, answers, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read stdout lines until one contains `marker` (waits on output, not on time)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} in output: {''.join(seen)!r}")


def _get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, object] = json.loads(resp.read())
        return result


def test_sandbox_command_runs_gateway_against_sandbox(tmp_path: Path) -> None:
    bot_api_port, http_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRAL_")}
    env["LIBRAL_HTTP_PORT"] = str(http_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "sandbox", "--bot-api-port", str(bot_api_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _read_until(proc, "Press Ctrl-C", timeout=60)
        assert f"http://127.0.0.1:{bot_api_port}/sandbox/" in banner
        assert f"curl -s http://127.0.0.1:{http_port}/api/v1/communication/health" in banner

        status, health = _get_json(f"http://127.0.0.1:{http_port}/api/v1/communication/health")
        assert status == 200, health
        assert health["telegram"] == {"ok": True, "username": "libral_sandbox_bot"}
        assert health["database"] == {"ok": True}

        user = _post_json(f"http://127.0.0.1:{bot_api_port}/sandbox/users", {"first_name": "Ada"})
        assert isinstance(user["id"], int)
        # The fallback channels' stand-ins run too, each on a port of its own.
        for label in ("SMTP stand-in", "webhook target", "SMS API", "push server"):
            assert label in banner
        mailbox = re.search(r"read what arrived: (http://\S+/mail)", banner)
        assert mailbox is not None, banner
        assert _get_json(mailbox.group(1)) == (200, {"mail": []})
        assert (tmp_path / "var" / "sandbox" / "gateway.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_sandbox_demo_walks_through_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRAL_")}
    env["LIBRAL_HTTP_PORT"] = str(_free_port())
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "sandbox", "--demo", "--bot-api-port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "All delivered" in out
    auth = out.index("── 🔐 Authentication & Security")
    plugin = out.index("── 🔌 Plugin Activity")
    # The sign-in sample sits in the auth topic, escaped text shown literally, hashtags last.
    assert "New sign-in to your account from <Firefox> on Linux." in out[auth:plugin]
    assert "#auth #security #login" in out[auth:plugin]
    assert "#payment #transaction #invoice" in out
    assert '"disk_used": "91%"' in out
    assert "Traceback" not in result.stderr
