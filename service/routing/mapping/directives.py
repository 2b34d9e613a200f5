"""Segment's mapping-kit directives (``@segment/actions-core``), compiled once.

``compile_mapping(mapping)`` does what mapping-kit's ``transform`` does
before it looks at an event (the ``__segment_internal_directive`` root
handling, then ``validate()``) and turns the mapping into closures;
``Mapping.resolve(event)`` then gives ``transform(mapping, event)``.

Directives: ``@path``, ``@template``, ``@literal``, ``@if`` (``exists`` /
``blank``, ``then``, ``else``), ``@case``, ``@replace``, ``@arrayPath``,
``@json``, ``@flatten``, ``@merge``, ``@transform``, ``@excludeWhenNull``.
``@liquid`` is refused at compile time (``"@liquid is not supported"``).

Semantics kept from Segment, some of them surprising:

- ``@path`` strips the first ``$.`` anywhere in the path, splits on ``.``,
  on ``[`` before a quote or digit and on ``]`` after one, drops empty
  parts and all quotes; ``""``, ``"."`` and ``"$."`` mean the whole event.
  Reading is JavaScript's ``o && o[k]``: strings and arrays have
  ``length`` and indexes, a falsy value stops the walk and is returned.
- ``@template`` replaces ``{{{x}}}`` first, then ``{{x}}`` in the result
  (so a value containing ``{{...}}`` put in by a triple brace is expanded
  again); missing and null become ``""``, objects ``[object Object]``,
  arrays are joined with commas.
- Options are read raw and by JavaScript truthiness: ``@if``'s ``else:
  false`` (or 0, "", null) gives nothing; ``@json`` with a falsy ``value``
  fails at run time; ``@replace`` with a falsy ``value`` gives nothing, and
  with a value that is not a string, number or boolean gives ``""``.
- ``@literal`` resolves what it holds (directives inside it run).
- Array items are not validated by Segment; bad directives there fail
  only when the event is mapped (``MappingError`` from ``resolve``).

``resolve`` returns JSON-compatible data: keys whose value is undefined are
absent (as are keys holding a JavaScript function, which ``JSON.stringify``
drops), undefined array items are ``None``, object keys are in JavaScript
order (array-index keys first). Errors Segment throws while mapping
(bad ``@path`` results, ``@transform`` on a non-object, ...) raise
:class:`MappingError` with Segment's message.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from typing import Any

from service.errors import MappingError
from service.routing.mapping import jsvalue as js
from service.routing.mapping.jsregex import literal_replacer
from service.routing.mapping.jsvalue import UNDEFINED
from service.routing.mapping.validate import (
    MAX_PATTERN_LENGTH,
    MAX_REPLACEMENT_LENGTH,
    AggregateValidationError,
    ValidationError,
    validate,
)

__all__ = ["Mapping", "compile_mapping", "UNDEFINED", "MAX_NESTING"]

ROOT_MAPPING_FIELD_KEY = "__segment_internal_directive"
MAX_NESTING = 2000
"""Deepest output accepted; Segment's runtime itself overflows its stack a little beyond."""

Resolver = Callable[[Any], Any]


def _fail(message: str) -> Resolver:
    def resolver(payload: Any) -> Any:
        raise MappingError(message)

    return resolver


def _constant(value: Any) -> Resolver:
    return lambda payload: value


def _is_directive(obj: dict) -> bool:
    has = False
    for key in obj:
        if key.startswith("@"):
            has = True
        elif key != "_metadata":
            return False
    return has


def _has_directive_keys(node: Any) -> bool:
    """Whether resolving ``node`` could do more than return it (iteratively)."""
    stack = [node]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is dict:
            for key, value in item.items():
                if key.startswith("@"):
                    return True
                stack.append(value)
        elif t is list:
            stack.extend(item)
    return False


# ------------------------------------------------------------------ reading paths

_ARRAY_RE = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")


def path_keys(path: str) -> tuple[str, ...] | None:
    """actions-core ``get``'s path split; None for the whole object."""
    if path == "" or path == ".":
        return None
    return tuple(part.replace("'", "").replace('"', "") for part in _ARRAY_RE.split(path) if part)


