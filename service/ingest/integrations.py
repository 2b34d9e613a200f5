"""The Integrations object: an event's ``integrations`` switching destinations off (or on).

The rule of Segment's event queue (@segment/analytics-core's ``availableExtensions``, as its
flush calls it with ``event.integrations ?? {}``; goldens in tests/goldens/ingest.json), for a
destination registered as ``Actions Kameleoon`` with the alternative name ``Kameleoon (Actions)``:
the first of those two keys whose value is neither absent nor null decides, by JavaScript
truthiness (``false``, ``0``, ``""`` block; ``true``, objects, lists and other strings let the
event through); with neither, the event is blocked only when ``All`` is exactly ``false``. Keys
are case-sensitive; the classic name ``Kameleoon`` and ``Segment.io`` do not apply. An
``integrations`` that is not an object is read as JavaScript reads a property of it (so a text,
a number or a list lets every event through).
"""

from __future__ import annotations

from service.routing.mapping.jsvalue import UNDEFINED, get_prop, truthy

REASON = "FILTERED_BY_INTEGRATIONS_OBJECT"
NAME = "Actions Kameleoon"
ALTERNATIVE_NAMES = ("Kameleoon (Actions)",)


def allows(event: dict) -> bool:
    """Whether the event's Integrations object lets it go to Kameleoon."""
    integrations = event.get("integrations")
    if not integrations:  # absent, null, {}, or a falsy value without properties: every destination
        return True
    found = get_prop(integrations, NAME)
    if found is None or found is UNDEFINED:
        for name in ALTERNATIVE_NAMES:  # the last alternative name present counts, as Segment's loop has it
            value = get_prop(integrations, name)
            if value is not UNDEFINED:
                found = value
        if found is None or found is UNDEFINED:
            return get_prop(integrations, "All") is not False
    return truthy(found)
