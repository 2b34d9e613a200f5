"""mapping-kit's ``validate()``: which mappings Segment refuses before running them.

Messages are Segment's own (``/path/@directive <what is wrong>.``); where
Segment aggregates several errors we join their messages with ``"; "``.

Segment checks nested values of objects, but not the items of arrays:
``[{"@path": 5}]`` passes validation and fails only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.routing.mapping import jsvalue as js

MAX_PATTERN_LENGTH = 10
MAX_REPLACEMENT_LENGTH = 10


class ValidationError(Exception):
    def __init__(self, message: str, stack: list[str]):
        super().__init__(f"/{'/'.join(stack)} {message}.")
        self.message = str(self)


class AggregateValidationError(Exception):
    def __init__(self, errors: list[ValidationError]):
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors
        self.message = str(self)


def _flat(errors: list[Exception]) -> list[ValidationError]:
    out: list[ValidationError] = []
    for e in errors:
        if isinstance(e, AggregateValidationError):
            out.extend(e.errors)
        else:
            out.append(e)  # type: ignore[arg-type]
    return out


def _article(s: str) -> str:
    return "an" if s[:1] in ("a", "e", "i", "o", "u") else "a"


def _kind(v: Any) -> str:
    """realTypeOrDirective"""
    t = js.real_type_of(v)
    if t == "object" and any(k.startswith("@") for k in v):
        return "directive"
    return t


Validator = Callable[[Any, list], None]


def _validate_directive(obj: Any, stack: list[str]) -> None:
    keys = js.js_keys(obj)
    directive_keys = [k for k in keys if k.startswith("@")]
    if len(directive_keys) > 1:
        raise ValidationError(f"should only have one @-prefixed key but it has {len(directive_keys)} keys", stack)
    if any(not k.startswith("@") and k != "_metadata" for k in keys):
        raise ValidationError(f"should only have one @-prefixed key but it has {len(keys)} keys", stack)
    key = directive_keys[0]
    fn = _DIRECTIVES.get(key)
    if fn is None:
        raise ValidationError(f"has an invalid directive: {key}", stack)
    fn(obj[key], stack)


def _directive_or_raw(v: Any, stack: list[str]) -> None:
    t = _kind(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t not in ("object", "array", "boolean", "string", "number", "null"):
        raise ValidationError(f"should be a mapping directive or a JSON value but it is {_article(t)} {t}", stack)


def _directive_or_string(v: Any, stack: list[str]) -> None:
    t = _kind(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t != "string":
        raise ValidationError(f"should be a string or a mapping directive but it is {_article(t)} {t}", stack)


def _directive_or_object(v: Any, stack: list[str]) -> None:
    t = _kind(v)
    if t == "directive":
        _validate_directive(v, stack)
    elif t == "object":
        _validate_object(v, stack)
    else:
        raise ValidationError(f"should be a object or a mapping directive but it is {_article(t)} {t}", stack)


def _chain(*validators: Validator) -> Validator:
    def run(v: Any, stack: list[str]) -> None:
        for validator in validators:
            validator(v, stack)

    return run


def _string_length(low: int, high: int) -> Validator:
    def run(v: Any, stack: list[str]) -> None:
        if type(v) is str and js.js_len(v) < low:
            raise ValidationError(f"should be a string of length {low} or greater", stack)
        if type(v) is str and js.js_len(v) > high:
            raise ValidationError(f"should be a string of length {high} or less", stack)

    return run


def _string(v: Any, stack: list[str]) -> None:
    t = _kind(v)
    if t != "string":
        raise ValidationError(f"should be a string but it is {_article(t)} {t}", stack)


def _allowed_strings(*allowed: str) -> Validator:
    def run(v: Any, stack: list[str]) -> None:
        _string(v, stack)
        if js.js_lower(v) not in allowed:
            raise ValidationError(f"should be one of {', '.join(allowed)} but it is {js.json_stringify(v)}", stack)

    return run


def _boolean(v: Any, stack: list[str]) -> None:
    t = _kind(v)
    if t != "boolean":
        raise ValidationError(f"should be a boolean but it is {_article(t)} {t}", stack)


def _validate_object(value: Any, stack: list[str]) -> None:
    t = _kind(value)
    if t != "object":
        raise ValidationError(f"should be an object but it is {_article(t)} {t}", stack)
    keys = js.js_keys(value)
    for k in keys:
        if k[:1] == "@":
            raise ValidationError(f"shouldn't have directive (@-prefixed) keys but it has {js.json_stringify(k)}", stack)
    errors: list[Exception] = []
    for k in keys:
        try:
            validate(value[k], [*stack, k])
        except (ValidationError, AggregateValidationError) as e:
            errors.append(e)
    if errors:
        raise AggregateValidationError(_flat(errors))


def _with_fields(value: Any, fields: dict[str, tuple[str, Validator]], stack: list[str]) -> None:
    _validate_object(value, stack)
    errors: list[Exception] = []
    for prop, (kind, fn) in fields.items():
        try:
            if kind == "required":
                if prop not in value:
                    raise ValidationError(f"should have field {js.json_stringify(prop)} but it doesn't", stack)
                fn(value[prop], [*stack, prop])
            elif prop in value:
                fn(value[prop], [*stack, prop])
        except (ValidationError, AggregateValidationError) as e:
            errors.append(e)
    if errors:
        raise AggregateValidationError(_flat(errors))


def _array(v: Any, stack: list[str]) -> None:
    t = js.real_type_of(v)
    if t != "array":
        raise ValidationError(f"should be an array but it is {_article(t)} {t}", stack)


def _if(v: Any, stack: list[str]) -> None:
    _with_fields(
        v,
        {"exists": ("optional", _directive_or_raw), "then": ("optional", _directive_or_raw), "else": ("optional", _directive_or_raw)},
        stack,
    )


def _case(v: Any, stack: list[str]) -> None:
    _with_fields(v, {"operator": ("optional", _string), "value": ("optional", _directive_or_string)}, stack)


def _replace(v: Any, stack: list[str]) -> None:
    _with_fields(
        v,
        {
            "pattern": ("required", _chain(_string, _string_length(1, MAX_PATTERN_LENGTH))),
            "replacement": ("optional", _chain(_string, _string_length(0, MAX_REPLACEMENT_LENGTH))),
            "value": ("required", _directive_or_string),
            "ignorecase": ("optional", _boolean),
            "global": ("optional", _boolean),
        },
        stack,
    )


def _array_path(v: Any, stack: list[str]) -> None:
    _array(v, stack)
    _directive_or_string(v[0] if len(v) > 0 else js.UNDEFINED, stack)
    validate(v[1] if len(v) > 1 else js.UNDEFINED, stack)


def _json(v: Any, stack: list[str]) -> None:
    _with_fields(v, {"value": ("required", _directive_or_raw), "mode": ("required", _allowed_strings("encode", "decode"))}, stack)


def _flatten(v: Any, stack: list[str]) -> None:
    _with_fields(v, {"separator": ("optional", _string), "value": ("required", _directive_or_raw)}, stack)


def _merge(v: Any, stack: list[str]) -> None:
    _with_fields(v, {"direction": ("optional", _allowed_strings("left", "right")), "objects": ("required", _array)}, stack)
    for obj in v["objects"]:
        _directive_or_object(obj, [])  # Segment passes no path here


def _transform(v: Any, stack: list[str]) -> None:
    _with_fields(v, {"apply": ("required", _directive_or_object), "mapping": ("required", _directive_or_object)}, stack)


def _named(name: str, fn: Validator) -> Validator:
    def run(v: Any, stack: list[str]) -> None:
        fn(v, [*stack, name])

    return run


_DIRECTIVES: dict[str, Validator] = {
    name: _named(name, fn)
    for name, fn in {
        "@if": _if,
        "@case": _case,
        "@replace": _replace,
        "@arrayPath": _array_path,
        "@path": _directive_or_string,
        "@json": _json,
        "@flatten": _flatten,
        "@merge": _merge,
        "@template": _directive_or_string,
        "@literal": _directive_or_raw,
        "@transform": _transform,
        "@excludeWhenNull": _directive_or_raw,
        "@liquid": _string,
    }.items()
}


def validate(mapping: Any, stack: list[str] | None = None) -> None:
    """Raise ValidationError/AggregateValidationError where mapping-kit's validate() throws."""
    stack = stack or []
    t = _kind(mapping)
    if t == "directive":
        _validate_directive(mapping, stack)
    elif t == "object":
        _validate_object(mapping, stack)
    elif t == "array":
        _array(mapping, stack)


def error_message(exc: Exception) -> str:
    return exc.message if isinstance(exc, (ValidationError, AggregateValidationError)) else str(exc)