def _getter(path: str) -> Resolver:
    keys = path_keys(path)
    if keys is None:
        return lambda payload: payload
    if len(keys) == 1:
        key = keys[0]

        def get_one(payload: Any) -> Any:
            if type(payload) is dict and key in payload:
                return payload[key]
            return js.walk(payload, keys)

        return get_one
    return lambda payload: js.walk(payload, keys)


_PATH_CACHE: dict[str, tuple[str, ...] | None] = {}


def _get_dynamic(payload: Any, path: str) -> Any:
    try:
        keys = _PATH_CACHE[path]
    except KeyError:
        keys = path_keys(path)
        if len(_PATH_CACHE) < 1024:
            _PATH_CACHE[path] = keys
    if keys is None:
        return payload
    return js.walk(payload, keys)


def _strip_root(path: str) -> str:
    return path.replace("$.", "", 1)


# ------------------------------------------------------------------ compile


def _compile(node: Any) -> Resolver:
    t = type(node)
    if t is dict:
        if _is_directive(node):
            name = next(k for k in node if k.startswith("@"))
            factory = _DIRECTIVES.get(name)
            if factory is None:
                return _fail(f"{name} is not a valid directive, got undefined")
            return factory(node[name])
        if not _has_directive_keys(node):
            return _constant(node)
        items = [(key, _compile(node[key])) for key in js.js_keys(node)]

        def resolve_object(payload: Any) -> Any:
            return {key: fn(payload) for key, fn in items}

        return resolve_object
    if t is list:
        if not _has_directive_keys(node):
            return _constant(node)
        fns = [_compile(item) for item in node]
        return lambda payload: [fn(payload) for fn in fns]
    return _constant(node)


def _string_directive(name: str, value: Any, build: Callable[[str], Resolver], dynamic: Callable[[str, Any], Any]) -> Resolver:
    """registerStringDirective: the option must resolve to a string."""
    if type(value) is str:
        return build(value)
    fn = _compile(value)

    def resolver(payload: Any) -> Any:
        s = fn(payload)
        if type(s) is not str:
            raise MappingError(f"{name}: expected string, got {js.real_type_of(s)}")
        return dynamic(s, payload)

    return resolver


def _path(value: Any) -> Resolver:
    return _string_directive("@path", value, lambda p: _getter(_strip_root(p)), lambda p, payload: _get_dynamic(payload, _strip_root(p)))


# @template

_TRIPLE = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE = re.compile(r"\{\{([^}]+)\}\}")


def _placeholder_text(payload: Any, key: str) -> str:
    value = _get_dynamic(payload, js.js_trim(key))
    if value is None or value is UNDEFINED:
        return ""
    return value if type(value) is str else js.to_string(value)


def _render(template: str, payload: Any) -> str:
    first = _TRIPLE.sub(lambda m: _placeholder_text(payload, m.group(1)), template)
    return js.pair_surrogates(_DOUBLE.sub(lambda m: _placeholder_text(payload, m.group(1)), first))


def _template_parts(regex: re.Pattern[str], template: str) -> list[str | tuple[str, tuple[str, ...] | None]]:
    """Literal strings and ("key", path keys) pairs (keys None: the whole payload), alternating."""
    parts: list[Any] = []
    pos = 0
    for m in regex.finditer(template):
        parts.append(template[pos : m.start()])
        parts.append(("key", path_keys(js.js_trim(m.group(1)))))
        pos = m.end()
    parts.append(template[pos:])
    return [p for p in parts if p != ""]


def _compile_template(template: str) -> Resolver:
    if _TRIPLE.search(template):
        return lambda payload: _render(template, payload)
    parts = _template_parts(_DOUBLE, template)
    if not parts:
        return _constant("")
    if len(parts) == 1 and type(parts[0]) is str:
        return _constant(parts[0])

    def render(payload: Any) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            keys = part[1]
            value = payload if keys is None else js.walk(payload, keys)
            if value is None or value is UNDEFINED:
                continue
            out.append(value if type(value) is str else js.to_string(value))
        return js.pair_surrogates("".join(out))

    return render


def _template(value: Any) -> Resolver:
    return _string_directive("@template", value, _compile_template, lambda t, payload: _render(t, payload))


