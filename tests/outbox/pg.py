"""PostgreSQL for the tests: one throwaway server per session (per worker of ``make test``), a fresh database per test.

The server comes from tools/postgres_server.py (initdb + pg_ctl from the
machine's binaries, as user postgres when root). Without binaries, tests that
need it skip saying how to install them, except under CI=true where they fail:
CI must run them. Under ``make mutate`` every mutant's tests run in a fresh process: they use the
one server tools/mutate.py started for the run (its handle in $KAMELEOON_TEST_PG_SERVER) instead
of starting their own, and drop the databases they made. tests/conftest.py imports these fixtures, so every test can
ask for ``postgres`` or ``postgres_url``.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from tools import postgres_server

SHARED = "KAMELEOON_TEST_PG_SERVER"
NO_POSTGRES = "PostgreSQL binaries not found (initdb, pg_ctl): apt-get install postgresql, or set KAMELEOON_TEST_PG_BINDIR to their directory"


def postgres_or_skip() -> str:
    """The binaries' directory; skip (fail under CI=true) when there are none."""
    bindir = postgres_server.find_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {NO_POSTGRES}", pytrace=False)
        pytest.skip(NO_POSTGRES)
    return bindir


@contextlib.contextmanager
def throwaway_server():
    """A server started in a fresh directory, destroyed on leaving."""
    server = postgres_server.PostgresServer(postgres_or_skip())
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (started on first use), or the one of the mutation run."""
    if os.environ.get(SHARED):
        yield postgres_server.PostgresServer.attach(os.environ[SHARED])
        return
    with throwaway_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres):
    """A fresh, empty database on the session's server."""
    url = postgres.create_database()
    yield url
    if postgres.attached:  # the server outlives this process: leave nothing on it
        postgres.drop_database(url)


@pytest.fixture(scope="module")
def postgres_apart():
    """A second server, for the tests of one module that stop and start it (see own_postgres)."""
    with throwaway_server() as server:
        yield server


@pytest.fixture
def own_postgres(postgres_apart):
    """A server apart from the session's, for tests that stop and start it (shared by the tests of a module; running)."""
    if not postgres_apart.running():
        postgres_apart.start()
    return postgres_apart


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_url(request, tmp_path) -> str:
    """KAMELEOON_OUTBOX of each store, empty: a file in tmp_path, a fresh database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    return request.getfixturevalue("postgres_url")
