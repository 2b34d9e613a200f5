"""Payload validation with the semantics of Segment's runtime.

Segment's runtime, between mapping and ``perform``, (1) drops empty values:
``null`` where the field's type does not allow it, ``''`` where the type is
not a string, and ``''`` in any top-level field; then (2) validates with ajv
(``coerceTypes: 'array'``, ``removeAdditional``, ajv-formats): scalars are
coerced to the field's type (``42`` -> ``"42"``, ``true`` -> ``"true"``,
``[x]`` -> ``x``), unknown keys are removed, required fields are checked and
``date-time`` strings are checked. The golden fixtures in tests/goldens hold
the runtime's answers; this module reproduces them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

from service.errors import InvalidArgument
from service.jsonwire import js_number_text

if TYPE_CHECKING:
    from service.actions.base import Field

# ajv-formats 2.1.1 "date-time" (full mode). JavaScript's \d is ASCII-only and
# its $ never matches before a trailing newline, hence re.ASCII and \Z. The
# time zone is optional there (a bug upstream that the runtime lives with).
_DATE = re.compile(r"(\d\d\d\d)-(\d\d)-(\d\d)\Z", re.ASCII)
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d+)?([zZ]|[+-]\d\d(?::?\d\d)?)?\Z", re.ASCII)
# JavaScript's /t|\s/i: t, T and every character \s matches in JavaScript.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SEPARATOR = re.compile(f"[tT{_JS_SPACE}]")
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_date_time(text: str) -> bool:
    """Whether Segment's runtime accepts ``text`` as a ``date-time``."""
    parts = _SEPARATOR.split(text)
    if len(parts) != 2:
        return False
    date = _DATE.match(parts[0])
    time = _TIME.match(parts[1])
    if not date or not time:
        return False
    year, month, day = int(date[1]), int(date[2]), int(date[3])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= month <= 12 and 1 <= day <= (29 if month == 2 and leap else _DAYS[month])):
        return False
    hour, minute, second = int(time[1]), int(time[2]), int(time[3])
    return (hour <= 23 and minute <= 59 and second <= 59) or (hour == 23 and minute == 59 and second == 60)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_MISSING = object()


def _coerce(value: Any, kind: str) -> Any:
    """ajv's coerceTypes 'array' for one value; _MISSING when it does not fit.

    A one-element array is unwrapped for scalar types only: ``["x"]`` is the
    string ``"x"``, but ``[{...}]`` is no object.
    """
    if kind == "string":
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return js_number_text(value)
        if value is None:
            return ""
        return _MISSING
    if kind == "object":
        return value if isinstance(value, dict) else _MISSING
    raise AssertionError(f"no field has type {kind!r}")


def validate(payload: dict, fields: Mapping[str, Field]) -> dict:
    """The payload Segment's runtime would hand to ``perform``, or InvalidArgument.

    ``payload`` holds the mapped values in mapping order; the result keeps that
    order. ``fields`` maps each field name to its definition. The error names every field at fault (the first in ``field``).
    """
    result: dict = {}
    problems: list[tuple[str, str]] = []
    for key, value in payload.items():
        field = fields.get(key)
        if field is None:
            continue  # removeAdditional
        if value is None or value == "":
            continue  # dropped as empty: no field allows null, and '' never survives at the top level
        coerced = _coerce(value, field.type)
        if coerced is _MISSING:
            problems.append((key, f"must be a {field.type}, got {_type_name(value)}"))
            continue
        if field.format == "date-time" and not is_date_time(coerced):
            problems.append((key, f"must be an RFC 3339 date-time, got {coerced[:64]!r}"))
            continue
        result[key] = coerced
    present = set(result).union(name for name, _ in problems)
    problems.extend((f.name, "is required") for f in fields.values() if f.required and f.name not in present)
    if problems:
        problems.sort()
        message = "; ".join(f"{name} {reason}" for name, reason in problems)
        raise InvalidArgument(f"invalid event: {message}", field=problems[0][0])
    return result



def check_runtime_limits(raw: dict) -> None:
    """Events Segment's runtime fails on after validation, sending nothing: refuse them the same way.

    Its audience-membership check destructures ``context.personas`` of the
    raw event and throws when ``context`` or ``context.personas`` is null.
    """
    context = raw.get("context", _MISSING)
    if context is None:
        raise InvalidArgument("context must be an object or absent, not null", field="context")
    if isinstance(context, dict) and context.get("personas", _MISSING) is None:
        raise InvalidArgument("context.personas must be an object or absent, not null", field="context.personas")
