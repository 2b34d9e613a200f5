"""Kameleoon "Identify Event": user traits (preset: type = "identify")."""

from kameleoon.destination.v1.destination_pb2 import IdentifyEventRequest
from service.routing.actions.base import ANONYMOUS_ID, MESSAGE_ID, TIMESTAMP, TRAITS, TRAITS_VISITOR_CODE, TYPE, USER_ID, Action

ACTION = Action(
    slug="identify",
    title="Identify Event",
    natural_type="identify",
    request=IdentifyEventRequest,
    fields=(ANONYMOUS_ID, USER_ID, TYPE, TRAITS, TRAITS_VISITOR_CODE, TIMESTAMP, MESSAGE_ID),
)
