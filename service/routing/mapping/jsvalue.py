"""JavaScript value semantics over JSON-shaped Python values.

Segment's runtime is JavaScript: its trigger and mapping code reads event
fields with ``obj && obj[key]``, stringifies with ``String(x)``, compares
with ``==`` and orders object keys the JavaScript way. This module gives
those operations for Python values as they come out of ``json.loads``:

    JS            Python
    undefined     UNDEFINED (a singleton, distinct from None)
    null          None
    boolean       bool
    number        int or float (never bool)
    string        str (lone surrogates kept as single code points)
    array         list
    object        dict
    function      JSFunction (only reachable through a prototype member,
                  e.g. ``"abc".search``)

Everything that walks event data is iterative, so deeply nested events
cannot raise RecursionError here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from service.jsonwire import is_well_formed, js_number_text


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()
"""JavaScript ``undefined``: a key that is absent, a path that found nothing."""

_MISSING = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSFunction:
    """A built-in JavaScript function reached through a prototype member."""

    __slots__ = ("name", "length")

    def __init__(self, name: str, length: int):
        self.name = name
        self.length = length

    def __repr__(self) -> str:
        return f"JSFunction({self.name!r})"

    def source(self) -> str:
        return f"function {self.name}() {{ [native code] }}"


def _protos(spec: dict[str, int | str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, str):
            name, _, length = value.partition(":")
            out[key] = JSFunction(name, int(length))
    return out


# Own members of the built-in prototypes (Node 20), as name -> "fnName:length".
_OBJECT_PROTO = _protos(
    {
        "constructor": "Object:1",
        "__defineGetter__": "__defineGetter__:2",
        "__defineSetter__": "__defineSetter__:2",
        "hasOwnProperty": "hasOwnProperty:1",
        "__lookupGetter__": "__lookupGetter__:1",
        "__lookupSetter__": "__lookupSetter__:1",
        "isPrototypeOf": "isPrototypeOf:1",
        "propertyIsEnumerable": "propertyIsEnumerable:1",
        "toString": "toString:0",
        "valueOf": "valueOf:0",
        "toLocaleString": "toLocaleString:0",
    }
)
OBJECT_PROTO_NAMES = frozenset(_OBJECT_PROTO) | {"__proto__"}


def _with_object(spec: dict[str, int | str]) -> dict[str, Any]:
    merged = dict(_OBJECT_PROTO)
    merged.update(_protos(spec))
    return merged


_STRING_PROTO = _with_object(
    {
        "constructor": "String:1",
        "anchor": "anchor:1",
        "at": "at:1",
        "big": "big:0",
        "blink": "blink:0",
        "bold": "bold:0",
        "charAt": "charAt:1",
        "charCodeAt": "charCodeAt:1",
        "codePointAt": "codePointAt:1",
        "concat": "concat:1",
        "endsWith": "endsWith:1",
        "fontcolor": "fontcolor:1",
        "fontsize": "fontsize:1",
        "fixed": "fixed:0",
        "includes": "includes:1",
        "indexOf": "indexOf:1",
        "isWellFormed": "isWellFormed:0",
        "italics": "italics:0",
        "lastIndexOf": "lastIndexOf:1",
        "link": "link:1",
        "localeCompare": "localeCompare:1",
        "match": "match:1",
        "matchAll": "matchAll:1",
        "normalize": "normalize:0",
        "padEnd": "padEnd:1",
        "padStart": "padStart:1",
        "repeat": "repeat:1",
        "replace": "replace:2",
        "replaceAll": "replaceAll:2",
        "search": "search:1",
        "slice": "slice:2",
        "small": "small:0",
        "split": "split:2",
        "strike": "strike:0",
        "sub": "sub:0",
        "substr": "substr:2",
        "substring": "substring:2",
        "sup": "sup:0",
        "startsWith": "startsWith:1",
        "toString": "toString:0",
        "toWellFormed": "toWellFormed:0",
        "trim": "trim:0",
        "trimStart": "trimStart:0",
        "trimLeft": "trimStart:0",
        "trimEnd": "trimEnd:0",
        "trimRight": "trimEnd:0",
        "toLocaleLowerCase": "toLocaleLowerCase:0",
        "toLocaleUpperCase": "toLocaleUpperCase:0",
        "toLowerCase": "toLowerCase:0",
        "toUpperCase": "toUpperCase:0",
        "valueOf": "valueOf:0",
    }
)
_ARRAY_PROTO = _with_object(
    {
        "constructor": "Array:1",
        "at": "at:1",
        "concat": "concat:1",
        "copyWithin": "copyWithin:2",
        "fill": "fill:1",
        "find": "find:1",
        "findIndex": "findIndex:1",
        "findLast": "findLast:1",
        "findLastIndex": "findLastIndex:1",
        "lastIndexOf": "lastIndexOf:1",
        "pop": "pop:0",
        "push": "push:1",
        "reverse": "reverse:0",
        "shift": "shift:0",
        "unshift": "unshift:1",
        "slice": "slice:2",
        "sort": "sort:1",
        "splice": "splice:2",
        "includes": "includes:1",
        "indexOf": "indexOf:1",
        "join": "join:1",
        "keys": "keys:0",
        "entries": "entries:0",
        "values": "values:0",
        "forEach": "forEach:1",
        "filter": "filter:1",
        "flat": "flat:0",
        "flatMap": "flatMap:1",
        "map": "map:1",
        "every": "every:1",
        "some": "some:1",
        "reduce": "reduce:1",
        "reduceRight": "reduceRight:1",
        "toLocaleString": "toLocaleString:0",
        "toString": "toString:0",
        "toReversed": "toReversed:0",
        "toSorted": "toSorted:1",
        "toSpliced": "toSpliced:2",
        "with": "with:2",
    }
)
_NUMBER_PROTO = _with_object(
    {
        "constructor": "Number:1",
        "toExponential": "toExponential:1",
        "toFixed": "toFixed:1",
        "toPrecision": "toPrecision:1",
        "toString": "toString:1",
        "valueOf": "valueOf:0",
        "toLocaleString": "toLocaleString:0",
    }
)
_BOOLEAN_PROTO = _with_object({"constructor": "Boolean:1", "toString": "toString:0", "valueOf": "valueOf:0"})
_FUNCTION_PROTO = _with_object(
    {
        "constructor": "Function:1",
        "apply": "apply:2",
        "bind": "bind:1",
        "call": "call:1",
        "toString": "toString:0",
    }
)

_MAX_INDEX = 4294967294


def array_index(key: str) -> int:
    """The array index a property key names, or -1 (JS canonical numeric strings only)."""
    if not key or not ("0" <= key[0] <= "9") or not key.isascii() or not key.isdigit():
        return -1
    if key[0] == "0" and len(key) > 1:
        return -1
    n = int(key)
    return n if n <= _MAX_INDEX else -1


def has_surrogates(s: str) -> bool:
    """Whether ``s`` has characters outside the BMP (two UTF-16 units each)."""
    return not s.isascii() and any(ord(c) > 0xFFFF for c in s)


def well_formed(s: str) -> str:
    """``s.toWellFormed()`` in JavaScript: each lone surrogate as U+FFFD (text UTF-8, and so protobuf, can hold)."""
    if is_well_formed(s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def utf16_units(s: str) -> list[str]:
    """``s`` as UTF-16 code units, each a one-character str (surrogates kept alone)."""
    if not has_surrogates(s):
        return list(s)
    out: list[str] = []
    for c in s:
        o = ord(c)
        if o > 0xFFFF:
            o -= 0x10000
            out.append(chr(0xD800 + (o >> 10)))
            out.append(chr(0xDC00 + (o & 0x3FF)))
        else:
            out.append(c)
    return out


def from_units(units: list[str] | str) -> str:
    """Join UTF-16 units back, pairing surrogates into code points."""
    s = "".join(units)
    if not any("\ud800" <= c <= "\udfff" for c in s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def pair_surrogates(s: str) -> str:
    """Join adjacent surrogate halves into one code point, as they read in UTF-16."""
    if is_well_formed(s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def js_len(s: str) -> int:
    """``s.length`` in JavaScript (UTF-16 code units)."""
    if s.isascii():
        return len(s)
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def get_prop(obj: Any, key: str) -> Any:
    """``obj[key]`` for a JS value that is neither undefined nor null."""
    t = type(obj)
    if t is dict:
        value = obj.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key == "__proto__":
            return {}
        return _OBJECT_PROTO.get(key, UNDEFINED)
    if t is list:
        i = array_index(key)
        if i >= 0:
            return obj[i] if i < len(obj) else UNDEFINED
        if key == "length":
            return len(obj)
        return _ARRAY_PROTO.get(key, UNDEFINED)
    if t is str:
        i = array_index(key)
        if i >= 0:
            if obj.isascii() or not has_surrogates(obj):
                return obj[i] if i < len(obj) else UNDEFINED
            units = utf16_units(obj)
            return units[i] if i < len(units) else UNDEFINED
        if key == "length":
            return js_len(obj)
        return _STRING_PROTO.get(key, UNDEFINED)
    if t is bool:
        return _BOOLEAN_PROTO.get(key, UNDEFINED)
    if t is int or t is float:
        return _NUMBER_PROTO.get(key, UNDEFINED)
    if t is JSFunction:
        if key == "name":
            return obj.name
        if key == "length":
            return obj.length
        return _FUNCTION_PROTO.get(key, UNDEFINED)
    return UNDEFINED


def truthy(v: Any) -> bool:
    """JavaScript truthiness."""
    t = type(v)
    if t is dict or t is list:
        return True
    if t is str:
        return v != ""
    if t is bool:
        return v
    if t is int:
        return v != 0
    if t is float:
        return v != 0 and v == v
    if v is None or v is UNDEFINED:
        return False
    return True


def walk(obj: Any, keys: tuple[str, ...]) -> Any:
    """``keys.reduce((o, k) => o && o[k], obj)``."""
    for key in keys:
        if type(obj) is dict:
            value = obj.get(key, _MISSING)
            if value is _MISSING:
                value = get_prop(obj, key)
            obj = value
        elif truthy(obj):
            obj = get_prop(obj, key)
        else:
            return obj
    return obj


def real_type_of(v: Any) -> str:
    """``Object.prototype.toString.call(v).slice(8, -1).toLowerCase()``."""
    t = type(v)
    if t is dict:
        return "object"
    if t is list:
        return "array"
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if v is None:
        return "null"
    if v is UNDEFINED:
        return "undefined"
    if t is JSFunction:
        return "function"
    return "object"


def typeof(v: Any) -> str:
    t = type(v)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if v is UNDEFINED:
        return "undefined"
    if t is JSFunction:
        return "function"
    return "object"


def is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def to_float(v: int | float) -> float:
    """A JSON number as the double JavaScript holds."""
    if type(v) is float:
        return v
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def number_to_string(v: int | float) -> str:
    """``String(n)`` for a JavaScript number."""
    return js_number_text(v)


_JS_WS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def js_trim(s: str) -> str:
    """``String.prototype.trim``."""
    return s.strip(_JS_WS)


_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
_RADIX = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)\Z")


def string_to_number(s: str) -> float:
    """``Number(s)`` for a string."""
    s = js_trim(s)
    if not s:
        return 0.0
    if _DECIMAL.match(s):
        if s.endswith("Infinity"):
            return -math.inf if s[0] == "-" else math.inf
        return float(s)
    if _RADIX.match(s):
        base = {"x": 16, "o": 8, "b": 2}[s[1].lower()]
        return to_float(int(s[2:], base))
    return math.nan


def to_number(v: Any) -> float:
    """``Number(v)``."""
    t = type(v)
    if t is bool:
        return 1.0 if v else 0.0
    if t is int or t is float:
        return to_float(v)
    if t is str:
        return string_to_number(v)
    if v is None:
        return 0.0
    if t is list:
        return string_to_number(to_string(v))
    return math.nan


def to_string(v: Any) -> str:
    """``String(v)``; arrays join like ``Array.prototype.join`` (iteratively)."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return number_to_string(v)
    if v is None:
        return "null"
    if v is UNDEFINED:
        return "undefined"
    if t is dict:
        return "[object Object]"
    if t is JSFunction:
        return v.source()
    if t is list:
        return _join_array(v)
    return str(v)


