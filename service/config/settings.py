"""The settings table: each setting with its default (:class:`Config`), its environment variable,
its parser (service.config.values) and its meaning (:data:`SETTINGS`). Start-up fails fast naming
the bad variable; docs/configuration.md is generated from this table (``make docs``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from service.config import values as v
from service.config.values import default_outbox_url, redact_url
from service.errors import ConfigError

DEFAULT_BASE_URL = "https://integrations.kameleoon.com/segmentio"
SECRET_SETTINGS = frozenset({"api_key", "auth_tokens", "admin_tokens", "outbox_key", "write_keys"})
# What Segment's request client sends with every request (actions-core's create-request-client).
USER_AGENT = "Segment (Actions)"


@dataclass(frozen=True)
class Config:
    """Every setting, with its default. ``metadata`` names the variable and the parser."""

    api_key: str | None = None
    sitecode: str | None = None
    base_url: str = DEFAULT_BASE_URL
    max_attempts: int = 3
    timeout_s: float = 10.0
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    pool_size: int | None = None
    concurrency: str = "adaptive"
    max_concurrency: int = 1000
    rate_limit: float = 0.0
    grace_s: float = 10.0
    log_level: str = "info"
    log_format: str = "auto"
    max_message_bytes: int = 4 * 1024 * 1024
    max_connection_age_s: float = 300.0
    mappings: str | None = None
    filters: str | None = None
    config_poll_s: float = 1.0
    max_in_flight: int = 2000
    idempotency_window_s: float = 86400.0
    idempotency_max_entries: int = 500_000
    auth_tokens: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    metrics_listen: tuple[str, int] | None = None
    health_listen: tuple[str, int] | None = None
    http_listen: tuple[str, int] | None = None
    admin_listen: tuple[str, int] | None = None
    workspace: str | None = None
    admin_tokens: tuple[str, ...] = ()
    write_keys: tuple[str, ...] = ()
    tracing: str = "off"
    samples: str = "on"
    sample_retention_s: float = 7 * 86400.0
    workers: int = 1
    max_batch: int = 1000
    batch_concurrency: int = 32
    stream_window: int = 64
    max_event_bytes: int = 32768
    consent_categories: tuple[str, ...] = ()
    delivery: str = "sync"
    outbox: str | None = None
    outbox_key: bytes | None = None
    outbox_concurrency: int = 64
    outbox_lease_s: float = 60.0
    retry_window_s: float = 14400.0
    retry_max_backoff_s: float = 600.0
    dead_letter_retention_s: float = 604800.0
    outbox_max_pending: int = 1_000_000
    outbox_min_free_bytes: int | None = None

    def fixed_concurrency(self) -> int | None:
        """The fixed number of requests in flight (KAMELEOON_CONCURRENCY a number, else the deprecated
        KAMELEOON_POOL_SIZE when set); None: adaptive."""
        if self.concurrency != "adaptive":
            return int(self.concurrency)
        return self.pool_size

    def outbox_url(self) -> str | None:
        """The outbox in use: KAMELEOON_OUTBOX, else the default location when queued is the default; None: no outbox."""
        if self.outbox:
            return self.outbox
        if self.delivery == "queued":
            return default_outbox_url()
        return None

    def __repr__(self) -> str:  # never print the apiKey or the tokens
        shown = {f.name: _shown(f.name, getattr(self, f.name)) for f in fields(self)}
        return f"Config({shown})"


# (attribute, environment variable, parser, meaning), by section (SECTIONS): docs/configuration.md is
# generated from these two tables (make docs), and a test fails when it differs.
# A table, one line per setting: left as written by the formatter.
# fmt: off
SETTINGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    # Kameleoon
    ("api_key", "KAMELEOON_API_KEY", v.text, "default apiKey for requests that carry none (secret)"),
    ("sitecode", "KAMELEOON_SITECODE", v.sitecode, "default sitecode for requests that carry none (10 characters, UTF-8)"),
    ("base_url", "KAMELEOON_BASE_URL", v.http_url, "Kameleoon's full endpoint URL (never taken from requests)"),
    # Delivery
    ("max_attempts", "KAMELEOON_MAX_ATTEMPTS", v.positive_int, "HTTP attempts per event, the first one included"),
    ("timeout_s", "KAMELEOON_TIMEOUT_S", v.positive_float, "timeout of one HTTP attempt, seconds"),
    ("backoff_base_s", "KAMELEOON_BACKOFF_BASE_S", v.non_negative_float, "backoff ceiling before the first retry, seconds; doubles each retry (full jitter)"),
    ("backoff_max_s", "KAMELEOON_BACKOFF_MAX_S", v.non_negative_float, "largest backoff, seconds; a Retry-After longer than this ends a sync call's retries with UNAVAILABLE"),
    ("concurrency", "KAMELEOON_CONCURRENCY", v.concurrency, "requests to Kameleoon in flight at once: adaptive (per sitecode, from the round trip and Kameleoon's 429/503s; the pool follows), or a number fixing it for all sitecodes"),
    ("max_concurrency", "KAMELEOON_MAX_CONCURRENCY", v.positive_int, "adaptive concurrency's bound per sitecode, and the connections kept to Kameleoon (keep-alive)"),
    ("rate_limit", "KAMELEOON_RATE_LIMIT", v.non_negative_float, "requests per second to Kameleoon at most, per sitecode, for contracts that state one (0: none)"),
    ("pool_size", "KAMELEOON_POOL_SIZE", v.positive_int, "deprecated: a fixed concurrency (KAMELEOON_CONCURRENCY=<n> says the same); set, it wins over adaptive"),
    ("max_in_flight", "KAMELEOON_MAX_IN_FLIGHT", v.positive_int, "events being delivered at once; past it calls get RESOURCE_EXHAUSTED at once"),
    ("idempotency_window_s", "KAMELEOON_IDEMPOTENCY_WINDOW_S", v.non_negative_float, "a messageId delivered successfully is not sent again for this long, seconds (0: off)"),
    ("idempotency_max_entries", "KAMELEOON_IDEMPOTENCY_MAX_ENTRIES", v.positive_int, "messageIds remembered at most without an outbox (oldest forgotten first)"),
    ("delivery", "KAMELEOON_DELIVERY", v.choice("sync", "queued"), "delivery of requests whose `delivery` is unset: sync (during the call) or queued (outbox)"),
    # Raw events
    ("workspace", "KAMELEOON_WORKSPACE", v.text, "JSON or YAML file of sources (write keys) and their destination instances (credentials, mappings, filters, consent); KAMELEOON_MAPPINGS, _FILTERS, _CONSENT_CATEGORIES, _WRITE_KEYS and _AUTH_TOKENS are refused beside it (unset: one source with one instance, from the variables; docs/workspace.md)"),
    ("mappings", "KAMELEOON_MAPPINGS", v.text, "JSON or YAML file of subscriptions for raw events (unset: the 4 presets)"),
    ("filters", "KAMELEOON_FILTERS", v.text, "JSON or YAML file of destination filters in Segment's shape, applied before the subscriptions (unset: none)"),
    ("config_poll_s", "KAMELEOON_CONFIG_POLL_S", v.non_negative_float, "how often the subscriptions and filters files (or the workspace and every file it names) are checked for changes, seconds (0: only on SIGHUP)"),
    ("max_batch", "KAMELEOON_MAX_BATCH", v.positive_int, "most events in one SendBatch"),
    ("batch_concurrency", "KAMELEOON_BATCH_CONCURRENCY", v.positive_int, "events of one SendBatch delivered at once"),
    ("stream_window", "KAMELEOON_STREAM_WINDOW", v.positive_int, "events of one SendStream in flight at once (the stream is not read further until one finishes)"),
    ("max_event_bytes", "KAMELEOON_MAX_EVENT_BYTES", v.count, "largest raw event accepted, bytes of its JSON text (Segment's 32 KB; 0: no limit); larger ones get INVALID_ARGUMENT"),
    ("consent_categories", "KAMELEOON_CONSENT_CATEGORIES", v.tokens, "comma-separated consent category ids mapped to Kameleoon: an event whose user did not consent to all of them is not sent (unset: no enforcement)"),
    # The gRPC server
    ("max_message_bytes", "KAMELEOON_MAX_MESSAGE_BYTES", v.positive_int, "largest gRPC request accepted, bytes (larger ones get RESOURCE_EXHAUSTED)"),
    ("max_connection_age_s", "KAMELEOON_MAX_CONNECTION_AGE_S", v.positive_float, "clients are asked to reconnect after this long, seconds, so new replicas get traffic"),
    ("grace_s", "KAMELEOON_GRACE_S", v.non_negative_float, "on SIGTERM/SIGINT, how long calls in flight (and the deliverer's attempts) may finish, seconds"),
    ("admin_tokens", "KAMELEOON_ADMIN_TOKENS", v.tokens, "comma-separated bearer tokens of operators: OutboxAdmin needs one when set, and always with a workspace; a write key never opens it (secret)"),
    ("auth_tokens", "KAMELEOON_AUTH_TOKENS", v.tokens, "comma-separated bearer tokens; when set, every call but health checks needs `authorization: Bearer <token>` (secret; unset: open)"),
    ("tls_cert", "KAMELEOON_TLS_CERT", v.readable_file, "PEM certificate chain: serve TLS (with KAMELEOON_TLS_KEY)"),
    ("tls_key", "KAMELEOON_TLS_KEY", v.readable_file, "PEM private key of KAMELEOON_TLS_CERT"),
    ("tls_client_ca", "KAMELEOON_TLS_CLIENT_CA", v.readable_file, "PEM CA bundle: require client certificates (mutual TLS)"),
    ("health_listen", "KAMELEOON_HEALTH_LISTEN", v.host_port, "HOST:PORT of a plaintext gRPC port serving only grpc.health.v1, for probes when the main port speaks TLS (unset: off)"),
    ("workers", "KAMELEOON_WORKERS", v.positive_int, "serving processes sharing the port (SO_REUSEPORT); about one per core"),
    ("admin_listen", "KAMELEOON_ADMIN_LISTEN", v.host_port, "HOST:PORT serving the operator's page (delivery overview, samples, outbox, configuration; read-only); a non-loopback host needs KAMELEOON_ADMIN_TOKENS (unset: off)"),
    ("http_listen", "KAMELEOON_HTTP_LISTEN", v.host_port, "HOST:PORT serving Segment's HTTP Tracking API (/v1/track, /v1/batch, ...) for Segment's libraries, queued delivery (unset: off)"),
    ("write_keys", "KAMELEOON_WRITE_KEYS", v.tokens, "comma-separated write keys the HTTP Tracking API accepts, as Segment's libraries send them (secret; needed with KAMELEOON_HTTP_LISTEN)"),
    # The outbox (queued delivery)
    ("outbox", "KAMELEOON_OUTBOX", v.outbox_url, "sqlite:///relative.db, sqlite:////absolute.db (one host) or postgresql://user@host:5432/db (replicas); unset with KAMELEOON_DELIVERY=queued: $XDG_STATE_HOME/kameleoon-destination/outbox.db; unset with sync: none"),
    ("outbox_key", "KAMELEOON_OUTBOX_KEY", v.outbox_key, "base64 of 32 random bytes (`openssl rand -base64 32`): seals the apiKey of queued requests that carry their own (AES-GCM; secret)"),
    ("outbox_concurrency", "KAMELEOON_OUTBOX_CONCURRENCY", v.positive_int, "queued events being posted at once, per process"),
    ("outbox_lease_s", "KAMELEOON_OUTBOX_LEASE_S", v.positive_float, "a claimed event whose process died is claimed again after this long, seconds"),
    ("retry_window_s", "KAMELEOON_RETRY_WINDOW_S", v.positive_float, "queued events are retried this long after acceptance, seconds (Segment's 4 hours), then become dead letters"),
    ("retry_max_backoff_s", "KAMELEOON_RETRY_MAX_BACKOFF_S", v.positive_float, "largest wait between two attempts of a queued event, seconds (a longer Retry-After is honoured)"),
    ("dead_letter_retention_s", "KAMELEOON_DEAD_LETTER_RETENTION_S", v.positive_float, "dead letters are kept this long, seconds (7 days)"),
    ("outbox_max_pending", "KAMELEOON_OUTBOX_MAX_PENDING", v.count, "undelivered events the outbox holds at most (0: no limit); past it queued calls get RESOURCE_EXHAUSTED"),
    ("outbox_min_free_bytes", "KAMELEOON_OUTBOX_MIN_FREE_BYTES", v.count, "SQLite: new events are refused (RESOURCE_EXHAUSTED) while the outbox's filesystem has less free, keeping room to deliver what is queued (unset: the smaller of 64 MiB and 5% of the filesystem; 0: none)"),
    # Logs, metrics, traces
    ("log_level", "KAMELEOON_LOG_LEVEL", v.choice("debug", "info", "warning", "error"), "log level"),
    ("log_format", "KAMELEOON_LOG_FORMAT", v.choice("auto", "json", "console"), "json, console, or auto (JSON unless stderr is a terminal)"),
    ("metrics_listen", "KAMELEOON_METRICS_LISTEN", v.host_port, "HOST:PORT serving Prometheus metrics at /metrics (unset: off)"),
    ("tracing", "KAMELEOON_TRACING", v.choice("off", "console", "otlp"), "OpenTelemetry traces: off, console (stderr) or otlp (the standard OTEL_EXPORTER_OTLP_* variables apply)"),
    ("samples", "KAMELEOON_SAMPLES", v.choice("on", "off"), "keep samples of discarded and failed events for the delivery overview: the event, the request (apiKey redacted), Kameleoon's answer; they hold personal data (off: counts only)"),
    ("sample_retention_s", "KAMELEOON_SAMPLE_RETENTION_S", v.positive_float, "samples older than this are forgotten, seconds (7 days)"),
)
# fmt: on

# The sections of the configuration reference: a title and its first setting; each runs to the next.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("Kameleoon", "api_key"),
    ("Delivery", "max_attempts"),
    ("Raw events: subscriptions, filters, batches, size, consent", "mappings"),
    ("The gRPC server", "max_message_bytes"),
    ("The outbox (queued delivery)", "outbox"),
    ("Logs, metrics, traces", "log_level"),
)


def _shown(attribute: str, value: Any) -> Any:
    """A setting's value as logs and errors may show it: secrets hidden, the outbox URL's password too."""
    if attribute in SECRET_SETTINGS and value:
        return "<secret>"
    if attribute == "outbox" and isinstance(value, str):
        return redact_url(value)
    return value


# What a workspace file says for each of its instances and sources, so these are refused beside it.
_WORKSPACE_REPLACES = (
    ("mappings", "KAMELEOON_MAPPINGS"),
    ("filters", "KAMELEOON_FILTERS"),
    ("consent_categories", "KAMELEOON_CONSENT_CATEGORIES"),
    ("write_keys", "KAMELEOON_WRITE_KEYS"),
    ("auth_tokens", "KAMELEOON_AUTH_TOKENS"),
)


def from_env(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration in ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for attribute, variable, parse, _ in SETTINGS:
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            values[attribute] = parse(raw)
        except ValueError as exc:
            shown = "<secret>" if attribute in SECRET_SETTINGS else repr(_shown(attribute, raw))
            raise ConfigError(f"{variable}={shown}: {exc}") from None
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        raise ConfigError("KAMELEOON_TLS_CERT and KAMELEOON_TLS_KEY go together: set both or neither")
    if values.get("tls_client_ca") and not values.get("tls_cert"):
        raise ConfigError("KAMELEOON_TLS_CLIENT_CA needs KAMELEOON_TLS_CERT and KAMELEOON_TLS_KEY")
    if values.get("admin_listen") and not values.get("admin_tokens") and not v.is_loopback(values["admin_listen"][0]):
        raise ConfigError(
            f"KAMELEOON_ADMIN_LISTEN={values['admin_listen'][0]}:{values['admin_listen'][1]} is not a loopback address: "
            "set KAMELEOON_ADMIN_TOKENS to open the operator's page beyond this host"
        )
    if values.get("workspace"):
        clashing = [variable for attribute, variable in _WORKSPACE_REPLACES if values.get(attribute)]
        if clashing:
            raise ConfigError(f"KAMELEOON_WORKSPACE replaces {', '.join(clashing)}: set them in the workspace file, or leave the workspace unset")
    elif values.get("http_listen"):
        missing = [
            variable
            for attribute, variable in (("write_keys", "KAMELEOON_WRITE_KEYS"), ("api_key", "KAMELEOON_API_KEY"), ("sitecode", "KAMELEOON_SITECODE"))
            if not values.get(attribute)
        ]
        if missing:
            raise ConfigError(
                f"KAMELEOON_HTTP_LISTEN needs {', '.join(missing)}: the HTTP Tracking API's callers send a write key, not Kameleoon's credentials"
            )
    return Config(**values)
