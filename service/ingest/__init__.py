"""Ingest: the first stage a raw event meets, the same for every way in.

    parse.py      the event's JSON text -> one Segment event (a dict): valid JSON, an object, at most 64 levels deep

Interface: ``parse_event(event_json) -> dict`` (InvalidArgument naming ``event_json``) and
``message_id_of(event) -> str``. Next stage: service.routing.
"""

from service.ingest.parse import MAX_EVENT_DEPTH, message_id_of, parse_event

__all__ = ["MAX_EVENT_DEPTH", "message_id_of", "parse_event"]
