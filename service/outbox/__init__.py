"""Queued delivery: the outbox layer.

    base.py       the interface every store implements (Outbox), and its records
    sqlite.py     the SQLite store: one file, the processes of one host
    sealing.py    credentials references: "server", or a per-request apiKey sealed with AES-GCM
    deliverer.py  claims due events and posts them, retries, dead letters, the circuit

:func:`create` picks the store from its URL (``KAMELEOON_OUTBOX``).
"""

from __future__ import annotations

import os

from service.outbox.base import Outbox

APP_DIR = "kameleoon-destination"


def default_url(environ=None) -> str:
    """Where queued mode keeps its outbox when KAMELEOON_OUTBOX is unset: the user's state directory.

    ``$XDG_STATE_HOME/kameleoon-destination/outbox.db``, else
    ``~/.local/state/kameleoon-destination/outbox.db`` (the container image sets
    KAMELEOON_OUTBOX to /var/lib/kameleoon-destination/outbox.db, on a volume).
    """
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return "sqlite:///" + os.path.abspath(os.path.join(state, APP_DIR, "outbox.db"))


def create(url: str) -> Outbox:
    """The store behind ``url`` (not opened yet: ``await store.open()``)."""
    if url.startswith("sqlite:///"):
        from service.outbox.sqlite import SqliteOutbox, path_of

        return SqliteOutbox(path_of(url))
    raise ValueError(f"unknown outbox store {url.split(':', 1)[0]!r}: use sqlite:///path.db")


async def check(url: str) -> None:
    """Open and close the store once: OutboxOpenError naming it when it cannot be used (before workers start)."""
    store = create(url)
    await store.open()
    await store.close()


__all__ = ["Outbox", "check", "create", "default_url"]
