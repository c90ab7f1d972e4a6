"""Shared fixtures: a fresh migrated database per test.

SQLite by default. Tests marked `both_databases` (or whose module sets
`pytestmark = pytest.mark.both_databases`) run twice: on SQLite and on PostgreSQL, a throwaway
server that tests/postgres.py installs if needed and starts once per run, with a new database
for each test. Without a server those runs fail under CI (CI=true) and are skipped elsewhere.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import migrate
from storage.engine import create_engine, create_sessionmaker, is_sqlite
from tests.postgres import PostgresServer, PostgresUnavailable, start_server

BACKENDS = ("sqlite", "postgresql")
_MIGRATED_TEMPLATE = "libral_migrated"


@dataclass
class _Postgres:
    server: PostgresServer | None = None
    error: str | None = None
    template_ready: bool = False
    names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> None:
        if self.server is None and self.error is None:
            try:
                self.server = start_server()
            except PostgresUnavailable as exc:
                self.error = str(exc)


_POSTGRES = pytest.StashKey[_Postgres]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_POSTGRES] = _Postgres()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    node = metafunc.definition
    if (
        "database_url" in metafunc.fixturenames
        and node.get_closest_marker("both_databases") is not None
        and node.get_closest_marker("sqlite_only") is None
    ):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Start (and if need be install) the server before the first test, outside any test's
    # timeout, and only when a selected test runs on PostgreSQL.
    if session.config.option.collectonly:
        return
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgresql":
            session.config.stash[_POSTGRES].start()
            return


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[_POSTGRES]
    if state.server is not None:
        state.server.stop()
        state.server = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _postgres_server(config: pytest.Config) -> PostgresServer:
    state = config.stash[_POSTGRES]
    state.start()
    if state.server is not None:
        return state.server
    message = f"no PostgreSQL server for the tests: {state.error}"
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _migrated_template(config: pytest.Config, server: PostgresServer) -> str:
    """A database migrated to head once per run, copied for each test that wants one."""
    state = config.stash[_POSTGRES]
    if not state.template_ready:
        server.drop_database(_MIGRATED_TEMPLATE)
        server.create_database(_MIGRATED_TEMPLATE)
        migrate.upgrade(server.url(_MIGRATED_TEMPLATE))
        server.mark_template(_MIGRATED_TEMPLATE)
        state.template_ready = True
    return _MIGRATED_TEMPLATE


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
        return
    server = _postgres_server(request.config)
    name = f"test_{next(request.config.stash[_POSTGRES].names)}"
    if "migrated_url" in request.fixturenames:
        # Copying a migrated template is much faster than running the migrations again.
        server.create_database(name, template=_migrated_template(request.config, server))
    else:
        server.create_database(name)
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def migrated_url(database_url: str) -> str:
    if is_sqlite(database_url):
        migrate.upgrade(database_url)
    # (A PostgreSQL database_url is already a copy of the migrated template.)
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(migrated_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)