def _literal(value: Any, compile: Callable[[Any], Resolver] | None = None) -> Resolver:
    return (compile or _compile)(value)


# @if


def _if(opts: Any, compile: Callable[[Any], Resolver] | None = None) -> Resolver:
    """``compile`` builds the resolvers of what @if returns (then, else); conditions use _compile."""
    compile = compile or _compile
    if type(opts) is not dict:
        return _fail('@if requires an object with an "exists" key')
    exists = opts.get("exists", UNDEFINED)
    blank = opts.get("blank", UNDEFINED)
    if not js.truthy(exists) and not js.truthy(blank):
        return _fail('@if requires an "exists" key or a "blank" key')
    then = opts.get("then", UNDEFINED)
    other = opts.get("else", UNDEFINED)
    then_fn = compile(then) if then is not UNDEFINED else None
    else_fn = compile(other) if js.truthy(other) else None
    if exists is not UNDEFINED:
        cond_fn = _compile(exists)
        if type(then) is dict and _is_directive(then) and then == exists:
            # "then" is the condition itself (Segment's defaults: first_of): directives are pure, so
            # the value the condition read is the one "then" would read again.
            first = compile(then)

            def first_present(payload: Any) -> Any:
                v = first(payload)
                if v is not UNDEFINED and v is not None:
                    return v
                return else_fn(payload) if else_fn is not None else UNDEFINED

            return first_present

        def condition(payload: Any) -> bool:
            v = cond_fn(payload)
            return v is not UNDEFINED and v is not None

    else:
        blank_fn = _compile(blank)

        def condition(payload: Any) -> bool:
            v = blank_fn(payload)
            return v is not UNDEFINED and v is not None and not js.loose_equals_empty_string(v)

    def resolver(payload: Any) -> Any:
        if condition(payload):
            return then_fn(payload) if then_fn is not None else UNDEFINED
        return else_fn(payload) if else_fn is not None else UNDEFINED

    return resolver


# @case


def _case(opts: Any, compile: Callable[[Any], Resolver] | None = None) -> Resolver:
    if type(opts) is not dict:
        return _fail('@case requires an object with a "operator" key')
    operator = opts.get("operator", UNDEFINED)
    if not js.truthy(operator):
        return _fail('@case requires a "operator" key')
    value = opts.get("value", UNDEFINED)
    if not js.truthy(value):
        return _constant(UNDEFINED)
    fn = (compile or _compile)(value)
    convert: Callable[[str], str] | None = None
    if operator == "lower" and type(operator) is str:
        convert = js.js_lower
    elif operator == "upper" and type(operator) is str:
        convert = js.js_upper

    def resolver(payload: Any) -> Any:
        v = fn(payload)
        if type(v) is str:
            if convert is None:
                raise MappingError('operator key should have a value of "lower" or "upper"')
            return convert(v)
        return v

    return resolver


# @replace


def _replace_step(pattern: str, replacement: str, global_: bool, ignorecase: bool) -> Callable[[str], str]:
    if js.js_len(pattern) > MAX_PATTERN_LENGTH:
        message = f'@replace requires a "pattern" less than {MAX_PATTERN_LENGTH} characters'
    elif js.js_len(replacement) > MAX_REPLACEMENT_LENGTH:
        message = f'@replace requires a "replacement" less than {MAX_REPLACEMENT_LENGTH} characters'
    else:
        return literal_replacer(pattern, replacement, global_, ignorecase)

    def fail(value: str) -> str:
        raise MappingError(message)

    return fail


