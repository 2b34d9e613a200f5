"""How each setting's text becomes its value: one parser per kind of value, each raising ValueError
with what is wrong (service.config.settings names the variable). The outbox's URL forms and its
sealing key live here too, so the settings table checks them without importing the outbox."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from service.jsonwire import is_well_formed

SITECODE_LENGTH = 10
APP_DIR = "kameleoon-destination"
POSTGRES_SCHEMES = ("postgresql", "postgres")
SPELLINGS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:port/database"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def concurrency(text: str) -> str:
    """``adaptive``, or a positive whole number (kept as its text)."""
    value = text.strip().lower()
    if value == "adaptive":
        return value
    if not value.isdigit() or int(value) < 1:
        raise ValueError("must be adaptive or a whole number of at least 1")
    return str(int(value))


def sitecode(text: str) -> str:
    if len(text) != SITECODE_LENGTH:
        raise ValueError(f"must be exactly {SITECODE_LENGTH} characters")
    if not is_well_formed(text):  # bytes that are not UTF-8 in the variable: aiohttp's header would drop them
        raise ValueError("must be UTF-8 text")
    return text


def text(value: str) -> str:
    return value


def tokens(text: str) -> tuple[str, ...]:
    found = tuple(token.strip() for token in text.split(",") if token.strip())
    if not found:
        raise ValueError("must hold at least one token (comma-separated)")
    return found


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether a listening host is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def readable_file(text: str) -> str:
    try:
        with open(text, "rb") as file:
            file.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read the file ({exc.strerror})") from None
    return text


# -- the outbox ------------------------------------------------------------------


def outbox_url(url: str) -> str:
    """``url`` when it names a store (KAMELEOON_OUTBOX), else ValueError; the message never quotes a password."""
    parts = urlsplit(url)
    if parts.scheme in POSTGRES_SCHEMES:
        if not parts.netloc and not parts.query:
            raise ValueError("must name the server: postgresql://user@host:port/database")
        return url
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise ValueError(f"must be {SPELLINGS}")
    return url


def default_outbox_url(environ=None) -> str:
    """Where queued mode keeps its outbox when KAMELEOON_OUTBOX is unset: the user's state directory.

    ``$XDG_STATE_HOME/kameleoon-destination/outbox.db``, else
    ``~/.local/state/kameleoon-destination/outbox.db`` (the container image sets
    KAMELEOON_OUTBOX to /var/lib/kameleoon-destination/outbox.db, on a volume).
    """
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return "sqlite:///" + os.path.abspath(os.path.join(state, APP_DIR, "outbox.db"))


def redact_url(url: str) -> str:
    """``url`` fit for logs, errors and metrics: a password (userinfo or ``password=`` in the query) becomes ``***``."""
    parts = urlsplit(url)
    if not url.startswith(f"{parts.scheme}://"):  # not a URL we can read: whatever follows may be a password
        return f"{parts.scheme}:..." if parts.scheme else "..."
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = (
        "&".join("password=***" if pair.split("=", 1)[0].lower() == "password" else pair for pair in parts.query.split("&")) if parts.query else ""
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def outbox_key(text: str) -> bytes:
    """KAMELEOON_OUTBOX_KEY: base64 of exactly 32 bytes (``openssl rand -base64 32``)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 of 32 random bytes (openssl rand -base64 32)") from None
    if len(key) != 32:
        raise ValueError(f"must be base64 of 32 bytes, got {len(key)} bytes")
    return key
