"""Segment's subscription triggers (``@segment/destination-subscriptions``).

``compile_trigger(text)`` parses a trigger the way ``parseFql`` does and
turns it into a tree of small closures; ``Trigger.matches(event)`` gives
what ``validate(parseFql(text), event)`` gives.

Segment's language is looser than it looks, and this module keeps every
quirk because they decide which events reach Kameleoon:

- Conditions are ``<field> <operator> <value>``. Fields: ``type``,
  ``event``, ``name``, ``userId``, ``properties.<path>``,
  ``traits.<path>``, ``context.<path>``. Any other leading identifier is
  skipped (its operator and value tokens with it, if it names a member of
  ``Object.prototype`` such as ``constructor``).
- A group's operator is the *last* ``and``/``or`` seen in it:
  ``a and b or c`` means ``a or b or c``.
- Parentheses group once; nested parentheses do not parse.
- ``!`` negates only ``contains(...)`` and ``match(...)``; before anything
  else it is ignored.
- ``match(f, "x*")`` is "starts with x"; any other pattern is "ends with"
  the pattern minus its first character (``"*x"`` -> ends with ``x``).
- ``=``/``!=`` compare as strings (``!=`` is true for missing fields);
  on properties/traits/context, ``= <number>`` needs a number,
  ``= true``/``= false`` a boolean, ``= null`` a missing or null value,
  ``!= null`` a present one; ``<``, ``<=``, ``>``, ``>=`` need a number.
- Paths read like JavaScript's ``o && o[k]``: ``properties.name.length``
  is a string's length, ``properties.items.0`` an array item.

A trigger that Segment cannot parse raises :class:`TriggerError` with
Segment's message. A few triggers parse but throw while an event is
checked (an empty ``()`` group, a path made only of dots or brackets);
``matches`` then raises :class:`TriggerError` too, where Segment's
runtime would throw.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from service.errors import TriggerError
from service.routing.mapping import jsvalue as js
from service.routing.mapping.fql_lexer import EOS, Token, lex, normalize

__all__ = ["Trigger", "compile_trigger"]

_UNDEFINED_TYPE = "Cannot read properties of undefined (reading 'type')"

_CONDITION_TYPES = {
    "type": "event-type",
    "event": "event",
    "name": "name",
    "userId": "userId",
    "context": "event-context",
    "properties": "event-property",
    "traits": "event-trait",
}
_PREFIX = {"event-context": "context", "event-property": "properties", "event-trait": "traits"}


class _ParseError(Exception):
    pass


def _token_value(token: Token) -> Any:
    """getTokenValue: strings lose their double quotes, numbers become numbers, true/false booleans."""
    if token.type == "string":
        v = token.value
        if v.startswith('"'):
            v = v[1:]
        if v.endswith('"'):
            v = v[:-1]
        return v
    if token.type == "number":
        return js.string_to_number(token.value)
    if token.type == "ident" and token.value in ("true", "false"):
        return token.value == "true"
    return token.value


def _str_value(token: Token) -> str:
    return js.to_string(_token_value(token))


def _strip_prefix(value: str, prefix: str) -> str:
    return value[len(prefix) + 1 :] if value.startswith(prefix + ".") else value


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0

    def shift(self) -> Token | None:
        if self.i < len(self.tokens):
            t = self.tokens[self.i]
            self.i += 1
            return t
        return None

    def parse(self) -> Any:
        nodes: list[Any] = []
        operator = "and"
        token = self.shift()
        while token is not None and token.type != "eos":
            if token.type == "ident":
                start = token.value.split(".")[0]
                ctype = _CONDITION_TYPES.get(start)
                if ctype is None and start in js.OBJECT_PROTO_NAMES:
                    ctype = "prototype"
                if ctype is not None:
                    op = self.shift()
                    if op is None:
                        raise _ParseError("Operator token is missing")
                    val = self.shift()
                    if val is None:
                        raise _ParseError("Value token is missing")
                    node = self.condition(ctype, token, op, val)
                    if node is not None:
                        nodes.append(node)
                if token.value in ("contains", "match"):
                    self.function(token.value, nodes, negate=False)
            if token.type == "operator" and token.value == "!":
                if self.i >= len(self.tokens):
                    raise _ParseError(_UNDEFINED_TYPE)
                nxt = self.tokens[self.i]
                if nxt.type == "ident" and nxt.value in ("contains", "match"):
                    self.shift()
                    self.function(nxt.value, nodes, negate=True)
            if token.type == "parenleft":
                group: list[Token] = []
                g = self.shift()
                while True:
                    if g is None:
                        raise _ParseError(_UNDEFINED_TYPE)
                    if g.type == "parenright":
                        break
                    group.append(g)
                    g = self.shift()
                group.append(EOS)
                nodes.append(_Parser(group).parse())
            if token.type == "conditional":
                operator = token.value
            token = self.shift()
        if len(nodes) > 1:
            return {"type": "group", "operator": operator, "children": nodes}
        return nodes[0] if nodes else None

    @staticmethod
    def condition(ctype: str, token: Token, op: Token, val: Token) -> dict | None:
        opv = op.value
        is_true = opv == "=" and val.value == "true"
        is_false = opv == "=" and val.value == "false"
        is_exists = opv == "!=" and val.value == "null"
        is_not_exists = opv == "=" and val.value == "null"
        if ctype in ("event", "event-type"):
            return {"type": ctype, "operator": opv, "value": _str_value(val)}
        if ctype == "name":
            if is_exists:
                return {"type": "name", "operator": "exists"}
            if is_not_exists:
                return {"type": "name", "operator": "not_exists"}
            return {"type": "name", "operator": opv, "value": _str_value(val)}
        if ctype == "userId":
            for flag, name in ((is_exists, "exists"), (is_not_exists, "not_exists"), (is_true, "is_true"), (is_false, "is_false")):
                if flag:
                    return {"type": "userId", "operator": name}
            return {"type": "userId", "operator": opv, "value": _str_value(val)}
        if ctype in _PREFIX:
            name = _strip_prefix(token.value, _PREFIX[ctype])
            for flag, opname in ((is_exists, "exists"), (is_not_exists, "not_exists"), (is_true, "is_true"), (is_false, "is_false")):
                if flag:
                    return {"type": ctype, "name": name, "operator": opname}
            if opv == "=" and val.type == "number":
                return {"type": ctype, "name": name, "operator": "number_equals", "value": _token_value(val)}
            if opv == "!=" and val.type == "number":
                return {"type": ctype, "name": name, "operator": "number_not_equals", "value": _token_value(val)}
            return {"type": ctype, "name": name, "operator": opv, "value": _token_value(val)}
        return None  # an Object.prototype member: tokens consumed, no condition

    def function(self, name: str, nodes: list, negate: bool) -> None:
        self.shift()
        name_token = self.shift()
        if name_token is None:
            raise _ParseError(f"{name}() is missing a 1st argument")
        self.shift()
        value_token = self.shift()
        if value_token is None:
            raise _ParseError(f"{name}() is missing a 2nd argument")
        self.shift()
        if name == "contains":
            operator = "not_contains" if negate else "contains"
            value = _str_value(value_token)
        elif value_token.value.endswith('*"'):
            operator = "not_starts_with" if negate else "starts_with"
            value = js.from_units(js.utf16_units(_str_value(value_token))[:-1])
        else:
            operator = "not_ends_with" if negate else "ends_with"
            value = js.from_units(js.utf16_units(_str_value(value_token))[1:])
        field = name_token.value
        if field in ("event", "name", "userId"):
            nodes.append({"type": field, "operator": operator, "value": value})
        for prefix, ctype in (("properties", "event-property"), ("traits", "event-trait"), ("context", "event-context")):
            if field.startswith(prefix):
                nodes.append({"type": ctype, "name": _strip_prefix(field, prefix), "operator": operator, "value": value})


def parse_fql(text: str) -> dict:
    """The condition tree ``parseFql`` builds (groups and conditions as dicts); raises TriggerError."""
    tokens = lex(text)
    try:
        ast = _Parser(normalize(tokens or [])).parse()
    except _ParseError as exc:
        raise TriggerError(str(exc)) from None
    if ast is None:
        raise TriggerError(_UNDEFINED_TYPE)
    if ast.get("type") != "group":
        ast = {"type": "group", "operator": "and", "children": [ast]}
    return ast


# ------------------------------------------------------------------ evaluation

_PATH_PART = re.compile(r"[^\[.\]]+")
_FIELD_OF = {"event-type": "type", "event": "event", "name": "name", "userId": "userId"}
_ROOT_OF = {"event-property": "properties", "event-trait": "traits", "event-context": "context"}

Check = Callable[[Any], bool]


def _raiser(message: str) -> Check:
    def check(event: Any) -> bool:
        raise TriggerError(message)

    return check


def _getter(node: dict) -> Callable[[Any], Any] | str:
    """How a condition reads its value from an event; a str is an error it throws."""
    ctype = node["type"]
    if ctype in _FIELD_OF:
        field = _FIELD_OF[ctype]

        def read_field(event: Any) -> Any:
            if type(event) is dict:
                return event.get(field, js.UNDEFINED)
            return js.get_prop(event, field)

        return read_field
    root = _ROOT_OF[ctype]
    name = node["name"]
    if not name:
        return lambda event: js.UNDEFINED
    parts = tuple(_PATH_PART.findall(name))
    if not parts:
        return "Cannot read properties of null (reading 'reduce')"

    def read_path(event: Any) -> Any:
        base = event.get(root, js.UNDEFINED) if type(event) is dict else js.get_prop(event, root)
        return js.walk(base, parts)

    return read_path


def _number_check(op: str, expected: Any) -> Callable[[Any], bool]:
    exp = js.to_number(expected)
    ops: dict[str, Callable[[float], bool]] = {
        "number_equals": lambda a: a == exp,
        "number_not_equals": lambda a: a != exp,
        "<": lambda a: a < exp,
        "<=": lambda a: a <= exp,
        ">": lambda a: a > exp,
        ">=": lambda a: a >= exp,
    }
    compare = ops[op]

    def check(actual: Any) -> bool:
        t = type(actual)
        if t is int or t is float:
            return compare(js.to_float(actual))
        return False

    return check


def _string_check(op: str, expected: Any) -> Callable[[Any], bool]:
    exp = js.to_string(expected)
    units = any("\ud800" <= c <= "\udfff" for c in exp)  # a lone surrogate: compare UTF-16 units

    def as_units(s: str) -> str:
        return "".join(js.utf16_units(s)) if units else s

    if op in ("contains", "not_contains"):
        want = op == "contains"
        return lambda a: type(a) is str and ((exp in as_units(a)) is want)
    if op in ("starts_with", "not_starts_with"):
        want = op == "starts_with"
        return lambda a: type(a) is str and (as_units(a).startswith(exp) is want)
    want = op == "ends_with"
    return lambda a: type(a) is str and (as_units(a).endswith(exp) is want)


def _value_check(op: str, expected: Any) -> Callable[[Any], bool]:
    if op == "=":
        exp = js.to_string(expected)
        return lambda a: type(a) is str and a == exp
    if op == "!=":
        exp = js.to_string(expected)
        return lambda a: not (type(a) is str and a == exp)
    if op in ("number_equals", "number_not_equals", "<", "<=", ">", ">="):
        return _number_check(op, expected)
    if op in ("contains", "not_contains", "starts_with", "not_starts_with", "ends_with", "not_ends_with"):
        return _string_check(op, expected)
    if op == "exists":
        return lambda a: a is not None and a is not js.UNDEFINED
    if op == "not_exists":
        return lambda a: a is None or a is js.UNDEFINED
    if op == "is_true":
        return lambda a: a is True
    if op == "is_false":
        return lambda a: a is False
    return lambda a: False


def _compile(node: Any) -> Check:
    if node is None:
        return _raiser(_UNDEFINED_TYPE)
    if node["type"] == "group":
        children = [_compile(child) for child in node["children"]]
        if node["operator"] == "and":
            if len(children) == 1:
                return children[0]
            return lambda event: all(child(event) for child in children)
        if node["operator"] == "or":
            return lambda event: any(child(event) for child in children)
        return lambda event: False
    getter = _getter(node)
    if isinstance(getter, str):
        return _raiser(getter)
    test = _value_check(node["operator"], node.get("value", js.UNDEFINED))
    return lambda event: test(getter(event))


class Trigger:
    """A compiled subscription trigger."""

    __slots__ = ("text", "ast", "_check")

    def __init__(self, text: str, ast: dict):
        self.text = text
        self.ast = ast
        self._check = _compile(ast)

    def matches(self, event: Any) -> bool:
        """Whether Segment would send ``event`` through this subscription."""
        if event is js.UNDEFINED:
            return False
        return self._check(event)

    def __repr__(self) -> str:
        return f"Trigger({self.text!r})"


def compile_trigger(text: str) -> Trigger:
    """Parse ``text`` as Segment does; raises TriggerError when Segment rejects it."""
    if not isinstance(text, str) or not text:
        raise TriggerError("Failed to validate subscription")
    return Trigger(text, parse_fql(text))