def _replace(opts: Any) -> Resolver:
    if type(opts) is not dict:
        return _fail('@replace requires an object with a "pattern" key')
    pattern = opts.get("pattern", UNDEFINED)
    if not js.truthy(pattern):
        return _fail('@replace requires a "pattern" key')
    replacement = opts.get("replacement", UNDEFINED)
    if replacement is None or replacement is UNDEFINED:
        replacement = ""
    pattern2 = opts.get("pattern2", UNDEFINED)
    replacement2 = opts.get("replacement2", UNDEFINED)
    if js.truthy(pattern2) and (replacement2 is None or replacement2 is UNDEFINED):
        replacement2 = ""
    ignorecase = opts.get("ignorecase", UNDEFINED)
    if ignorecase is None or ignorecase is UNDEFINED:
        ignorecase = False
    global_ = opts.get("global", UNDEFINED)
    if global_ is None or global_ is UNDEFINED:
        global_ = True
    value = opts.get("value", UNDEFINED)
    if not js.truthy(value):
        return _constant(UNDEFINED)
    fn = _compile(value)
    usable = type(pattern) is str and type(replacement) is str and type(ignorecase) is bool and type(global_) is bool
    steps: list[Callable[[str], str]] = []
    if usable:
        steps.append(_replace_step(pattern, replacement, global_, ignorecase))
        if js.truthy(pattern2) and type(pattern2) is str and type(replacement2) is str:
            steps.append(_replace_step(pattern2, replacement2, global_, ignorecase))

    def resolver(payload: Any) -> Any:
        v = fn(payload)
        t = type(v)
        if t is bool or t is int or t is float:
            v = js.to_string(v)
        elif t is not str:
            return ""
        if not usable:
            return ""
        for step in steps:
            v = step(v)
        return js.pair_surrogates(v)

    return resolver


# @arrayPath


def _array_path(data: Any) -> Resolver:
    if type(data) is not list:
        return _fail(f"@arrayPath expected array, got {js.real_type_of(data)}")
    path = data[0] if len(data) > 0 else UNDEFINED
    shape = data[1] if len(data) > 1 else UNDEFINED
    root_fn = _getter(_strip_root(path)) if type(path) is str else _compile(path)
    if not (type(shape) is dict and len(shape) > 0):
        return root_fn
    shape_fn = _compile(shape)

    def resolver(payload: Any) -> Any:
        root = root_fn(payload)
        t = type(root)
        if t is list:
            return [shape_fn(item) for item in root]
        if t is dict:
            return [shape_fn(root)]
        return root

    return resolver


# @json


def _json(opts: Any) -> Resolver:
    if type(opts) is not dict:
        return _fail('@json requires an object with a "value" key')
    mode = opts.get("mode", UNDEFINED)
    if not js.truthy(mode):
        return _fail('@json requires a "mode" key')
    value = opts.get("value", UNDEFINED)
    if not js.truthy(value):
        return _fail('@json requires a "value" key')
    fn = _compile(value)
    if mode == "encode" and type(mode) is str:
        return lambda payload: js.json_stringify(fn(payload))
    if mode == "decode" and type(mode) is str:

        def decode(payload: Any) -> Any:
            v = fn(payload)
            if type(v) is str:
                try:
                    return js.json_parse(v)
                except js.JSONSyntaxError:
                    return v
            return v

        return decode

    def neither(payload: Any) -> Any:
        fn(payload)
        return UNDEFINED

    return neither


# @flatten


def flatten_object(value: Any, separator: str, omit_arrays: bool) -> dict:
    """mapping-kit's flattenObject(value, '', separator, omitArrays), iteratively."""

    def container(v: Any) -> bool:
        t = type(v)
        return t is dict or (t is list and not omit_arrays)

    def entries(v: Any) -> list[tuple[str, Any]]:
        if type(v) is dict:
            return [(k, v[k]) for k in js.js_keys(v)]
        return [(str(i), item) for i, item in enumerate(v)]

    if not container(value):
        return {"": value}
    out: dict[str, Any] = {}
    stack: list[list[Any]] = [[entries(value), 0, ""]]
    while stack:
        frame = stack[-1]
        items, i, prefix = frame
        if i >= len(items):
            stack.pop()
            continue
        frame[1] = i + 1
        key, item = items[i]
        new_key = f"{prefix}{separator}{key}" if prefix else key
        if container(item):
            if len(stack) >= MAX_NESTING:
                raise MappingError(f"@flatten: value is nested more than {MAX_NESTING} levels deep")
            stack.append([entries(item), 0, new_key])
        else:
            out[new_key] = item
    return out


