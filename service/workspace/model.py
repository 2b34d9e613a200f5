"""Sources and destination instances, Segment's workspace model, as the pipeline reads them.

A source (one app or service) has write keys; it feeds up to 25 instances of the destination, each
with its own Kameleoon credentials, subscriptions, filters and consent categories. Without a
workspace file the KAMELEOON_* variables make one source ``default`` with one instance ``default``:
its credentials are the server's (or a request's own settings), its keys and routes those of before.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from service.delivery.credentials import Credentials
from service.ingest.consent import Consent
from service.routing.router import Router

DEFAULT = "default"


def digest(write_key: str) -> bytes:
    """What is kept of a write key: its SHA-256 (the key itself is never kept, logged or shown)."""
    return hashlib.sha256(write_key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, eq=False)
class Instance:
    """One instance of the destination in a source: where an event goes and how it is routed there."""

    source: str
    name: str
    router: Router
    consent: Consent
    credentials: Credentials | None = None  # None: the server's (or the request's own settings)
    enabled: bool = True
    # implicit: the instance the KAMELEOON_* variables make (credentials None), whose idempotency keys and
    # outbox routes are as before; prefix: what the routes of the others begin with (plain attributes:
    # read on every event)
    implicit: bool = field(init=False)
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        implicit = self.credentials is None
        object.__setattr__(self, "implicit", implicit)
        object.__setattr__(self, "prefix", "" if implicit else f"{self.source}/{self.name}/")

    def route(self, name: str) -> str:
        """The route of a subscription (or a typed request's action) through this instance: the idempotency key's
        and the outbox's, so each instance is deduplicated, retried and dead-lettered on its own."""
        return self.prefix + name


@dataclass(frozen=True, eq=False)
class Source:
    name: str
    instances: tuple[Instance, ...]
    allow_request_settings: bool = True
    enabled_instances: tuple[Instance, ...] = field(init=False)
    # (config, targets): where a call without settings goes, made once (service.api.pipeline.targets)
    memo: list = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled_instances", tuple(instance for instance in self.instances if instance.enabled))


@dataclass(frozen=True, eq=False)
class Workspace:
    """Every source, and which write key opens which. ``from_file``: a KAMELEOON_WORKSPACE file (write keys
    required on event calls) rather than the variables' one source."""

    sources: tuple[Source, ...]
    keys: dict[bytes, str]  # digest of a write key -> its source's name
    from_file: bool = False
    by_name: dict[str, Source] = field(init=False)
    default: Source = field(init=False)  # the source of callers without a workspace file: the first (and only) one

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {source.name: source for source in self.sources})
        object.__setattr__(self, "default", self.sources[0])

    def source_of(self, write_key: str | None) -> Source | None:
        """The source a write key opens; None for a missing or unknown one (compared as digests, in constant time)."""
        if not write_key:
            return None
        offered = digest(write_key)
        for known, name in self.keys.items():
            if hmac.compare_digest(offered, known):
                return self.by_name[name]
        return None

    def instance(self, source: str, name: str) -> Instance | None:
        found = self.by_name.get(source)
        return next((i for i in found.instances if i.name == name), None) if found else None