def _join_array(arr: list) -> str:
    # Each frame: [list, next index, parts]
    stack: list[list] = [[arr, 0, []]]
    while True:
        frame = stack[-1]
        items, i, parts = frame
        if i < len(items):
            frame[1] = i + 1
            item = items[i]
            if item is None or item is UNDEFINED:
                parts.append("")
            elif type(item) is list:
                stack.append([item, 0, []])
            else:
                parts.append(to_string(item))
            continue
        text = ",".join(parts)
        stack.pop()
        if not stack:
            return text
        stack[-1][2].append(text)


def loose_equals_empty_string(v: Any) -> bool:
    """``v == ''`` (abstract equality)."""
    t = type(v)
    if t is str:
        return v == ""
    if t is bool:
        return not v
    if t is int or t is float:
        return v == 0
    if t is list:
        return to_string(v) == ""
    return False


def js_keys(obj: dict) -> list[str]:
    """``Object.keys(obj)``: array-index keys ascending, then the rest in insertion order."""
    indexed = None
    for key in obj:
        if key and "0" <= key[0] <= "9" and array_index(key) >= 0:
            if indexed is None:
                indexed = []
            indexed.append(key)
    if indexed is None:
        return list(obj)
    indexed.sort(key=int)
    rest = [k for k in obj if not (k and "0" <= k[0] <= "9" and array_index(k) >= 0)]
    return indexed + rest


