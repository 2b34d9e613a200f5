"""mapping-kit directives: our compile_mapping/resolve against goldens recorded from
@segment/actions-core's transform (tools/oracle/record_mapping.js)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from service.errors import MappingError
from service.routing.mapping import jsvalue as js
from service.routing.mapping.directives import compile_mapping

GOLDENS = json.loads((Path(__file__).parent / "goldens" / "mappings.json").read_text(encoding="utf-8"))["cases"]


def _nest(spec: dict):
    if spec["kind"] == "json_text":
        return "[" * spec["depth"] + "]" * spec["depth"]
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


# ------------------------------------------------------------------ beyond the goldens

_DEEP_MAPPINGS = {
    "path": {"out": {"@path": "$.properties.deep"}},
    "whole": {"@path": "$.properties"},
    "json": {"out": {"@json": {"mode": "encode", "value": {"@path": "$.properties.deep"}}}},
    "flatten": {"out": {"@flatten": {"separator": ".", "value": {"@path": "$.properties.deep"}}}},
    "template": {"out": {"@template": "{{properties.deep}}"}},
    "exclude": {"out": {"@excludeWhenNull": {"@path": "$.properties.deep"}}},
    "decode": {"out": {"@json": {"mode": "decode", "value": {"@path": "$.properties.text"}}}},
    "merge": {"out": {"@merge": {"direction": "right", "objects": [{"@path": "$.properties.deep"}]}}},
    "arrayPath": {"out": {"@arrayPath": ["$.properties.deep", {"x": {"@path": "$.a"}}]}},
    "if": {"out": {"@if": {"blank": {"@path": "$.properties.deep"}, "then": 1, "else": 2}}},
    "replace": {"out": {"@replace": {"pattern": "[", "replacement": "(", "value": {"@path": "$.properties.text"}}}},
}


@pytest.mark.parametrize("kind", ["object", "array"])
@pytest.mark.parametrize("name", sorted(_DEEP_MAPPINGS))
def test_pathological_nesting_never_recurses(name: str, kind: str) -> None:
    """30 000 levels: Segment's runtime overflows its stack here; we must not crash."""
    depth = 30_000
    event = {"type": "track", "properties": {"deep": _nest({"depth": depth, "kind": kind}), "text": "[" * depth + "]" * depth}}
    compiled = compile_mapping(_DEEP_MAPPINGS[name])
    try:
        compiled.resolve(event)
    except MappingError as exc:
        assert "nested" in str(exc)


def test_json_parse_deep_fallback_matches_json_loads() -> None:
    import random

    rng = random.Random(7)

    def doc(level: int):
        r = rng.random()
        if level > 4 or r < 0.3:
            return rng.choice([None, True, False, 0, -1.5, 12345678901234567890, "s", "é😀\n", 1e300])
        if r < 0.65:
            return [doc(level + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["a", "b", "1", "0", "é", ""]): doc(level + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(300):
        text = json.dumps(doc(0), indent=rng.choice([None, 1]))
        assert js._parse_deep(text) == js.json_parse(text)
    for bad in ["[1,]", '{"a":1,}', "[", "]", '{"a" 1}', "[1 2]", "NaN", "", "01", "[1]x"]:
        with pytest.raises(js.JSONSyntaxError):
            js._parse_deep(bad)
        with pytest.raises(js.JSONSyntaxError):
            js.json_parse(bad)
    deep = js.json_parse("[" * 50_000 + "]" * 50_000)
    depth = 0
    while deep:
        deep = deep[0]
        depth += 1
    assert depth == 49_999


def test_output_does_not_alias_the_event() -> None:
    event = {"type": "track", "properties": {"a": {"b": [1, {"c": 2}]}}}
    out = compile_mapping({"p": {"@path": "$.properties"}}).resolve(event)
    out["p"]["a"]["b"][1]["c"] = 99
    out["p"]["x"] = 1
    assert event == {"type": "track", "properties": {"a": {"b": [1, {"c": 2}]}}}


def test_compile_once_resolve_many() -> None:
    compiled = compile_mapping({"id": {"@path": "$.userId"}, "name": {"@template": "{{traits.first}} {{traits.last}}"}})
    assert compiled.resolve({"userId": "u1", "traits": {"first": "A", "last": "B"}}) == {"id": "u1", "name": "A B"}
    assert compiled.resolve({}) == {"name": " "}


def test_invalid_mapping_names_path_and_directive() -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping({"properties": {"foo": {"@path": 5}}})
    assert str(info.value) == "/properties/foo/@path should be a string or a mapping directive but it is a number."


def test_liquid_is_refused_at_compile_time() -> None:
    with pytest.raises(MappingError, match="@liquid is not supported"):
        compile_mapping({"a": [{"b": {"@liquid": "{{ userId }}"}}]})
