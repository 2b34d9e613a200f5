"""The stores the contract suite runs against.

``store_factory`` is parametrized by store: calling it opens one more store
instance on the same backing data (a second call is a second process sharing
the file or database). Every instance is closed after the test. A store joins
the suite by adding one parameter here.

PostgreSQL: one throwaway server for the whole session (``postgres``, see
tests/outbox/pg.py), a fresh database per test. Without PostgreSQL binaries
those tests skip, saying how to install them, except under CI=true where they
fail: CI must run them.
"""

from __future__ import annotations

import os

import pytest

from service.outbox.postgres import PostgresOutbox
from service.outbox.sqlite import SqliteOutbox
from tests.outbox import pg

NO_POSTGRES = (
    "PostgreSQL binaries not found (initdb, pg_ctl): apt-get install postgresql, "
    "or set KAMELEOON_TEST_PG_BINDIR to their directory"
)


def postgres_or_skip() -> str:
    """The binaries' directory; skip (fail under CI=true) when there are none."""
    bindir = pg.find_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {NO_POSTGRES}", pytrace=False)
        pytest.skip(NO_POSTGRES)
    return bindir


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (started on first use)."""
    server = pg.PostgresServer(postgres_or_skip())
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres) -> str:
    """A fresh, empty database on the session's server."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_factory(request, tmp_path):
    opened = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    async def make():
        if request.param == "sqlite":
            store = SqliteOutbox(str(tmp_path / "outbox.db"))
        elif request.param == "postgresql":
            store = PostgresOutbox(url)
        else:  # pragma: no cover - a store added without its factory
            raise AssertionError(request.param)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
