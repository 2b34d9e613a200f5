"""The stores the contract suite runs against.

``store_factory`` is parametrized by store: calling it opens one more store
instance on the same backing data (a second call is a second process sharing
the file or database). Every instance is closed after the test. A store joins
the suite by adding one parameter here.

PostgreSQL: one throwaway server for the whole session, a fresh database per
test (the ``postgres_url`` fixture of tests/outbox/pg.py).
"""

from __future__ import annotations

import pytest

from service.outbox.postgres import PostgresOutbox
from service.outbox.sqlite import SqliteOutbox


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
