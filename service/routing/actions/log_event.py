"""Kameleoon "Log Event": a track event (preset: type = "track")."""

from kameleoon.destination.v1.destination_pb2 import LogEventRequest
from service.routing.actions.base import ANONYMOUS_ID, CONTEXT, MESSAGE_ID, TIMESTAMP, TYPE, USER_ID, VISITOR_CODE, Action, Field, first_of

ACTION = Action(
    slug="logEvent",
    title="Log Event",
    natural_type="track",
    request=LogEventRequest,
    fields=(
        ANONYMOUS_ID,
        USER_ID,
        Field("event", "string", first_of("$.event", "$.name"), "event"),
        TYPE,
        Field("properties", "object", first_of("$.properties", "$.traits"), "properties"),
        Field(
            VISITOR_CODE,
            "string",
            first_of("$.properties.kameleoonVisitorCode", "$.traits.kameleoonVisitorCode"),
            "kameleoon_visitor_code",
        ),
        TIMESTAMP,
        CONTEXT,
        MESSAGE_ID,
    ),
)
