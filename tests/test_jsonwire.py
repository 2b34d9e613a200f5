"""jsonwire's fast path (orjson) says exactly what its exact path (the standard library with
JavaScript's rules) says, or hands over to it.

Every comparison is between the two paths of service.jsonwire: the exact path is the one the
golden fixtures were checked against (tests/goldens), the fast path must never differ from it:
same values (numbers compared as JavaScript numbers), same key order, same bytes out, same
errors.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import jsonwire
from service.jsonwire import _exact_dumps, _exact_loads, js_number_text

FAST = settings(max_examples=250, deadline=None)


def canon(value):
    """A value as JavaScript tells values apart: numbers by their text, dicts by items in order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("number", js_number_text(value) if not (isinstance(value, float) and math.isnan(value)) else "NaN")
    if isinstance(value, dict):
        return ("object", tuple((key, canon(item)) for key, item in value.items()))
    return ("array", tuple(canon(item) for item in value))


def outcome(fn, arg):
    try:
        return "ok", fn(arg)
    except Exception as exc:  # noqa: BLE001 -- the two paths must fail alike
        return "error", (type(exc).__name__, str(exc))


def same_loads(text) -> None:
    fast, exact = outcome(jsonwire.loads, text), outcome(_exact_loads, text)
    assert fast[0] == exact[0], (text, fast, exact)
    if fast[0] == "ok":
        assert canon(fast[1]) == canon(exact[1]), text
    else:
        assert fast == exact


def same_dumps(value) -> None:
    fast, exact = outcome(jsonwire.dumps, value), outcome(_exact_dumps, value)
    assert fast == exact, (value, fast, exact)


keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["0", "1", "10", "01", "4294967294", "4294967295", "-1", "1.5", "__proto__", "a", "b"]),
    st.integers(0, 2**33).map(str),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-(2**54), 2**54),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6).map(lambda x: round(x, 2)),
    st.integers(-(2**53), 2**53).map(float),
    st.sampled_from([0.0, -0.0, 1.0, 1e-7, 1e-6, 1.5e-6, 1e-5, 1e15, 1e16, 1e20, 1e21, 1.5e300, 5e-324, 123456789012345680.0]),
)
texts = st.one_of(st.text(max_size=10), st.sampled_from(["\ud800", "a\udfffb", "\u2028", "\x00\x1f\x7f", '"\\', "é", "😀"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25)
# What reaches dumps: integers beyond 2**53 do not (parsing and Struct conversion make them doubles, as
# JavaScript does); the exact path prints such an int as it is or rounded depending on its neighbours.
safe_scalars = st.one_of(st.none(), st.booleans(), numbers.filter(lambda n: not isinstance(n, int) or abs(n) <= 2**53), texts)
dumped = st.recursive(safe_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


def spellings(value, rng: random.Random) -> list[str]:
    """Several JSON texts of one value: compact, spaced, indented, ASCII-escaped."""
    out = []
    for ensure_ascii in (False, True):
        for kwargs in ({"separators": (",", ":")}, {}, {"indent": 1}):
            try:
                out.append(json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False, **kwargs))
            except (ValueError, UnicodeEncodeError):
                pass
    return out


@FAST
@given(value=values, seed=st.integers(0, 2**16))
def test_loads_fast_path_agrees_with_the_exact_path(value, seed):
    for text in spellings(value, random.Random(seed)):
        same_loads(text)
        same_loads(text.encode("utf-8", "surrogatepass"))


@FAST
@given(value=dumped)
def test_dumps_fast_path_agrees_with_the_exact_path(value):
    same_dumps(value)


@FAST
@given(value=st.one_of(dumped, st.floats(), st.lists(st.floats(), max_size=4)), data=st.data())
def test_dumps_agrees_on_non_finite_numbers(value, data):
    same_dumps({"x": value, "y": data.draw(st.sampled_from([math.nan, math.inf, -math.inf, 1.0]))})


@pytest.mark.parametrize(
    "text",
    [
        '{"b":1,"a":2,"b":3}',
        '{"2":1,"1":2,"a":3,"0":4}',
        '{ "1" : 1 }',
        '{"a":{"__proto__":1,"x":2}}',
        '{"\\u0031":1,"a":2}',
        '{"\\u005f_proto__":1}',
        '{"a":"\\ud800"}',
        '{"a":"\\udc00\\ud800"}',
        '{"a":1e400}',
        '{"a":-1e400}',
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":9007199254740993}',
        '{"a":-9007199254740993}',
        '{"a":18446744073709551616}',
        '{"a":123456789012345678901234567890}',
        '{"a":1.0}',
        '{"a":-0}',
        '{"a":-0.0}',
        '{"a":1E5}',
        '{"a":1e-7}',
        "[1,2,]",
        '{"a":1,}',
        "",
        " ",
        "{",
        "nul",
        '"x"',
        "1",
        "[]",
        "\ufeff{}",
        '{"a":"\x01"}',
        '{"ip":"203.0.113.7","t":"2024-06-01T00:00:00Z"}',
        '{"a":[{"0":1}]}',
        '{"a":"1234567890123456789"}',
        '{"a":' * 70 + "1" + "}" * 70,
        "[" * 2000 + "]" * 2000,
    ],
)
def test_loads_edge_cases_agree(text):
    same_loads(text)
    same_loads(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "value",
    [
        42.0,
        -0.0,
        1e16,
        1e21,
        1e-6,
        1e-7,
        1.5e-7,
        0.00001,
        2.0**60,
        2**53 + 1,
        2**64,
        -(2**63) - 1,
        [2**60, 1.0],
        "\ud800",
        {"k\udfff": 1},
        {"a": "v1.0,", "b": 1.5},
        {"a": [1.0]},
        {"a": {"b": 2.0}},
        [1e300],
        "1e+5",
        {"1": 1, "a": 2},
        [[[[]]]],
    ],
)
def test_dumps_edge_cases_agree(value):
    same_dumps(value)


def test_dumps_keeps_javascript_number_spelling():
    assert jsonwire.dumps({"a": 42.0, "b": 1e21, "c": 1e-7, "d": 1e-6, "e": 1e16, "f": 0.5}) == (
        b'{"a":42,"b":1e+21,"c":1e-7,"d":0.000001,"e":10000000000000000,"f":0.5}'
    )


def test_loads_orders_index_keys_first_and_drops_proto():
    assert list(jsonwire.loads('{"b":1,"1":2,"__proto__":3,"0":4}')) == ["0", "1", "b"]
