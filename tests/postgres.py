"""A throwaway PostgreSQL server for the tests, obtained and started by the project itself.

The server programs come from Debian's `postgresql` package: found where Debian puts them
(/usr/lib/postgresql/<version>/bin) or on PATH, and installed with apt-get when missing and we
are root (as on CI). The cluster lives in a temporary directory, listens on 127.0.0.1 on a free
port, trusts local connections (it holds nothing but test data), runs without fsync, and is
removed when the test run ends. PostgreSQL refuses to run as root: as root, the cluster belongs
to the `postgres` system user the package creates (or `nobody`).

By hand: `.venv/bin/python -m tests.postgres` runs one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

SUPERUSER = "libral"
_INSTALL_TIMEOUT = 900  # seconds, for apt-get update + install on a slow mirror
_START_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be obtained or started; the message says why."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path | None:
    """The folder holding `initdb` and `postgres`, newest version first; None if absent."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def install() -> None:
    """Install Debian's PostgreSQL server with apt-get (needs root); raise if that fails."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PostgresUnavailable(
            "PostgreSQL's server programs (initdb, postgres) are not installed and cannot be "
            "installed here (that needs apt-get as root): install Debian's `postgresql` "
            "package, or put a PostgreSQL server's bin folder on PATH"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
    ]
    print("tests: installing PostgreSQL with apt-get ...", file=sys.stderr, flush=True)
    for step in steps:
        try:
            done = subprocess.run(
                step,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresUnavailable(f"`{' '.join(step)}` timed out") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise PostgresUnavailable(f"`{' '.join(step)}` failed:\n{tail}")


def ensure_bindir() -> Path:
    folder = find_bindir()
    if folder is None:
        install()
        folder = find_bindir()
    if folder is None:
        raise PostgresUnavailable("apt-get installed `postgresql`, but no initdb/postgres found")
    return folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process dies, the server gets SIGQUIT (its
    # immediate shutdown) instead of outliving it.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


class PostgresServer:
    """One cluster in a temporary directory; `start()`, then `url(...)`, `create_database(...)`,
    and `stop()` (which removes everything)."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        """`durable`: commits are flushed to disk as in production (for benchmarks); by
        default they are not (test data only: speed is wanted, not durability)."""
        self.bindir = bindir
        self.durable = durable
        self.port = 0
        self._root = Path(tempfile.mkdtemp(prefix="libral-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._admin: asyncpg.Connection | None = None
        if os.geteuid() == 0:
            self._user = _unprivileged_user()
            os.chown(self._root, self._user.pw_uid, self._user.pw_gid)
        self._root.chmod(0o700)

    # -- life cycle --------------------------------------------------------------------------

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that run a server program as the cluster's (unprivileged) owner."""
        options: dict[str, Any] = {"cwd": self._root, "stdin": subprocess.DEVNULL}
        if self._user is not None:
            options |= {
                "user": self._user.pw_uid,
                "group": self._user.pw_gid,
                "extra_groups": [],
                "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            }
        else:
            options["env"] = os.environ | {"LC_ALL": "C"}
        return options

    def start(self) -> None:
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self._data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._as_owner(),
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{done.stdout}{done.stderr}")
        for _ in range(5):  # another process may take the free port before the server does
            self.port = _free_port()
            if self._spawn():
                break
        else:
            raise PostgresUnavailable(f"postgres did not start:\n{self._log_tail()}")
        self._start_admin()

    def _spawn(self) -> bool:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            **(
                {}
                if self.durable
                else {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
            ),
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self._data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **self._as_owner(),
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self._accepts():
                return True
            time.sleep(0.05)
        self._kill()
        raise PostgresUnavailable(f"postgres was not ready in time:\n{self._log_tail()}")

    def _accepts(self) -> bool:
        async def probe() -> None:
            conn = await asyncpg.connect(self._dsn("postgres"), timeout=2)
            await conn.close()

        try:
            asyncio.run(probe())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    def _log_tail(self) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def stop(self) -> None:
        if self._loop is not None:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._call(self._admin.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None
        self._kill()
        shutil.rmtree(self._root, ignore_errors=True)

    # -- administration, on one connection kept by a thread of its own ----------------------

    def _start_admin(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="postgres-admin", daemon=True
        )
        self._thread.start()
        self._admin = self._call(asyncpg.connect(self._dsn("postgres"), timeout=10))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def execute(self, sql: str) -> None:
        """Run administrative SQL (CREATE/DROP DATABASE ...) on the `postgres` database."""
        assert self._admin is not None
        self._call(self._admin.execute(sql))

    def create_database(self, name: str, *, template: str = "template0") -> None:
        assert self._admin is not None
        sql = f'CREATE DATABASE "{_ident(name)}" TEMPLATE "{_ident(template)}"'
        if self._admin.get_server_version().major >= 15:
            # Copying the files is several times faster for these small databases than
            # PostgreSQL 15's default (WAL_LOG), and what older versions always did.
            sql += " STRATEGY FILE_COPY"
        self.execute(sql)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{_ident(name)}" WITH (FORCE)')

    def mark_template(self, name: str) -> None:
        self.execute(f'ALTER DATABASE "{_ident(name)}" WITH IS_TEMPLATE true')

    def _dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL the gateway takes (LIBRAL_DATABASE_URL) for one database."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and no `postgres` or `nobody` user to run as")


def start_server(*, durable: bool = False) -> PostgresServer:
    """Obtain (install if needed) and start a server; raise PostgresUnavailable if impossible."""
    server = PostgresServer(ensure_bindir(), durable=durable)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    server = start_server()
    try:
        server.create_database("libral")
        print(f"LIBRAL_DATABASE_URL={server.url('libral')}  (Ctrl-C stops and removes it)")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
