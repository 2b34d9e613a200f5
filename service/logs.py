"""structlog set-up: JSON lines in production, readable lines on a terminal.

Nothing secret is ever passed to a logger; as a second line of defence,
values under keys that name a secret are masked.
"""

from __future__ import annotations

import logging
import sys

import structlog

from service.tracing import add_trace_ids

_SECRET_KEYS = frozenset({"api_key", "apikey", "apiKey", "authorization", "secret", "settings"})


def _mask_secrets(_logger, _method, event: dict) -> dict:
    for key in _SECRET_KEYS.intersection(event):
        event[key] = "<secret>"
    return event


def configure(level: str = "info", fmt: str = "auto", stream=None, trace_ids: bool = False) -> None:
    """Configure structlog for the process: ``fmt`` is auto, json or console; ``trace_ids`` when tracing is on."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            *([add_trace_ids] if trace_ids else []),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(stream),  # one write per line: workers share stderr
        cache_logger_on_first_use=False,
    )
