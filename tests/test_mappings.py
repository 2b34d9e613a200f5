"""mapping-kit directives: our compile_mapping/resolve against goldens recorded from
@segment/actions-core's transform (tools/oracle/record_mapping.js)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from service.errors import MappingError
from service.mapping import jsvalue as js
from service.mapping.directives import compile_mapping

GOLDENS = json.loads((Path(__file__).parent / "goldens" / "mappings.json").read_text(encoding="utf-8"))["cases"]


def _nest(spec: dict):
    value = spec.get("leaf", 1)
    for _ in range(spec["depth"]):
        value = [value] if spec["kind"] == "array" else {spec.get("key", "a"): value, "n": None}
    return value


def _event(case: dict) -> dict:
    event = copy.deepcopy(case["event"])
    gen = case.get("event_gen")
    if gen:
        event.setdefault("properties", {})[gen["field"]] = _nest(gen)
    return event


def _uses_liquid(mapping) -> bool:
    return "@liquid" in json.dumps(mapping)


@pytest.mark.parametrize("case", GOLDENS, ids=[c["name"] for c in GOLDENS])
def test_mapping(case: dict) -> None:
    mapping = case["mapping"]
    if case["invalid"] is not None:
        with pytest.raises(MappingError) as info:
            compile_mapping(mapping)
        assert str(info.value) == case["invalid"]
        return
    if _uses_liquid(mapping):
        # We refuse @liquid at start-up rather than approximate liquidjs.
        with pytest.raises(MappingError, match="@liquid is not supported"):
            compile_mapping(mapping)
        return
    compiled = compile_mapping(mapping)
    event = _event(case)
    if "error" in case:
        with pytest.raises(MappingError) as info:
            compiled.resolve(event)
        assert str(info.value) == case["error"]
        return
    output = compiled.resolve(event)
    if case.get("output_undefined"):
        assert output is js.UNDEFINED
        return
    if "output_json" in case:
        assert js.json_stringify(output) == case["output_json"]
        return
    expected = case["output"]
    assert output == expected
    # Same key order and number formatting as JSON.stringify of Segment's result.
    assert js.json_stringify(output) == js.json_stringify(expected)
