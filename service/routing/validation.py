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
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from service.errors import InvalidArgument
from service.jsonwire import js_number_text
from service.routing.fields import Field

# ajv-formats 2.1.1 "date-time" (full mode). JavaScript's \d is ASCII-only and
# its $ never matches before a trailing newline, hence re.ASCII and \Z. The
# time zone is optional there (a bug upstream that the runtime lives with).
# The date, one separator, the time: ajv-formats splits on the separator (/t|\s/i) and wants exactly
# two parts; neither part can hold a separator character, so one pattern says the same.
# JavaScript's /t|\s/i: t, T and every character \s matches in JavaScript.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_DATE_TIME = re.compile(
    f"(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)[tT{_JS_SPACE}](\\d\\d):(\\d\\d):(\\d\\d)(\\.\\d+)?([zZ]|[+-]\\d\\d(?::?\\d\\d)?)?\\Z",
    re.ASCII,
)
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_fromisoformat = datetime.fromisoformat


def is_date_time(text: str) -> bool:
    """Whether Segment's runtime accepts ``text`` as a ``date-time``.

    The usual timestamp has JavaScript's toISOString() shape, "YYYY-MM-DDTHH:MM:SS.sssZ": there
    datetime.fromisoformat (C, a fifth of the general check's instructions) checks the fields, and it
    accepts no more than ajv-formats does (the hour is held below 24 here, which later Pythons
    would take); what it refuses (a leap second, year 0, a non-digit) the general check decides.
    """
    # Not mutated (make mutate): a change of this screen either sends more texts to the general check,
    # which answers the same, or lets a wrong one through, which test_datetimes' comparison of the two
    # paths over 5,040 strings catches (tests/MUTANTS.md).
    if (
        len(text) == 24  # pragma: no mutate
        and text[23] == "Z"  # pragma: no mutate
        and text[19] == "."  # pragma: no mutate
        and text[10] == "T"  # pragma: no mutate
        and text[4] == text[7] == "-"  # pragma: no mutate
        and text[13] == text[16] == ":"  # pragma: no mutate
        and text[11:13] < "24"  # pragma: no mutate
        and text.isascii()  # pragma: no mutate
        and text[20:23].isdigit()  # pragma: no mutate
    ):
        try:
            _fromisoformat(text)
            return True
        except ValueError:
            pass
    return _matches_ajv(text)


def _matches_ajv(text: str) -> bool:
    """ajv-formats' date-time check, spelt out: its pattern, then the date's and the time's ranges."""
    match = _DATE_TIME.match(text)
    if match is None:
        return False
    parts = match.groups()
    year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= month <= 12 and 1 <= day <= (29 if month == 2 and leap else _DAYS[month])):
        return False
    hour, minute, second = int(parts[3]), int(parts[4]), int(parts[5])
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


class Validator:
    """:func:`validate` for one action's fields, planned once: per key, its type and whether it is
    a date-time; the required names. A string value (most of them) takes the short way."""

    __slots__ = ("_plan", "_required")

    def __init__(self, fields: Iterable[Field]):
        self._plan = {f.name: (f.type, f.format == "date-time") for f in fields}
        self._required = tuple(f.name for f in fields if f.required)

    def __call__(self, payload: dict) -> dict:
        result: dict = {}
        problems: list[tuple[str, str]] = []
        plan = self._plan
        for key, value in payload.items():
            planned = plan.get(key)
            if planned is None:
                continue  # removeAdditional
            kind, date_time = planned
            if type(value) is str and kind == "string":
                if value and not (date_time and not is_date_time(value)):
                    result[key] = value
                elif value:
                    problems.append((key, f"must be an RFC 3339 date-time, got {value[:64]!r}"))
                continue
            if value is None or value == "":
                continue  # dropped as empty: no field allows null, and '' never survives at the top level
            coerced = _coerce(value, kind)
            if coerced is _MISSING:
                problems.append((key, f"must be a {kind}, got {_type_name(value)}"))
                continue
            if date_time and not is_date_time(coerced):
                problems.append((key, f"must be an RFC 3339 date-time, got {coerced[:64]!r}"))
                continue
            result[key] = coerced
        for name in self._required:
            if name not in result and all(name != at for at, _ in problems):
                problems.append((name, "is required"))
        if problems:
            problems.sort()
            message = "; ".join(f"{name} {reason}" for name, reason in problems)
            raise InvalidArgument(f"invalid event: {message}", field=problems[0][0])
        return result


def validate(payload: dict, fields: Mapping[str, Field]) -> dict:
    """The payload Segment's runtime would hand to ``perform``, or InvalidArgument.

    ``payload`` holds the mapped values in mapping order; the result keeps that
    order. ``fields`` maps each field name to its definition. The error names every field at fault
    (the first in ``field``). An action plans a :class:`Validator` once instead.
    """
    return Validator(fields.values())(payload)


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
