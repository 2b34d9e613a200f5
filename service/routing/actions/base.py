"""What a Kameleoon action is: a table of fields, and how a payload becomes a body.

Each action module declares its fields (Segment's field table: name, type,
required, default source as a mapping-kit directive, and the proto field of
the typed request that carries it). Fields shared by several actions are
declared once here. Typed RPCs and raw events both end in :meth:`Action.body`.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

from google.protobuf.message import Message

from service.jsonwire import from_struct
from service.routing.fields import Field
from service.routing.validation import Validator, check_runtime_limits

VISITOR_CODE = "kameleoonVisitorCode"


def path(source: str) -> dict:
    return {"@path": source}


def first_of(primary: str, fallback: str) -> dict:
    """Segment's ``@if exists`` default: ``primary`` when present, else ``fallback``."""
    return {"@if": {"exists": path(primary), "then": path(primary), "else": path(fallback)}}


ANONYMOUS_ID = Field("anonymousId", "string", path("$.anonymousId"), "anonymous_id")
USER_ID = Field("userId", "string", path("$.userId"), "user_id")
TYPE = Field("type", "string", path("$.type"), "type", required=True)
TIMESTAMP = Field("timestamp", "string", path("$.timestamp"), "timestamp", required=True, format="date-time")
CONTEXT = Field("context", "object", path("$.context"), "context")
MESSAGE_ID = Field("messageId", "string", path("$.messageId"), "message_id", required=True)
TRAITS = Field("properties", "object", path("$.traits"), "traits")
TRAITS_VISITOR_CODE = Field(VISITOR_CODE, "string", path("$.traits.kameleoonVisitorCode"), "kameleoon_visitor_code")


@dataclass(frozen=True)
class Action:
    slug: str  # Segment's action key: logEvent, identify, page, group
    title: str
    natural_type: str  # the Segment event type a typed request gets when its type is empty
    request: type[Message]  # the typed gRPC request message
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = dataclass_field(init=False)
    validator: Validator = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "validator", Validator(self.fields))

    @property
    def rpc(self) -> str:
        """The typed RPC serving this action: its request message's name without "Request"."""
        return self.request.DESCRIPTOR.name.removesuffix("Request")

    def default_mapping(self) -> dict:
        """Segment's preset mapping for this action: every field from its default source."""
        return {f.name: f.default for f in self.fields}

    def payload_of(self, request: Message) -> dict:
        """The payload a typed request carries, in field order; empty strings and unset Structs left out."""
        payload: dict = {}
        for f in self.fields:
            if f.type == "object":
                if request.HasField(f.proto):
                    payload[f.name] = from_struct(getattr(request, f.proto))
            else:
                value = getattr(request, f.proto) or (self.natural_type if f is TYPE else "")
                if value:
                    payload[f.name] = value
        return payload

    def validate(self, payload: dict, raw: dict | None = None) -> dict:
        """The payload Segment's runtime would perform with, or InvalidArgument.

        ``raw`` is the event the payload was mapped from (a typed request's payload is its own event).
        """
        valid = self.validator(payload)
        check_runtime_limits(payload if raw is None else raw)
        return valid

    @staticmethod
    def body(payload: dict) -> dict:
        """Segment's ``perform``: the visitor code moves from the top level into ``properties``.

        ``properties`` is always present; the visitor code replaces any
        ``properties.kameleoonVisitorCode`` (and removes it when the payload has none).
        """
        body = {key: value for key, value in payload.items() if key != VISITOR_CODE}
        properties = dict(payload.get("properties") or {})
        code = payload.get(VISITOR_CODE)
        if code is None:
            properties.pop(VISITOR_CODE, None)
        else:
            properties[VISITOR_CODE] = code
        body["properties"] = properties
        return body
