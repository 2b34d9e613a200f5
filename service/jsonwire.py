"""JSON exactly as Segment's runtime (JavaScript) reads and writes it.

Kameleoon must receive byte-identical bodies, so numbers follow JavaScript:
every JSON number is a double; an integral one prints as an integer (``42``,
not ``42.0``), and exponents follow ``Number.prototype.toString``
(``1e-7``, ``0.00001``, ``1e+21``). NaN and infinities print as ``null``.
Strings print unescaped (``ensure_ascii=False``), lone surrogates as ``\\udXXX``.

Two paths give the same results. The fast one is orjson (about 3x quicker than
the standard library both ways); the exact one (the standard library with
hooks) is taken wherever orjson would not say the same thing: on input, keys
that may be array indices (JavaScript lists them first), ``__proto__`` keys,
integers beyond 2**53 (doubles in JavaScript), lone surrogates, infinities
and anything orjson refuses; on output, floats JavaScript spells otherwise
(``42.0``, exponents), lone surrogates, integers beyond 64 bits. Both screens
are byte scans of a copy of the text with every digit made ``0``; they may
send harmless input the exact way (a string that looks like a number), never
the reverse. tests/test_jsonwire.py holds the two paths to each other.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from google.protobuf import struct_pb2

_SAFE_INT = 2**53
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def js_number(value: float) -> int | float | None:
    """The value JavaScript holds for this double: an int when it is a safe integer, None
    (JSON's null) for NaN and infinities. :func:`dumps` prints any float as JavaScript does."""
    if math.isnan(value) or math.isinf(value):
        return None
    if value.is_integer() and abs(value) <= _SAFE_INT:
        return int(value)
    return value


def js_number_text(value: int | float) -> str:
    """``String(x)`` in JavaScript for a number (or a boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is int and -_SAFE_INT <= value <= _SAFE_INT:
        return str(value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    # the value is 0.<digits> * 10**n
    n = len(whole) + (int(exponent) if exponent else 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    suffix = f"e+{e}" if e >= 0 else f"e-{-e}"
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + suffix


def _parse_int(text: str) -> int | float | None:
    value = int(text)
    if -_SAFE_INT <= value <= _SAFE_INT:
        return value
    return js_number(float(text))


def _parse_float(text: str) -> int | float | None:
    return js_number(float(text))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_ARRAY_INDEX_MAX = 2**32 - 2
# Segment's runtime loses "__proto__" keys at every depth (object spreads treat them as the prototype).
PROTO_KEY = "__proto__"


def _is_index(key: str) -> bool:
    """Whether JavaScript treats ``key`` as an array index (such keys come first, ascending)."""
    return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0") and int(key) <= _ARRAY_INDEX_MAX


def js_key_order(keys) -> list[str]:
    """Keys in the order a JavaScript object enumerates them: array indices ascending, then the rest as given."""
    keys = list(keys)
    indices = [key for key in keys if key[:1].isdigit() and _is_index(key)]
    if not indices:
        return keys
    chosen = set(indices)
    return sorted(indices, key=int) + [key for key in keys if key not in chosen]


def _js_object(pairs: list[tuple[str, Any]]) -> dict:
    values = dict(pairs)  # a repeated key keeps its first place and its last value, as in JavaScript
    values.pop(PROTO_KEY, None)
    if any(key[:1].isdigit() for key in values):
        return {key: values[key] for key in js_key_order(values)}
    return values


# Input that needs the object hook of the exact parse: keys that may be array indices (they
# start with a digit), "__proto__", or escapes (keys that might be either). The cheap pattern
# screens; the exact one decides (a value such as an IP address also starts with a digit).
_MAYBE_SPECIAL = re.compile(r'"[0-9]|__proto__|\\u')
_SPECIAL_INPUT = re.compile(r'"[0-9][^"\\]*"\s*:|__proto__|\\u')
# Output where Python and JavaScript print a number differently: integral floats ("42.0"),
# exponents ("1e-07", "1e+20"), where a value starts (or is the whole text). A string that merely looks
# so only costs the slow path.
_ODD_NUMBER = re.compile(r"(?:(?<=[:,\[])|^)-?[0-9]+(?:\.[0-9]+)?(?:\.0|e[+-][0-9]+)(?=[,}\]]|$)")

# The fast path's screens work on a copy of the text with digits and punctuation folded, so that one
# substring test finds each shape:
#   input (every digit "0", "{" as ",", whitespace out of the way):
#     ',"0' a key (or array item) starting with a digit; 16 zeros an integer that may pass 2**53;
#   output (digits but 0 made "1", "}" and "]" as ",", "-" as "+"):
#     '.0,' an integral float as orjson prints it ("42.0"); '1e+' any exponent ("1e+16", "1.5e-7": the
#     shortest digits of a double never end in 0).
_INPUT_SHAPE = bytes.maketrans(b"0123456789{", b"0000000000,")
_INPUT_SPACE = b" \t\n\r"
_OUTPUT_SHAPE = bytes.maketrans(b"123456789}]-", b"111111111,,+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SAFE_INT_DIGITS = b"0" * 16  # 2**53 has 16 digits: shorter integers are exact doubles
# orjson sizes its parse for the worst case, about 12 bytes per byte of text, even for a text it
# refuses (100,000 nested "[" took 2.4 MB): larger texts, rare among events, take the standard
# library's parse, which allocates for what it builds.
_FAST_LOADS_MAX_BYTES = 64 * 1024


def loads(text: str | bytes) -> Any:
    """Parse JSON as Segment's runtime holds it: index-like keys come first, "__proto__"
    keys are gone, integers beyond 2**53 are rounded as doubles."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data) > _FAST_LOADS_MAX_BYTES:
        return _exact_loads(text)
    shape = data.translate(_INPUT_SHAPE, _INPUT_SPACE)
    if b',"0' in shape or _SAFE_INT_DIGITS in shape or b"__proto__" in data:
        return _exact_loads(text)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:  # invalid JSON (the exact parse words the error), lone surrogates, infinities
        return _exact_loads(text)
    if b"\\" in data and b"\\u" in data and _escaped_keys_matter(value):  # one byte's search first: escapes are rare
        return _exact_loads(text)
    return value


def _escaped_keys_matter(value: Any) -> bool:
    """Whether an escape may have spelt a key the screen could not see (an index, "__proto__")."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for key, child in item.items():
                if key[:1].isdigit() or key == PROTO_KEY:
                    return True
                if type(child) is dict or type(child) is list:
                    stack.append(child)
        elif type(item) is list:
            stack.extend(child for child in item if type(child) is dict or type(child) is list)
    return False


def _exact_loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _MAYBE_SPECIAL.search(text) is None or _SPECIAL_INPUT.search(text) is None:
        return json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant, object_pairs_hook=_js_object)


def dumps(value: Any) -> bytes:
    """Serialise as JavaScript's JSON.stringify would, as UTF-8 bytes."""
    try:
        out = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: lone surrogates, integers beyond 64 bits, nesting past 254
        return _exact_dumps(value)
    shape = out.translate(_OUTPUT_SHAPE)
    if b".0," in shape or b"1e+" in shape or shape.endswith(b".0"):
        # Numbers to spell as JavaScript does: orjson again, each float given as its JavaScript text.
        try:
            return orjson.dumps(_js_numbers(value))
        except (TypeError, RecursionError):
            return _exact_dumps(value)
    return out


def _js_number_fragment(value: float | int) -> Any:
    """A number as JSON.stringify spells it (non-finite: null; ints beyond 2**53 rounded as doubles)."""
    if type(value) is float and not math.isfinite(value):
        return None
    return orjson.Fragment(js_number_text(value).encode())


def _js_numbers(value: Any) -> Any:
    """A copy of ``value`` whose floats (and ints beyond 2**53) are orjson Fragments of their JavaScript text."""
    t = type(value)
    if t is float or (t is int and not -_SAFE_INT <= value <= _SAFE_INT):
        return _js_number_fragment(value)
    if t is dict:
        return {key: _js_numbers(item) for key, item in value.items()}
    if t is list:
        return [_js_numbers(item) for item in value]
    return value


def _exact_dumps(value: Any) -> bytes:
    try:
        text = _dumps(value)
        if not (".0" in text or "e+" in text or "e-" in text) or _ODD_NUMBER.search(text) is None:
            return text.encode("utf-8")
    except (UnicodeEncodeError, ValueError):  # lone surrogates; NaN or infinities
        pass
    return _slow_dumps(value).encode("utf-8")


def is_well_formed(text: str) -> bool:
    """``text.isWellFormed()`` in JavaScript, for a Python str: no surrogate code point in it, so UTF-8
    (and so SQLite's text, a protobuf string, an HTTP header) can hold it as it is."""
    return text.isascii() or not _SURROGATE.search(text)


def _js_string(text: str) -> str:
    encoded = json.encoder.encode_basestring(text)
    if not is_well_formed(encoded):
        encoded = "".join(f"\\u{ord(ch):04x}" if "\ud800" <= ch <= "\udfff" else ch for ch in encoded)
    return encoded


def _slow_dumps(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _js_string(value)
    if isinstance(value, float):
        return js_number_text(value) if math.isfinite(value) else "null"
    if isinstance(value, int):
        return js_number_text(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_js_string(key)}:{_slow_dumps(item)}" for key, item in value.items()) + "}"
    return "[" + ",".join(_slow_dumps(item) for item in value) + "]"


def from_value(value: struct_pb2.Value) -> Any:
    """A google.protobuf.Value as the plain JSON value JavaScript would hold."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return js_number(value.number_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


def from_struct(struct: struct_pb2.Struct) -> dict:
    """A google.protobuf.Struct as a dict, numbers as JavaScript would print them.

    Protobuf maps carry no key order (not even on the wire), so keys come out
    sorted (array-index keys first, as JavaScript orders them): the same
    Struct always gives the same body. "__proto__" keys are left out, as
    Segment's runtime loses them.
    """
    fields = struct.fields
    return {key: from_value(fields[key]) for key in js_key_order(sorted(fields)) if key != PROTO_KEY}


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for a JSON value."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return js_number_text(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"
