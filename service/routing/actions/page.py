"""Kameleoon "Page Event": a page view (preset: type = "page")."""

from kameleoon.destination.v1.destination_pb2 import PageEventRequest
from service.routing.actions.base import ANONYMOUS_ID, CONTEXT, MESSAGE_ID, TIMESTAMP, TYPE, USER_ID, VISITOR_CODE, Action, Field, path

ACTION = Action(
    slug="page",
    title="Page Event",
    natural_type="page",
    request=PageEventRequest,
    fields=(
        ANONYMOUS_ID,
        USER_ID,
        TYPE,
        Field("properties", "object", path("$.properties"), "properties"),
        Field(VISITOR_CODE, "string", path("$.properties.kameleoonVisitorCode"), "kameleoon_visitor_code"),
        Field("name", "string", path("$.name"), "name"),
        CONTEXT,
        TIMESTAMP,
        MESSAGE_ID.replace(required=False),
    ),
)
