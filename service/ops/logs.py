"""structlog set-up: JSON lines in production, readable lines on a terminal.

Nothing secret is ever passed to a logger; as a second line of defence,
values under keys that name a secret are masked.

The per-RPC line is on every call's path, so it is cheap: :func:`logger` hands
out bound loggers made once per configuration (no lazy proxy resolving its
configuration per call), JSON is rendered by orjson, and the timestamp reuses
its text up to the second. The line and its fields are what structlog's own
JSONRenderer and TimeStamper(fmt="iso", utc=True) gave.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from service.ops.tracing import add_trace_ids

_SECRET_KEYS = frozenset({"api_key", "apikey", "apiKey", "authorization", "secret", "settings"})
_bound: dict[str, Any] = {}


def _mask_secrets(_logger, _method, event: dict) -> dict:
    for key in _SECRET_KEYS.intersection(event):
        event[key] = "<secret>"
    return event


class _UtcIsoStamper:
    """``timestamp``: the UTC time as datetime.isoformat() spells it, "Z" for "+00:00" (structlog's
    TimeStamper(fmt="iso", utc=True)); the text up to the second is made once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger, _method, event: dict) -> dict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micro = int((now - second) * 1_000_000)
        event["timestamp"] = f"{self._prefix}.{micro:06d}Z" if micro else f"{self._prefix}Z"
        return event


def _orjson_text(event: dict, **_json_kw) -> str:
    try:
        return orjson.dumps(event, default=repr).decode()
    except TypeError:  # what orjson refuses (a lone surrogate, legal in JSON; an integer past 64 bits): json escapes it
        return json.dumps(event, default=repr, separators=(",", ":"))


def logger(name: str):
    """A logger bound to the current configuration, made once (configure() makes new ones)."""
    found = _bound.get(name)
    if found is None:
        found = _bound[name] = structlog.get_logger(name).bind()
    return found


def configure(level: str = "info", fmt: str = "auto", stream=None, trace_ids: bool = False) -> None:
    """Configure structlog for the process: ``fmt`` is auto, json or console; ``trace_ids`` when tracing is on."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console" else structlog.processors.JSONRenderer(serializer=_orjson_text)
    )
    processors: list[Any] = [  # ours take and give plain dicts, which structlog's types do not name
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _UtcIsoStamper(),
        _mask_secrets,
        *([add_trace_ids] if trace_ids else []),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(stream),  # one write per line: workers share stderr
        cache_logger_on_first_use=False,
    )
    _bound.clear()


def restore(saved: dict) -> None:
    """Put back a configuration read with structlog.get_config() (the loggers of :func:`logger` follow)."""
    structlog.configure(**saved)
    _bound.clear()