def _flatten(opts: Any) -> Resolver:
    if type(opts) is not dict:
        return _fail('@flatten requires an object with a "separator" key')
    separator = opts.get("separator", UNDEFINED)
    if not js.truthy(separator):
        return _fail('@flatten requires a "separator" key')
    sep_fn = _compile(separator)
    value_fn = _compile(opts.get("value", UNDEFINED))
    omit = js.truthy(opts.get("omitArrays", UNDEFINED))

    def resolver(payload: Any) -> Any:
        sep = sep_fn(payload)
        if type(sep) is not str:
            raise MappingError("@flatten requires a string separator")
        return flatten_object(value_fn(payload), sep, omit)

    return resolver


# @merge


def _assign(target: dict, source: Any) -> None:
    """One source of ``Object.assign``."""
    t = type(source)
    if t is dict:
        for key in js.js_keys(source):
            target[key] = source[key]
    elif t is list:
        for i, item in enumerate(source):
            target[str(i)] = item
    elif t is str:
        for i, unit in enumerate(js.utf16_units(source)):
            target[str(i)] = unit


def _merge(opts: Any) -> Resolver:
    if type(opts) is not dict:
        return _fail('@merge requires an object with an "objects" key and a "direction" key')
    direction = opts.get("direction", UNDEFINED)
    if not js.truthy(direction):
        return _fail('@merge requires a "direction" key')
    direction_fn = _compile(direction)
    objects = opts.get("objects", UNDEFINED)
    problem = None
    if not js.truthy(objects):
        problem = '@merge requires a "objects" key'
    elif type(objects) is not list:
        problem = f"@merge: expected opts.array, got {js.typeof(objects)}"
    fns = [_compile(o) for o in objects] if problem is None else []

    def resolver(payload: Any) -> Any:
        d = direction_fn(payload)
        if problem is not None:
            raise MappingError(problem)
        values = [fn(payload) for fn in fns]
        if type(d) is str and d == "left":
            values.reverse()
        out: dict[str, Any] = {}
        for v in values:
            _assign(out, v)
        return out

    return resolver


# @transform


def _prepare(mapping: Any) -> Any:
    """getMappingToProcess: the root-directive form, or ``{...mapping}``; raises MappingError."""
    if mapping is None or mapping is UNDEFINED:
        raise MappingError("Cannot convert undefined or null to object")
    if type(mapping) is dict and ROOT_MAPPING_FIELD_KEY in mapping:
        customer = {k: v for k, v in mapping.items() if k != ROOT_MAPPING_FIELD_KEY}
        root = mapping[ROOT_MAPPING_FIELD_KEY]
        if root is None or root is UNDEFINED:
            raise MappingError("Cannot convert undefined or null to object")
        keys = _object_keys(root)
        if len(keys) > 1:
            raise MappingError("The root mapping must only have a single directive object")
        directive = js.get_prop(root, keys[0] if keys else "undefined")
        if not js.truthy(directive) or js.typeof(directive) != "object":
            raise MappingError("The root directive must be an object")
        if type(directive) is dict:
            directive["mapping"] = customer
        return root
    spread: dict[str, Any] = {}
    _assign(spread, mapping)
    return spread


def _object_keys(value: Any) -> list[str]:
    t = type(value)
    if t is dict:
        return js.js_keys(value)
    if t is list:
        return [str(i) for i in range(len(value))]
    if t is str:
        return [str(i) for i in range(len(js.utf16_units(value)))]
    return []


def _validated(mapping: Any) -> Any:
    """Prepare and validate like transform(); raises MappingError with Segment's message."""
    processed = _prepare(mapping)
    try:
        validate(processed)
    except (ValidationError, AggregateValidationError) as exc:
        raise MappingError(exc.message) from None
    return processed


def _transform(opts: Any) -> Resolver:
    if type(opts) is not dict:
        return _fail('@transform requires an object with an "apply" key and a "mapping" key')
    mapping = opts.get("mapping", UNDEFINED)
    if not js.truthy(mapping):
        return _fail('@transform requires a "mapping" key')
    apply = opts.get("apply", UNDEFINED)
    if not js.truthy(apply):
        return _fail('@transform requires a "apply" key')
    if type(apply) is not dict:
        return _fail('@transform "apply" key should be an object')
    try:
        apply_fn: Resolver | None = _compile(_validated(apply))
        apply_error = None
    except MappingError as exc:
        apply_fn, apply_error = None, str(exc)
    mapping_fn = _compile(mapping)

    def resolver(payload: Any) -> Any:
        if payload is UNDEFINED:
            payload = {}
        if type(payload) is not dict:
            raise MappingError(f"data must be an object, got {js.real_type_of(payload)}")
        if apply_fn is None:
            raise MappingError(apply_error or "")
        new_payload = _finish(apply_fn(payload), json_like=False)
        return mapping_fn(new_payload)

    return resolver


