"""Segment's trigger language: our compile_trigger/matches against goldens recorded
from @segment/destination-subscriptions (tools/oracle/record_mapping.js)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from service.errors import TriggerError
from service.routing.mapping import jsvalue as js
from service.routing.mapping.triggers import compile_trigger, parse_fql

GOLDENS = json.loads((Path(__file__).parent / "goldens" / "triggers.json").read_text(encoding="utf-8"))["cases"]


def _id(case: dict) -> str:
    return repr(case["subscribe"])[1:-1][:80]


def _same_ast(ours, theirs) -> bool:
    if isinstance(theirs, dict):
        return isinstance(ours, dict) and ours.keys() == theirs.keys() and all(_same_ast(ours[k], theirs[k]) for k in theirs)
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(map(_same_ast, ours, theirs))
    if isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return js.is_number(ours) and (ours == theirs or (math.isnan(ours) and theirs is None))
    if theirs is None and isinstance(ours, float) and math.isnan(ours):
        return True  # NaN is recorded as null
    return type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("case", GOLDENS, ids=_id)
def test_trigger(case: dict) -> None:
    text = case["subscribe"]
    if case["error"] is not None:
        with pytest.raises(TriggerError) as info:
            compile_trigger(text)
        assert str(info.value) == case["error"]
        return
    trigger = compile_trigger(text)
    assert _same_ast(parse_fql(text), case["ast"]), parse_fql(text)
    for i, result in enumerate(case["events"]):
        event = result["event"]
        if result.get("error"):
            with pytest.raises(TriggerError) as info:
                trigger.matches(event)
            assert str(info.value) == result["error"], f"event #{i}: {event}"
        else:
            assert trigger.matches(event) is result["match"], f"event #{i}: {event}"


def test_compile_is_reusable_and_cheap() -> None:
    trigger = compile_trigger('type = "track" and properties.n > 2')
    assert trigger.matches({"type": "track", "properties": {"n": 3}})
    assert not trigger.matches({"type": "track", "properties": {"n": 2}})
    assert not trigger.matches({"type": "page"})


def test_deeply_nested_event_does_not_recurse() -> None:
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    trigger = compile_trigger('properties.a.a.a != null and contains(event, "x")')
    assert trigger.matches({"event": "x", "properties": deep})


def test_error_is_trigger_error() -> None:
    with pytest.raises(TriggerError):
        compile_trigger("type")
    # Segment takes the end-of-input token as the value: "type =" means type == "eos".
    assert compile_trigger("type =").matches({"type": "eos"})
    with pytest.raises(TriggerError):
        compile_trigger('type = "track" and (')
