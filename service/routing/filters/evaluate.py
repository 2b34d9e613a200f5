"""tsub's evaluation of a compiled filter condition on an event.

A port of ``@segment/tsub``'s matchers (2.0.1), turned into closures built
once per condition (:func:`predicate`), JavaScript semantics kept, because
they decide which events a filter catches:

- a condition is true only when it evaluates to the boolean ``true``: a
  lone path is true when it holds ``true``, a lone ``lowercase(x)`` never;
- paths read like ``dlv``: ``o ? o[k] : undefined`` at each dot, so
  ``properties.name.length`` is a string's length and ``items.0`` an item;
- ``=`` and ``!=`` are JavaScript's ``===`` (no coercion: ``"42" != 42``),
  except that two objects (null, lists and maps) compare by their JSON text;
  a list literal is compared in its compiled form, so ``[1] = properties.list``
  is never true;
- ``<``, ``<=``, ``>``, ``>=`` need two numbers, else false;
- ``x in [..]`` compares each item with ``===``; a list read from the event
  has its strings read as *paths* (``'a' in properties.tags`` looks for a
  field named ``a``); anything but a list on the right throws;
- ``and``, ``or`` and ``!`` go by JavaScript truthiness;
- ``typeof`` gives JavaScript's names (``object`` for null and lists,
  ``boolean``, ``undefined``); ``length`` counts UTF-16 units, gives 0 for
  null and NaN for anything else; ``lowercase`` gives null for a non-string.

Where tsub throws, :class:`FilterEvaluationError` is raised; the caller
drops the event, as Segment does when a filter cannot be evaluated.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from service.errors import FilterEvaluationError
from service.routing.filters.glob import glob_matches, units
from service.routing.mapping.jsvalue import (
    UNDEFINED,
    get_prop,
    has_surrogates,
    js_len,
    js_lower,
    js_trim,
    json_stringify,
    to_float,
    truthy,
    typeof,
)

NAN = math.nan
_MISSING = object()
_LEADING_INT = re.compile(r"[+-]?[0-9]+")


def predicate(matcher: dict) -> Callable[[dict], bool]:
    """The matcher as a function of an event: tsub's ``matches(event, matcher)``, compiled once.

    Calling it raises FilterEvaluationError where tsub throws."""
    if matcher["type"] == "all":
        return _always
    condition = compile_ir(matcher["ir"])
    return lambda event: condition(event) is True


def matches(matcher: dict, event: dict) -> bool:
    """tsub's ``matches(event, matcher)``; FilterEvaluationError where tsub throws."""
    return predicate(matcher)(event)


def _always(_event: dict) -> bool:
    return True


def dlv(obj: Any, path: Any) -> Any:
    """``dlv(obj, path)``: each dot-separated key read only through a truthy value."""
    if type(path) is not str:
        if path is None or path is UNDEFINED:
            raise FilterEvaluationError("Cannot read properties of undefined (reading 'split')")
        return obj  # a number or boolean key has no split() and no length: dlv returns the object itself
    return _walk(obj, path.split("."))


def _walk(obj: Any, keys) -> Any:
    for key in keys:
        if type(obj) is dict:  # the usual case, and always truthy
            value = obj.get(key, _MISSING)
            obj = value if value is not _MISSING else get_prop(obj, key)
        elif truthy(obj):
            obj = get_prop(obj, key)
        else:
            obj = UNDEFINED
    return obj


def _value(item: Any, event: dict) -> Any:
    """getValue: a list as is, ``{"value": v}`` as v, anything else as a path into the event."""
    t = type(item)
    if t is list:
        return item
    if t is dict:
        return item.get("value", UNDEFINED)
    if item is None:
        raise FilterEvaluationError("Cannot read properties of null (reading 'value')")
    return dlv(event, item)


def _getter(item: Any) -> Callable[[dict], Any]:
    """getValue(item, event) as a function of the event, the item being fixed."""
    t = type(item)
    if t is str:
        keys = tuple(item.split("."))
        return lambda event: _walk(event, keys)
    if t is list or t is dict:
        value = _value(item, {})
        return lambda _event: value
    return lambda event: _value(item, event)  # numbers and booleans give the event; null and a missing item throw


def _operand(item: Any) -> Callable[[dict], Any]:
    """An operand of a comparison: getValue, then evaluated when it is a function call (tsub's isIR)."""
    if type(item) is list or type(item) is dict:
        value = _value(item, {})
        if _is_ir(value):
            return compile_ir(value)
    get = _getter(item)

    def operand(event: dict) -> Any:
        value = get(event)
        return compile_ir(value)(event) if type(value) is list and _is_ir(value) else value  # a list from the event that reads as a call

    return operand