# @excludeWhenNull


def clean_nulls(value: Any) -> Any:
    """mapping-kit's cleanNulls: null values in (nested) objects become undefined."""
    if type(value) is not dict:
        return value
    root = dict(value)
    stack = [root]
    while stack:
        d = stack.pop()
        for key, item in d.items():
            if item is None:
                d[key] = UNDEFINED
            elif type(item) is dict:
                child = dict(item)
                d[key] = child
                stack.append(child)
    return root


def _exclude_when_null(value: Any) -> Resolver:
    fn = _compile(value)

    def resolver(payload: Any) -> Any:
        v = fn(payload)
        if v is None:
            return UNDEFINED
        return clean_nulls(v)

    return resolver


def _liquid(value: Any) -> Resolver:
    raise MappingError("@liquid is not supported")


_DIRECTIVES: dict[str, Callable[[Any], Resolver]] = {
    "@if": _if,
    "@case": _case,
    "@replace": _replace,
    "@arrayPath": _array_path,
    "@path": _path,
    "@template": _template,
    "@literal": _literal,
    "@flatten": _flatten,
    "@json": _json,
    "@merge": _merge,
    "@transform": _transform,
    "@excludeWhenNull": _exclude_when_null,
    "@liquid": _liquid,
}


# ------------------------------------------------------------------ finishing

_PLAIN = frozenset({str, int, bool, type(None)})


def _finish(value: Any, json_like: bool = True) -> Any:
    """removeUndefined (a copy in JavaScript key order), iteratively.

    With ``json_like`` the result is also what ``JSON.stringify`` would keep:
    functions dropped from objects, undefined/functions in arrays and
    non-finite numbers become None.
    """
    t = type(value)
    if t is not dict and t is not list:
        if json_like:
            if t is js.JSFunction:
                return UNDEFINED
            if t is float and not math.isfinite(value):
                return None
        return value
    root: Any = {} if t is dict else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    plain = _PLAIN
    while stack:
        src, dst, depth = stack.pop()
        if depth > MAX_NESTING:
            raise MappingError(f"mapped value is nested more than {MAX_NESTING} levels deep")
        if type(src) is dict:
            reorder = False
            for key, item in src.items():
                if "0" <= key < ":":
                    reorder = True  # maybe an array index: JavaScript lists those first
                ti = type(item)
                if ti in plain:
                    dst[key] = item
                elif ti is dict:
                    child: Any = {}
                    dst[key] = child
                    stack.append((item, child, depth + 1))
                elif ti is list:
                    child = []
                    dst[key] = child
                    stack.append((item, child, depth + 1))
                elif ti is float:
                    dst[key] = item if not json_like or math.isfinite(item) else None
                elif item is UNDEFINED or (json_like and ti is js.JSFunction):
                    continue
                else:
                    dst[key] = item
            if reorder and not js.js_ordered(dst):
                items = [(k, dst[k]) for k in js.js_keys(dst)]
                dst.clear()
                dst.update(items)
        else:
            for item in src:
                ti = type(item)
                if ti in plain:
                    dst.append(item)
                elif ti is dict or ti is list:
                    child = {} if ti is dict else []
                    dst.append(child)
                    stack.append((item, child, depth + 1))
                elif ti is float:
                    dst.append(item if not json_like or math.isfinite(item) else None)
                elif json_like and (item is UNDEFINED or ti is js.JSFunction):
                    dst.append(None)
                else:
                    dst.append(item)
    return root


# ------------------------------------------------------------------ public API


class _NotFlat(Exception):
    """A mapping whose values need _finish below their top level."""


# Directives whose result is a string or a value read from the event as it is (whatever their options).
_READS = ("@path", "@template", "@replace")
# Directives that return what their own options resolve to: flat when those are.
_PASSES = {"@if": _if, "@case": _case, "@literal": _literal}


