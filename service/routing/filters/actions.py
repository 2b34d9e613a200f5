"""What a filter does to an event it catches: Segment's four filter actions.

    DROP               the event is not sent              (tsub: drop)
    SAMPLE             only ``percent`` of the events go  (tsub: sample_event)
    DROP_PROPERTIES    the named keys are removed         (tsub: drop_properties)
    ALLOW_PROPERTIES   only the named keys are kept       (tsub: allow_properties)

Property actions take ``fields``: ``{"<path to an object>": ["key", ...]}``,
the path read like a filter's field paths (``"properties"``,
``"context.device"``; ``""`` is the event itself). When the path holds a
list, every object in it is filtered (``"properties.products": ["price"]``
drops the price of every product). Anything but an object there is left
alone. As in tsub, the event is changed in place.

Sampling with a ``path`` is deterministic: the JSON text of the value at the
path (JavaScript's ``JSON.stringify``; a missing value is the empty text) is
hashed with MD5, the digest's first 64 bits read as a fraction of 2**64
(kept to a double's 53 bits), and the event is kept when that fraction is
below ``percent``. The same value gets the same answer in every process and
on every replica. tsub 2.0.1 means to do this, but its MD5 returns a hex
string its bit loop cannot read, so it keeps every event; this is what it
describes. Without a path, each event is a fresh random draw. ``percent``
is a fraction: 0 drops all, 1 keeps all.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from service.routing.filters.evaluate import dlv
from service.routing.mapping.jsvalue import UNDEFINED, array_index, js_keys, json_stringify

DROP, SAMPLE, DROP_PROPERTIES, ALLOW_PROPERTIES = "DROP", "SAMPLE", "DROP_PROPERTIES", "ALLOW_PROPERTIES"
# Segment's order: "Sample, Drop ('Only Sends' are Drops), Drop Properties, Allow Properties".
ORDER = (SAMPLE, DROP, DROP_PROPERTIES, ALLOW_PROPERTIES)


@dataclass(frozen=True)
class Drop:
    type = DROP


@dataclass(frozen=True)
class Sample:
    percent: float
    path: str = ""
    type = SAMPLE

    def keeps(self, event: dict) -> bool:
        if self.percent <= 0:
            return False
        if self.percent >= 1:
            return True
        if not self.path:
            return random.random() < self.percent
        return sample_fraction(dlv(event, self.path)) < self.percent


def sample_fraction(value) -> float:
    """Where ``value`` falls in [0, 1): MD5 of its JSON text, first 64 bits over 2**64."""
    text = json_stringify(value)
    if text is UNDEFINED:
        text = ""
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


@dataclass(frozen=True)
class DropProperties:
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    type = DROP_PROPERTIES

    def apply(self, event: dict) -> None:
        for container, keys in _targets(event, self.fields):
            for key in keys:
                _delete(container, key)


@dataclass(frozen=True)
class AllowProperties:
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    type = ALLOW_PROPERTIES

    def apply(self, event: dict) -> None:
        for container, keys in _targets(event, self.fields):
            present = js_keys(container) if type(container) is dict else [str(i) for i, v in enumerate(container) if v is not None]
            for key in present:
                if key not in keys:
                    _delete(container, key)


def fields_of(fields: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A checked ``fields`` object, frozen, in the order JavaScript iterates its keys."""
    return tuple((path, tuple(fields[path])) for path in js_keys(fields))


def _targets(event: dict, fields):
    """The objects each path names (every object of a list), with the keys for them."""
    for path, keys in fields:
        found = event if path == "" else dlv(event, path)
        for container in found if type(found) is list else (found,):
            if type(container) is dict or type(container) is list:
                yield container, keys


def _delete(container, key: str) -> None:
    """JavaScript's ``delete container[key]``; a deleted list item leaves a hole, written as null."""
    if type(container) is dict:
        container.pop(key, None)
        return
    index = array_index(key)
    if 0 <= index < len(container):
        container[index] = None