def compile_ir(ir: Any) -> Callable[[dict], Any]:
    """tsub's fqlEvaluate(ir, event) as a function of the event."""
    if type(ir) is not list:
        get = _getter(ir)
        return lambda event: get(event) is True
    op = ir[0] if ir else UNDEFINED
    arg = [_getter(ir[i] if i < len(ir) else UNDEFINED) for i in (1, 2, 3)]
    if op == "!":
        inner = compile_ir(ir[1] if len(ir) > 1 else UNDEFINED)
        return lambda event: not truthy(inner(event))
    if op == "or" or op == "and":
        subs = tuple(compile_ir(sub) for sub in ir[1:])
        if op == "or":
            return lambda event: any(truthy(sub(event)) for sub in subs)
        return lambda event: all(truthy(sub(event)) for sub in subs)
    if op in ("=", "!=", "<", "<=", ">", ">="):
        left, right = (_operand(ir[i] if i < len(ir) else UNDEFINED) for i in (1, 2))
        if op == "=":
            return lambda event: _equal(left(event), right(event))
        if op == "!=":
            return lambda event: not _equal(left(event), right(event))
        compare = _COMPARE[op]
        return lambda event: _compare_numbers(left(event), right(event), compare)
    first, second, third = arg
    if op == "in":
        return lambda event: _in_list(first(event), second(event), event)
    if op == "contains":
        return lambda event: _contains(first(event), second(event))
    if op == "match":
        return lambda event: _match(first(event), second(event))
    if op == "lowercase":
        return lambda event: _lowercase(first(event))
    if op == "typeof":
        return lambda event: typeof(first(event))
    if op == "length":
        return lambda event: _length(first(event))
    if op == "semver":
        return lambda event: _semver(first(event), second(event), third(event))

    def unknown(_event: dict) -> Any:
        raise FilterEvaluationError(f"FQL IR could not evaluate for token: {op}")

    return unknown


_ARITY = {"lowercase": 2, "length": 2, "typeof": 2, "contains": 3, "match": 3, "semver": 4}


def _is_ir(value: Any) -> bool:
    """tsub's isIR(): a function call of the right length (only these are evaluated as operands)."""
    return type(value) is list and bool(value) and type(value[0]) is str and _ARITY.get(value[0]) == len(value)


def strict_equals(a: Any, b: Any) -> bool:
    """JavaScript's ``a === b`` on JSON values (numbers as doubles; objects, and functions met
    through a prototype, by identity)."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return to_float(a) == to_float(b)
    if ta is str and tb is str:
        return a == b
    return a is b


def _equal(first: Any, second: Any) -> bool:
    """compareItems' ``=``: two objects (null, lists, maps) by their JSON text, anything else by ``===``."""
    if typeof(first) == "object" and typeof(second) == "object":
        return json_stringify(first) == json_stringify(second)
    return strict_equals(first, second)


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare_numbers(first: Any, second: Any, compare) -> bool:
    if not (_is_number(first) and _is_number(second)):
        return False
    return compare(to_float(first), to_float(second))


def _match(text: Any, pattern: Any) -> bool:
    return type(text) is str and type(pattern) is str and glob_matches(pattern, text)


def _lowercase(target: Any) -> Any:
    return js_lower(target) if type(target) is str else None


def _in_list(item: Any, items: Any, event: dict) -> bool:
    if type(items) is not list:
        shown = "undefined" if items is UNDEFINED else "null" if items is None else typeof(items)
        raise FilterEvaluationError(f"'in' needs a list on its right, got {shown} (list.find is not a function)")
    return any(strict_equals(_value(candidate, event), item) for candidate in items)


def _contains(text: Any, sub: Any) -> bool:
    if type(text) is not str or type(sub) is not str:
        return False
    if has_surrogates(text) or has_surrogates(sub):
        return units(sub) in units(text)
    return sub in text


def _length(item: Any) -> int | float:
    if item is None:
        return 0
    t = type(item)
    if t is list:
        return len(item)
    if t is str:
        return js_len(item)
    return NAN


def _semver(v1: Any, op: Any, v2: Any) -> bool:
    if v1 is None or v2 is None:
        return False
    if type(v1) is not str or type(op) is not str or type(v2) is not str:
        return False
    try:
        a, b = _parse_semver(v1), _parse_semver(v2)
    except ValueError:
        return False
    cmp = (a > b) - (a < b)
    return {"=": cmp == 0, "!=": cmp != 0, ">": cmp > 0, ">=": cmp >= 0, "<": cmp < 0, "<=": cmp <= 0}.get(op, False)


def _parse_semver(version: str) -> tuple[float, float, float]:
    """ "1.2.3", "1.2" or "2": each part read by ``parseInt(part.trim(), 10)`` (so "1a" is 1)."""
    parts = version.split(".")
    if len(parts) > 3:
        raise ValueError("invalid version format")
    numbers = [0.0, 0.0, 0.0]
    for i, part in enumerate(parts):
        found = _LEADING_INT.match(js_trim(part))
        if found is None:
            raise ValueError("invalid version part")
        numbers[i] = to_float(int(found.group()))
    return numbers[0], numbers[1], numbers[2]


__all__ = ["compile_ir", "dlv", "matches", "predicate", "strict_equals"]