def _flat(node: Any) -> Resolver:
    """The resolver of ``node`` when its result needs finishing at its top level only; else _NotFlat.

    That holds for values read from an event as jsonwire.loads holds it (keys in JavaScript order,
    no undefined inside, nothing but JSON), for strings, and for constants (finished once, here).
    """
    t = type(node)
    if t is dict and _is_directive(node):
        name = next(k for k in node if k.startswith("@"))
        if name in _READS or name not in _DIRECTIVES:  # an unknown name fails alike either way
            return _compile(node)
        if name in _PASSES:
            return _PASSES[name](node[name], _flat)
        raise _NotFlat(name)
    if (t is dict or t is list) and _has_directive_keys(node):
        raise _NotFlat("an object or array holding directives")
    return _constant(_finish(node) if t is dict or t is list else node)


def _flat_fields(processed: Any) -> tuple[tuple[str, Resolver, Any], ...] | None:
    """(key, resolver, mapping node) of each top-level field of a mapping that is flat (see _flat), or None."""
    if type(processed) is not dict or _is_directive(processed):
        return None
    try:
        return tuple((key, _flat(processed[key]), processed[key]) for key in js.js_keys(processed))
    except _NotFlat:
        return None


class Mapping:
    """A compiled mapping; ``resolve(event)`` is mapping-kit's ``transform(mapping, event)``."""

    __slots__ = ("source", "_resolver", "_fields")

    def __init__(self, source: Any, resolver: Resolver, fields: tuple[tuple[str, Resolver, Any], ...] | None = None):
        self.source = source
        self._resolver = resolver
        self._fields = fields

    @property
    def flat_fields(self) -> tuple[tuple[str, Resolver, Any], ...] | None:
        """(key, resolver, mapping node) per field when the mapping is flat (see resolve_shared), else None."""
        return self._fields

    def resolve(self, event: dict) -> Any:
        """The result, a copy: nothing in it is shared with ``event`` or the mapping."""
        if type(event) is not dict:
            raise MappingError(f"data must be an object, got {js.real_type_of(event)}")
        try:
            return _finish(self._resolver(event))
        except RecursionError:
            raise MappingError("mapping nested too deeply") from None

    def resolve_shared(self, event: dict) -> Any:
        """The result of :meth:`resolve`, but below its top level shared with ``event`` (and the
        mapping's constants) where the mapping is flat: the caller must not modify it.

        Flat (each field a @path, @template, @replace, constant, or @if/@case/@literal of those:
        Segment's presets and most custom mappings) needs no copy: for an event as jsonwire.loads
        holds it, removeUndefined only drops undefined fields (and makes a nested non-finite
        number null, which every serialiser here prints as null anyway, as JSON.stringify does).
        """
        if self._fields is None:
            return self.resolve(event)
        if type(event) is not dict:
            raise MappingError(f"data must be an object, got {js.real_type_of(event)}")
        try:
            payload = {}
            for key, resolver, _ in self._fields:
                value = resolver(event)
                if type(value) is float:
                    if not math.isfinite(value):
                        value = None
                elif value is UNDEFINED or type(value) is js.JSFunction:
                    continue
                payload[key] = value
            return payload
        except RecursionError:
            raise MappingError("mapping nested too deeply") from None

    def __repr__(self) -> str:
        return f"Mapping({self.source!r})"


def _uses_liquid(mapping: Any) -> bool:
    stack = [mapping]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is dict:
            if "@liquid" in item and _is_directive(item):
                return True
            stack.extend(item.values())
        elif t is list:
            stack.extend(item)
    return False


def compile_mapping(mapping: Any) -> Mapping:
    """Compile a Segment mapping; raises MappingError where mapping-kit refuses it.

    The message is Segment's (``/properties/foo/@path should be a string or a
    mapping directive but it is a number.``), several joined with ``"; "``.
    """
    try:
        processed = _validated(copy.deepcopy(mapping))
        if _uses_liquid(processed):
            raise MappingError("@liquid is not supported")
        return Mapping(mapping, _compile(processed), _flat_fields(processed))
    except RecursionError:
        raise MappingError("mapping nested too deeply") from None
