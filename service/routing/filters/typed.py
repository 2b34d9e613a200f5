"""A typed request's payload seen as the Segment event it stands for, and back.

Filters are written against events (``traits.email``, ``properties.total``),
so a typed RPC's payload is put where its action's default mapping would
have read it from: identify's and group's ``properties`` are the event's
``traits``, logEvent's ``kameleoonVisitorCode`` is
``properties.kameleoonVisitorCode``, ``type`` is the action's event type.
After the filters, each field the payload had is read back from the same
place; a field the filters removed is gone. A filter never adds anything,
so fields the payload lacked stay absent.
"""

from __future__ import annotations

from service.routing.actions import Action

_MISSING = object()
_PLACES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}


def _places(action: Action) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each field of ``action`` and the event path its default mapping reads first (worked out once)."""
    places = _PLACES.get(action.slug)
    if places is None:
        found = []
        for f in action.fields:
            source = f.default.get("@path") or f.default["@if"]["then"]["@path"]
            found.append((f.name, tuple(source.removeprefix("$.").split("."))))
        places = _PLACES[action.slug] = tuple(found)
    return places


def event_of(action: Action, payload: dict) -> dict:
    """The event ``payload`` stands for; nested objects are copied where a field is written into them."""
    event: dict = {}
    for name, path in _places(action):
        if name not in payload:
            continue
        container = event
        for key in path[:-1]:
            inner = container.get(key)
            container[key] = inner = dict(inner) if type(inner) is dict else {}
            container = inner
        container[path[-1]] = payload[name]
    return event


def payload_from(action: Action, payload: dict, event: dict) -> dict:
    """``payload`` after the filters changed ``event``: its fields read back, in field order."""
    out = {}
    for name, path in _places(action):
        if name not in payload:
            continue
        value: object = event
        for key in path:
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            if value is _MISSING:
                break
        if value is not _MISSING:
            out[name] = value
    return out
