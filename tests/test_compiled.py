"""Compiled once, cheap per event, same results: a flat mapping's shared resolution against the
copying one (mapping-kit's removeUndefined), on the golden mapping cases and on fuzzed events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import jsonwire
from service.errors import InvalidArgument, MappingError
from service.routing.mapping.directives import compile_mapping
from service.routing.subscriptions import load
from service.routing.validation import validate

GOLDENS = json.loads((Path(__file__).parent / "goldens" / "mappings.json").read_text(encoding="utf-8"))["cases"]
PRESETS = load(None)


def outcome(fn, event):
    try:
        return "ok", jsonwire.dumps(fn(event))
    except MappingError as exc:
        return "error", str(exc)


def flat_cases():
    for case in GOLDENS:
        if case["invalid"] is not None or "@liquid" in json.dumps(case["mapping"]) or case.get("event_gen"):
            continue
        compiled = compile_mapping(case["mapping"])
        if compiled._fields is not None:
            yield pytest.param(case, compiled, id=case["name"])


def test_the_presets_and_most_golden_mappings_are_flat():
    assert all(subscription.mapping._fields is not None for subscription in PRESETS)
    assert len(list(flat_cases())) > 400


@pytest.mark.parametrize("case, compiled", list(flat_cases()))
def test_flat_resolution_says_what_the_copying_one_says(case, compiled):
    event = jsonwire.loads(json.dumps(case["event"]))  # as the service holds events
    shared, copied = outcome(compiled.resolve_shared, event), outcome(compiled.resolve, event)
    assert shared == copied


def test_shared_resolution_copies_nothing_it_would_have_to_reorder():
    # A constant object is finished once at compile time: keys in JavaScript order, like every time.
    mapping = compile_mapping({"p": {"b": 1, "1": 2}, "q": {"@path": "$.properties"}})
    event = jsonwire.loads('{"properties": {"z": 1, "2": 2}}')
    assert jsonwire.dumps(mapping.resolve_shared(event)) == jsonwire.dumps(mapping.resolve(event)) == b'{"p":{"1":2,"b":1},"q":{"2":2,"z":1}}'


FUZZ = settings(max_examples=200, deadline=None)
INFINITY = 1.2345e300  # spelt 1e400 in the event's JSON: JavaScript reads Infinity
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.just(INFINITY),
    st.sampled_from(["", "track", "page", "identify", "group", "2024-03-15T12:34:56.789Z", "2024-02-30T00:00:00Z"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.text(max_size=6), st.sampled_from(["kameleoonVisitorCode", "1", "0", "length", "constructor"])), inner, max_size=4
        )
    ),
    max_leaves=12,
)
fields = ["type", "event", "name", "userId", "anonymousId", "messageId", "timestamp", "properties", "traits", "context", "groupId"]
fuzzed_events = st.one_of(
    st.dictionaries(st.sampled_from(fields), json_values, max_size=9),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["track", "page", "identify", "group"]), "timestamp": scalars},
        optional={name: json_values for name in fields if name not in ("type", "timestamp")},
    ),
)


@FUZZ
@given(event=fuzzed_events)
def test_presets_plan_fuzzed_events_as_the_copying_path_does(event):
    event = jsonwire.loads(json.dumps(event).replace(repr(INFINITY), "1e400"))
    for subscription in PRESETS:
        if not subscription.matches(event):
            continue
        shared, copied = outcome(subscription.mapping.resolve_shared, event), outcome(subscription.mapping.resolve, event)
        assert shared == copied
        action = subscription.action
        reference = checked(lambda: action.body(validate(subscription.mapping.resolve(event), action.by_name)))
        assert checked(lambda: action.body(action.validator(subscription.payload(event)))) == reference
        assert checked(lambda: subscription.body(event)) == reference, subscription.fast_body.source


def checked(fn):
    try:
        return "ok", jsonwire.dumps(fn())
    except InvalidArgument as exc:
        return "invalid", str(exc), exc.field


@pytest.mark.parametrize(
    "field", ["anonymousId", "userId", "event", "name", "type", "properties", "traits", "context", "timestamp", "messageId", "groupId"]
)
@pytest.mark.parametrize("kind", ["track", "page", "identify", "group"])
def test_a_top_level_infinity_is_null_as_in_the_copying_path(field, kind):
    # JSON.stringify and removeUndefined make Infinity null: a string field then has no value at all.
    text = json.dumps({"type": kind, "timestamp": "2024-03-15T12:34:56.789Z", "messageId": "m", "properties": {"kameleoonVisitorCode": "v"}})
    event = jsonwire.loads(text[:-1] + f', "{field}": 1e400}}')
    for subscription in PRESETS:
        if subscription.matches(event):
            action = subscription.action
            reference = checked(lambda: action.body(validate(subscription.mapping.resolve(event), action.by_name)))
            assert checked(lambda: action.body(action.validator(subscription.payload(event)))) == reference
            assert checked(lambda: subscription.body(event)) == reference
