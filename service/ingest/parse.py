"""A raw event's JSON text into one Segment event (a dict), or InvalidArgument naming ``event_json``."""

from __future__ import annotations

from service import jsonwire
from service.errors import InvalidArgument

MAX_EVENT_DEPTH = 64


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def parse_event(event_json: str) -> dict:
    """One Segment event from JSON text, or InvalidArgument naming event_json."""
    if not event_json.strip():
        raise InvalidArgument("event_json is empty: send one Segment event as a JSON object", field="event_json")
    try:
        event = jsonwire.loads(event_json)
    except RecursionError:
        raise InvalidArgument(f"event_json nests deeper than {MAX_EVENT_DEPTH} levels", field="event_json") from None
    except ValueError as exc:
        raise InvalidArgument(f"event_json is not valid JSON: {exc}", field="event_json") from None
    if not isinstance(event, dict):
        raise InvalidArgument(f"event_json must be a JSON object, got {type(event).__name__}", field="event_json")
    # N brackets nest at most N + 1 levels (values inside the innermost count too): walk only then.
    if event_json.count("{") + event_json.count("[") >= MAX_EVENT_DEPTH and _depth_exceeds(event, MAX_EVENT_DEPTH):
        raise InvalidArgument(f"event_json nests deeper than {MAX_EVENT_DEPTH} levels", field="event_json")
    return event


def message_id_of(event: dict) -> str:
    """The event's messageId as text ("" when it has none); a non-string one as JavaScript would print it."""
    value = event.get("messageId")
    return value if isinstance(value, str) else "" if value is None else jsonwire.js_string(value)
