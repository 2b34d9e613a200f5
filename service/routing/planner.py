"""A subscription's mapping, validation and ``perform`` as one plain function, made once.

For a flat mapping (see Mapping.resolve_shared) :func:`compile_body` writes the
Python of one function ``body(event)``: each field read straight off the event
(``event.get(...)`` where that says what JavaScript's ``o && o[k]`` says, the
mapping's own resolver otherwise), validated in line where nothing can fail
but a string's emptiness or date-time format, the visitor code folded into
``properties``. It returns Segment's body, or None the moment anything is not
the plain case (a value to coerce, a type to refuse, a required field missing):
the caller then takes the general way (mapping, Validator, Action.body), which
says exactly what is wrong. So the function only ever returns what the general
way would have returned; tests/test_compiled.py holds the two to each other.

:func:`type_dispatch`: when every trigger is ``type = "<name>"`` (Segment's
presets and most setups), the subscriptions an event may match, by its type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.routing.actions.base import VISITOR_CODE, Action
from service.routing.mapping import jsvalue as js
from service.routing.mapping.directives import Mapping, _strip_root, path_keys
from service.routing.validation import check_runtime_limits, is_date_time

Body = Callable[[dict], "dict | None"]


def _plain_path(node: Any) -> tuple[str, ...] | None:
    """The keys of a ``{"@path": "$.a.b"}`` node whose every key reads as a dict key (no prototype
    member, no whole-event path); None for any other node."""
    if type(node) is not dict or len(node) != 1 or type(node.get("@path")) is not str:
        return None
    keys = path_keys(_strip_root(node["@path"]))
    if not keys or any(key in js.OBJECT_PROTO_NAMES for key in keys):
        return None
    return keys


def _read(keys: tuple[str, ...], indent: str) -> list[str]:
    """Statements leaving in ``v`` what ``keys.reduce((o, k) => o && o[k], event)`` gives."""
    lines = [f"{indent}v = event.get({keys[0]!r}, U)"]
    for key in keys[1:]:
        lines.append(f"{indent}v = v.get({key!r}, U) if type(v) is dict else walk(v, ({key!r},))")
    return lines


def _first_of(node: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``{"@if": {"exists": P, "then": P, "else": Q}}`` with plain paths P and Q: (P's keys, Q's keys)."""
    if type(node) is not dict or len(node) != 1 or type(node.get("@if")) is not dict:
        return None
    opts = node["@if"]
    if set(opts) != {"exists", "then", "else"} or opts["exists"] != opts["then"]:
        return None
    first, other = _plain_path(opts["then"]), _plain_path(opts["else"])
    return (first, other) if first and other else None


def compile_body(mapping: Mapping, action: Action) -> Body | None:
    """``body(event)``: Segment's body for a flat ``mapping`` of ``action``, or None to take the general
    way; None (no function) when the mapping is not flat."""
    fields = mapping.flat_fields
    if fields is None:
        return None
    resolvers: list[Any] = []
    lines = ["def body(event):", "    out = {}", "    props = code = None"]
    present: set[str] = set()
    for key, resolver, node in fields:
        field = action.by_name.get(key)
        plain, either = _plain_path(node), _first_of(node)
        if plain:
            lines += _read(plain, "    ")
        elif either:
            lines += _read(either[0], "    ") + ["    if v is U or v is None:"] + _read(either[1], "        ")
        else:
            lines.append(f"    v = R[{len(resolvers)}](event)")
            resolvers.append(resolver)
        if field is None:
            continue  # removeAdditional: read (a read may fail) but not kept
        target = "code" if key == VISITOR_CODE else "props" if key == "properties" else None
        store = f"{target} = v" if target == "code" else f"out[{key!r}] = v"
        if field.type == "string":
            lines += ["    if type(v) is str:", "        if v:"]
            if field.format == "date-time":
                lines += ["            if not is_date_time(v):", "                return None"]
            lines += [f"            {store}", "    elif v is not U and v is not None:", "        return None"]
        else:
            lines += ["    if type(v) is dict:", f"        {store}"]
            if target == "props":
                lines.append("        props = v")
            lines += ["    elif not (v is U or v is None or v == ''):", "        return None"]
        present.add(key)
    for f in action.fields:
        if f.required:
            if f.name not in present:
                return None  # never there: the general way says so
            lines += [f"    if {'code is None' if f.name == VISITOR_CODE else repr(f.name) + ' not in out'}:", "        return None"]
    lines += [
        "    limits(event)",
        "    properties = dict(props) if props else {}",
        "    if code is None:",
        f"        properties.pop({VISITOR_CODE!r}, None)",
        "    else:",
        f"        properties[{VISITOR_CODE!r}] = code",
        "    out['properties'] = properties",
        "    return out",
    ]
    source = "\n".join(lines) + "\n"
    scope = {"U": js.UNDEFINED, "walk": js.walk, "is_date_time": is_date_time, "limits": check_runtime_limits, "R": tuple(resolvers)}
    exec(compile(source, f"<body of {action.slug}>", "exec"), scope)  # noqa: S102 -- our own source, made from the mapping's shape
    function = scope["body"]
    function.source = source
    return function


def type_dispatch(subscriptions) -> dict[str, tuple] | None:
    """{event type: the subscriptions it matches, in order} when every trigger is ``type = "<name>"``
    alone (then an event matches exactly those of its type, if its type is a string); else None."""
    table: dict[str, list] = {}
    for subscription in subscriptions:
        ast = subscription.trigger.ast
        children = ast.get("children") if ast.get("type") == "group" and ast.get("operator") == "and" else None
        if not children or len(children) != 1:
            return None
        condition = children[0]
        if condition.get("type") != "event-type" or condition.get("operator") != "=" or type(condition.get("value")) is not str:
            return None
        table.setdefault(condition["value"], []).append(subscription)
    return {kind: tuple(subs) for kind, subs in table.items()}
