"""Destination filters against Segment's engine: goldens recorded from @segment/tsub and
@segment/fql-ts (tools/oracle/record_filters.js), through the pure functions."""

from __future__ import annotations

import copy

import pytest

from service.errors import FilterEvaluationError, FQLError
from service.routing.filters.evaluate import matches
from service.routing.filters.fql import compile_fql, where
from service.routing.filters.glob import glob_matches
from service.routing.filters.load import compile_all
from service.routing.mapping.fql_lexer import LexError, lex_positions
from service.routing.mapping.jsvalue import json_stringify
from tests.conftest import golden, plain_id

GOLDEN = golden("filters.json")
EVENTS = GOLDEN["events"]


def _id(text: str) -> str:
    return plain_id(text)[:70] or "<empty>"


def test_the_corpus_is_wide() -> None:
    decisions = sum(len(c.get("results", ())) for c in GOLDEN["conditions"])
    assert decisions >= 2000 and len(GOLDEN["suites"]) >= 20 and len(GOLDEN["globs"]) >= 80
    assert any(c.get("ir_expected") is not None for c in GOLDEN["conditions"])


@pytest.mark.parametrize("case", GOLDEN["conditions"], ids=lambda c: _id(c["if"]))
def test_condition(case: dict) -> None:
    text = case["if"]
    if "compile_error" in case:
        with pytest.raises(FQLError) as raised:
            compile_fql(text)
        assert f"{where(text, raised.value.offset)}: {raised.value}" == case["compile_error"]
        return
    matcher = compile_fql(text)
    assert matcher == case["matcher"]
    if "ir_expected" in case:  # the form Segment's own compiler gave for this text
        assert matcher["ir"] == case["ir_expected"], case["source"]
    for event, result in zip(EVENTS, case["results"], strict=True):
        if isinstance(result, dict):
            with pytest.raises(FilterEvaluationError):
                matches(matcher, event)
        else:
            assert matches(matcher, event) is result, event


@pytest.mark.parametrize("case", GOLDEN["globs"], ids=lambda g: _id(f"{g['pattern']} ~ {g['text']}"))
def test_glob(case: dict) -> None:
    assert glob_matches(case["pattern"], case["text"]) is case["match"]
    ir = ["match", {"value": case["text"]}, {"value": case["pattern"]}]
    assert matches({"type": "fql", "ir": ir}, {}) is case["match"]


@pytest.mark.parametrize("suite", GOLDEN["suites"], ids=lambda s: s["name"])
def test_suite(suite: dict) -> None:
    filters = compile_all(suite["filters"])
    for case in suite["cases"]:
        event = copy.deepcopy(case["event"])
        verdict = filters.apply(event)
        assert verdict.stopped_by == case["stopped_by"], case["event"]
        if case["output"] is None:
            assert verdict.event is None
            assert ("error" in dict(verdict.outcomes).values()) is ("throws" in case)
        else:
            assert json_stringify(verdict.event) == case["output"]


@pytest.mark.parametrize("case", GOLDEN["tokens"], ids=lambda t: _id(t["fql"]))
def test_tokens_as_fql_ts_lexes_them(case: dict) -> None:
    if case["error"] is None:
        tokens, ends = lex_positions(case["fql"])
        assert [[t.type, t.value] for t in tokens] == case["tokens"]
        assert len(ends) == len(tokens) and ends == sorted(ends)
        return
    with pytest.raises(LexError) as raised:
        lex_positions(case["fql"])
    assert str(raised.value) == case["error"]["message"]
    # fql-ts's cursor: line from 0, column = units consumed on the line. It also counts each look
    # past the end of the text and each \r as a move; elsewhere ours must be the same.
    offset = raised.value.offset
    if offset < len(case["fql"]) and "\r" not in case["fql"]:
        text = case["fql"][:offset]
        assert (text.count("\n"), len(text) - (text.rfind("\n") + 1)) == (case["error"]["line"], case["error"]["column"])
