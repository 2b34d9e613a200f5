"""A raw event's JSON text into one Segment event (a dict), or InvalidArgument naming ``event_json``.

Refused: an empty text, one that is not JSON or not an object, one nesting deeper than
MAX_EVENT_DEPTH levels, and one longer than ``max_bytes`` in UTF-8 (KAMELEOON_MAX_EVENT_BYTES,
Segment's 32 KB per event; 0: no limit).
"""

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


def utf8_length(text: str) -> int:
    """The length of ``text`` in UTF-8 (a lone surrogate counts its 3 bytes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def parse_event(event_json: str, max_bytes: int = 0) -> dict:
    """One Segment event from JSON text, or InvalidArgument naming event_json."""
    # 4 bytes per character at most: a text that short is within the limit without counting.
    if max_bytes and len(event_json) * 4 > max_bytes and (size := utf8_length(event_json)) > max_bytes:
        raise InvalidArgument(
            f"event_json is {size} bytes, more than the limit of {max_bytes} per event (KAMELEOON_MAX_EVENT_BYTES)", field="event_json"
        )
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
