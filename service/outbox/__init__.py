"""Queued delivery: the outbox layer.

    base.py       the interface every store implements (Outbox), and its records
    sqlite.py     the SQLite store: one file, the processes of one host
    postgres.py   the PostgreSQL store: one database, every replica
    sealing.py    credentials references: "server", or a per-request apiKey sealed with AES-GCM
    deliverer.py  claims due events and posts them, retries, dead letters, the circuit

:func:`create` picks the store from its URL (``KAMELEOON_OUTBOX``).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from service.outbox.base import Outbox

APP_DIR = "kameleoon-destination"
POSTGRES_SCHEMES = ("postgresql", "postgres")
SPELLINGS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:port/database"


def default_url(environ=None) -> str:
    """Where queued mode keeps its outbox when KAMELEOON_OUTBOX is unset: the user's state directory.

    ``$XDG_STATE_HOME/kameleoon-destination/outbox.db``, else
    ``~/.local/state/kameleoon-destination/outbox.db`` (the container image sets
    KAMELEOON_OUTBOX to /var/lib/kameleoon-destination/outbox.db, on a volume).
    """
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return "sqlite:///" + os.path.abspath(os.path.join(state, APP_DIR, "outbox.db"))


def check_url(url: str) -> str:
    """``url`` when it names a store (KAMELEOON_OUTBOX), else ValueError; the message never quotes a password."""
    parts = urlsplit(url)
    if parts.scheme in POSTGRES_SCHEMES:
        if not parts.netloc and not parts.query:
            raise ValueError("must name the server: postgresql://user@host:port/database")
        return url
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise ValueError(f"must be {SPELLINGS}")
    return url


def redact_url(url: str) -> str:
    """``url`` fit for logs, errors and metrics: a password (userinfo or ``password=`` in the query) becomes ``***``."""
    parts = urlsplit(url)
    if not url.startswith(f"{parts.scheme}://"):  # not a URL we can read: whatever follows may be a password
        return f"{parts.scheme}:..." if parts.scheme else "..."
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = "&".join(
        "password=***" if pair.split("=", 1)[0].lower() == "password" else pair for pair in parts.query.split("&")
    ) if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def create(url: str) -> Outbox:
    """The store behind ``url`` (not opened yet: ``await store.open()``)."""
    check_url(url)
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        from service.outbox.postgres import PostgresOutbox

        return PostgresOutbox(url)
    from service.outbox.sqlite import SqliteOutbox, path_of

    return SqliteOutbox(path_of(url))


async def check(url: str) -> None:
    """Open and close the store once: OutboxOpenError naming it when it cannot be used (before workers start)."""
    store = create(url)
    await store.open()
    await store.close()


__all__ = ["Outbox", "check", "check_url", "create", "default_url", "redact_url"]
