"""Ingest: what Segment's pipeline does to a raw event before any destination sees it, the same
for every way in, in this order:

    parse.py          the event's JSON text -> one event: valid JSON, an object, 64 levels deep at
                      most, KAMELEOON_MAX_EVENT_BYTES at most (Segment's 32 KB)
    stamp.py          receivedAt, messageId and timestamp filled in as Segment's Tracking API does
    consent.py        end-user consent to the categories mapped to Kameleoon    FILTERED_BY_END_USER_CONSENT
    integrations.py   the event's Integrations object                          FILTERED_BY_INTEGRATIONS_OBJECT

Interface: ``parse_event(event_json, max_bytes) -> dict`` (InvalidArgument naming ``event_json``),
``Stamper()(event)``, ``Consent(categories).allows(event)``, ``integrations.allows(event)``,
``message_id_of(event) -> str``. Next stage: service.routing (filters, then subscriptions).
"""

from service.ingest.parse import MAX_EVENT_DEPTH, message_id_of, parse_event

__all__ = ["MAX_EVENT_DEPTH", "message_id_of", "parse_event"]
