"""Queued delivery: the outbox, where accepted events wait until Kameleoon has them.

    accept.py     Acceptor: rendered requests committed to the store, answered once stored
    sealing.py    credentials references: "server", or a per-request apiKey sealed with AES-GCM
    base.py       the interface every store implements (Outbox), and its records
    sqlite.py     the SQLite store: one file, the processes of one host
    postgres.py   the PostgreSQL store: one database, every replica
    window.py     the idempotency window kept in the store, shared with synchronous delivery
    deliverer.py  claims due events and posts them (service.delivery), retries, dead letters, the circuit
    commands.py   ``kameleoon-destination outbox ...``: stats and dead letters from the command line

Interface: ``create(url) -> Outbox`` picks the store from its URL (``KAMELEOON_OUTBOX``);
``Acceptor.enqueue`` on the way in, ``Deliverer`` on the way out. The stores import nothing
above service.outbox.base.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from service.config.values import POSTGRES_SCHEMES, redact_url
from service.config.values import default_outbox_url as default_url
from service.config.values import outbox_url as check_url
from service.outbox.base import Outbox


def create(url: str, min_free_bytes: int | None = None, create_directory: bool = False) -> Outbox:
    """The store behind ``url`` (not opened yet: ``await store.open()``). SQLite: ``min_free_bytes`` is the
    headroom kept on its filesystem (None: the default), ``create_directory`` makes a missing directory
    (the default location) instead of refusing it (an explicit KAMELEOON_OUTBOX on a volume not mounted)."""
    check_url(url)
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        from service.outbox.postgres import PostgresOutbox

        return PostgresOutbox(url)
    from service.outbox.sqlite import SqliteOutbox, path_of

    return SqliteOutbox(path_of(url), min_free_bytes, create_directory)


async def check(url: str, create_directory: bool = False) -> None:
    """Open and close the store once: OutboxOpenError naming it when it cannot be used (before workers start)."""
    store = create(url, create_directory=create_directory)
    await store.open()
    await store.close()


__all__ = ["Outbox", "check", "check_url", "create", "default_url", "redact_url"]
