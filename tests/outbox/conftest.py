"""The stores the contract suite runs against.

``store_factory`` is parametrized by store: calling it opens one more store
instance on the same backing data (a second call is a second process sharing
the file or database). Every instance is closed after the test. A store joins
the suite by adding one parameter here.
"""

from __future__ import annotations

import pytest

from service.outbox.sqlite import SqliteOutbox


@pytest.fixture(params=["sqlite"])
async def store_factory(request, tmp_path):
    opened = []

    async def make():
        if request.param == "sqlite":
            store = SqliteOutbox(str(tmp_path / "outbox.db"))
        else:  # pragma: no cover - a store added without its factory
            raise AssertionError(request.param)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