def js_ordered(obj: dict) -> bool:
    """Whether iterating ``obj`` already gives ``Object.keys`` order."""
    seen_other = False
    last = -1
    for key in obj:
        if key and "0" <= key[0] <= "9" and array_index(key) >= 0:
            n = int(key)
            if seen_other or n < last:
                return False
            last = n
        else:
            seen_other = True
    return True


# ---------------------------------------------------------------- JSON

from json.encoder import encode_basestring as _encode_basestring  # noqa: E402


def _quote(s: str) -> str:
    if s.isascii():
        return _encode_basestring(s)
    s = pair_surrogates(s)
    text = _encode_basestring(s)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _scalar_json(v: Any) -> str | None:
    """JSON text of a non-container, or None when JSON.stringify skips it."""
    t = type(v)
    if t is str:
        return _quote(v)
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        f = to_float(v)
        if f != f or f in (math.inf, -math.inf):
            return "null"
        return number_to_string(v)
    if v is None:
        return "null"
    return None  # undefined, functions


def json_stringify(value: Any) -> Any:
    """``JSON.stringify(value)``; UNDEFINED when JavaScript returns undefined."""
    t = type(value)
    if t is not dict and t is not list:
        text = _scalar_json(value)
        return UNDEFINED if text is None else text
    out: list[str] = []
    # Frames: (container, keys or None, next index, first-written flag holder)
    stack: list[list] = []

    def open_(c: Any) -> None:
        if type(c) is dict:
            out.append("{")
            stack.append([c, js_keys(c), 0, False])
        else:
            out.append("[")
            stack.append([c, None, 0, False])

    open_(value)
    while stack:
        frame = stack[-1]
        c, keys, i, wrote = frame
        if keys is None:
            if i >= len(c):
                out.append("]")
                stack.pop()
                continue
            frame[2] = i + 1
            item = c[i]
            if wrote:
                out.append(",")
            frame[3] = True
            ti = type(item)
            if ti is dict or ti is list:
                open_(item)
            else:
                text = _scalar_json(item)
                out.append("null" if text is None else text)
        else:
            if i >= len(keys):
                out.append("}")
                stack.pop()
                continue
            frame[2] = i + 1
            key = keys[i]
            item = c[key]
            ti = type(item)
            if ti is dict or ti is list:
                if wrote:
                    out.append(",")
                frame[3] = True
                out.append(_quote(key))
                out.append(":")
                open_(item)
            else:
                text = _scalar_json(item)
                if text is None:
                    continue
                if wrote:
                    out.append(",")
                frame[3] = True
                out.append(_quote(key))
                out.append(":")
                out.append(text)
    return "".join(out)


