"""The validator's words: every field at fault named once, in order, with the value it got cut to 64
characters (the service's error messages are what a caller reads to fix an event)."""

from __future__ import annotations

import pytest

from service.errors import InvalidArgument
from service.routing.actions import ACTIONS

LOG_EVENT = ACTIONS["logEvent"]


def refusal(payload: dict) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        LOG_EVENT.validator(payload)
    return refused.value


def test_every_field_at_fault_is_named_in_order_with_its_value_cut_to_64_characters():
    long_text = "x" * 70
    error = refusal({"type": "track", "messageId": "m-1", "timestamp": long_text, "properties": "not an object"})
    assert str(error) == (f"invalid event: properties must be a object, got string; timestamp must be an RFC 3339 date-time, got {'x' * 64!r}")
    assert error.field == "properties"


def test_a_coerced_date_time_is_cut_to_64_characters_too():
    error = refusal({"type": "track", "messageId": "m-1", "timestamp": ["y" * 70]})  # coerced as JavaScript's String() does
    assert str(error) == f"invalid event: timestamp must be an RFC 3339 date-time, got {'y' * 64!r}"


def test_an_empty_string_where_an_object_goes_is_dropped_as_empty_not_refused():
    payload = {"type": "track", "messageId": "m-1", "timestamp": "2024-03-15T12:34:56.789Z", "properties": "", "context": None}
    assert LOG_EVENT.validator(payload) == {"type": "track", "messageId": "m-1", "timestamp": "2024-03-15T12:34:56.789Z"}
