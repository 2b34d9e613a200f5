"""Kameleoon "Group Event": group membership and traits (preset: type = "group")."""

from kameleoon.destination.v1.destination_pb2 import GroupEventRequest
from service.routing.actions.base import ANONYMOUS_ID, MESSAGE_ID, TIMESTAMP, TRAITS, TRAITS_VISITOR_CODE, TYPE, USER_ID, Action, Field, path

ACTION = Action(
    slug="group",
    title="Group Event",
    natural_type="group",
    request=GroupEventRequest,
    fields=(
        ANONYMOUS_ID,
        USER_ID,
        TYPE,
        Field("groupId", "string", path("$.groupId"), "group_id", required=True),
        TRAITS,
        TRAITS_VISITOR_CODE,
        TIMESTAMP,
        MESSAGE_ID,
    ),
)