def _parse_int(s: str) -> int | float:
    if len(s) <= 15:
        return int(s)
    n = int(s)
    f = to_float(n)
    if f in (math.inf, -math.inf) or abs(f) >= 1e21:
        return f
    return int(number_to_string(f))  # the double's shortest digits, as JavaScript prints it


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name}")


class JSONSyntaxError(ValueError):
    pass


def json_parse(text: str) -> Any:
    """``JSON.parse(text)``; raises JSONSyntaxError where JavaScript throws."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except RecursionError:
        return _parse_deep(text)
    except ValueError as exc:
        raise JSONSyntaxError(str(exc)) from None


def _parse_deep(text: str) -> Any:
    """Iterative JSON parser for input nested too deeply for ``json.loads``."""
    decoder = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)
    ws = " \t\n\r"
    n = len(text)
    i = 0
    stack: list[list] = []  # [container, pending key]
    result: Any = _MISSING

    def skip(i: int) -> int:
        while i < n and text[i] in ws:
            i += 1
        return i

    def fail() -> None:
        raise JSONSyntaxError("invalid JSON")

    def push_value(v: Any) -> None:
        nonlocal result
        if not stack:
            result = v
            return
        top = stack[-1]
        if type(top[0]) is list:
            top[0].append(v)
        else:
            top[0][top[1]] = v

    expect_value = True
    i = skip(i)
    while True:
        if expect_value:
            if i >= n:
                fail()
            ch = text[i]
            if ch == "[":
                stack.append([[], None])
                i = skip(i + 1)
                if i < n and text[i] == "]":
                    i += 1
                    v = stack.pop()[0]
                    push_value(v)
                    expect_value = False
                continue
            if ch == "{":
                stack.append([{}, None])
                i = skip(i + 1)
                if i < n and text[i] == "}":
                    i += 1
                    v = stack.pop()[0]
                    push_value(v)
                    expect_value = False
                    continue
                if i >= n or text[i] != '"':
                    fail()
                try:
                    key, i = decoder.raw_decode(text, i)
                except ValueError:
                    fail()
                i = skip(i)
                if i >= n or text[i] != ":":
                    fail()
                stack[-1][1] = key
                i = skip(i + 1)
                continue
            try:
                v, i = decoder.raw_decode(text, i)
            except (ValueError, RecursionError):
                fail()
            push_value(v)
            expect_value = False
            continue
        i = skip(i)
        if not stack:
            if i != n:
                fail()
            return result
        top = stack[-1]
        if i >= n:
            fail()
        ch = text[i]
        if ch == ",":
            i = skip(i + 1)
            if type(top[0]) is dict:
                if i >= n or text[i] != '"':
                    fail()
                try:
                    key, i = decoder.raw_decode(text, i)
                except ValueError:
                    fail()
                i = skip(i)
                if i >= n or text[i] != ":":
                    fail()
                top[1] = key
                i = skip(i + 1)
            expect_value = True
            continue
        if (ch == "]" and type(top[0]) is list) or (ch == "}" and type(top[0]) is dict):
            i += 1
            v = stack.pop()[0]
            push_value(v)
            continue
        fail()


# ---------------------------------------------------------------- case mapping


def _case_fixes() -> tuple[dict[int, int], dict[int, int]]:
    """Case pairs that Node's ICU (Unicode 16) has and Python 3.11 (Unicode 14) lacks."""
    pairs = [
        (0x1C89, 0x1C8A),
        (0xA7CB, 0x0264),
        (0xA7CC, 0xA7CD),
        (0xA7CE, 0xA7CF),
        (0xA7D2, 0xA7D3),
        (0xA7D4, 0xA7D5),
        (0xA7DA, 0xA7DB),
        (0xA7DC, 0x019B),
    ]
    pairs += [(0x10D50 + i, 0x10D70 + i) for i in range(0x16)]
    pairs += [(0x16EA0 + i, 0x16EBB + i) for i in range(0x19)]
    lower = {}
    upper = {}
    for up, low in pairs:
        if chr(up).lower() == chr(up):
            lower[up] = low
        if chr(low).upper() == chr(low):
            upper[low] = up
    return lower, upper


_LOWER_FIX, _UPPER_FIX = _case_fixes()


def js_lower(s: str) -> str:
    """``String.prototype.toLowerCase``."""
    out = s.lower()
    return out if out.isascii() else out.translate(_LOWER_FIX)


def js_upper(s: str) -> str:
    """``String.prototype.toUpperCase``."""
    out = s.upper()
    return out if out.isascii() else out.translate(_UPPER_FIX)
