"""Segment's Destination Filter Query Language, compiled to tsub's JSON form.

A filter's ``if`` is FQL (Segment's "Destination Filter Query Language"
page). Segment compiles it on its servers into the intermediate form that
``@segment/tsub`` evaluates, a matcher ``{"type": "fql", "ir": "<JSON>"}``
or ``{"type": "all"}``. :func:`compile_fql` does that compilation here, to
the same form, so :mod:`service.routing.filters.evaluate` can run it exactly as tsub
does:

    field path      "properties.total"                (a string)
    literal         {"value": 42}, {"value": "x"}, {"value": null}, {"value": true}
    list            {"value": [{"value": 1}, {"value": "a"}]}   (items wrapped, paths stay strings)
    operator        ["=", left, right]    = != < <= > >= in
    logic           ["and", a, b]  ["or", a, b]  ["!", a]
    function        ["contains", a, b]  ["match", a, b]  ["lowercase", a]
                    ["length", a]  ["typeof", a]  ["semver", a, op, b]

Chains nest to the right, as Segment's compiler emits them:
``a and b and c`` is ``["and", a, ["and", b, c]]`` (recorded from Segment's
own settings, see tools/oracle/record_filters.js).

The text is lexed by the port of ``@segment/fql-ts``'s lexer
(:mod:`service.routing.mapping.fql_lexer`). Where Segment's behaviour is not
documented and cannot be recorded, the compiler refuses instead of guessing,
with the position and the way to write it:

- ``and`` and ``or`` mixed at one level (their precedence is undocumented):
  add parentheses;
- a function call inside a function's arguments, a parenthesised condition
  compared with ``=``, ``!`` before a comparison (tsub evaluates these to
  something else than they read): write ``!(a = b)``;
- functions tsub lacks (``uppercase``, ``snakecase``, ``number``, ...);
- a field name holding a dot (tsub splits paths at every dot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.errors import FQLError
from service.jsonwire import js_number
from service.routing.mapping.fql_lexer import LexError, Token, lex_positions
from service.routing.mapping.jsvalue import to_float, utf16_units

# name -> number of arguments, as tsub's isIR() knows them
FUNCTIONS = {"contains": 2, "match": 2, "lowercase": 1, "length": 1, "typeof": 1, "semver": 3}
# Functions on Segment's FQL page that tsub cannot evaluate.
UNSUPPORTED = ("uppercase", "snakecase", "kebabcase", "titlecase", "bool", "string", "number")
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_WHITESPACE = " \t\n"
_SEGMENT_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z")
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?[0-9]*\.?[0-9]*\Z")

ALL = {"type": "all"}


@dataclass(frozen=True)
class _Node:
    """A parsed term: its IR and what kind of term it is (decides what may follow it)."""

    ir: Any
    kind: str  # value, list, path, call, group (a parenthesised condition), condition


def compile_fql(text: str) -> dict:
    """The tsub matcher for FQL ``text``: ``{"type": "all"}`` or ``{"type": "fql", "ir": ...}``; FQLError when it does not compile."""
    if not isinstance(text, str) or not text.strip():
        raise FQLError('the condition is empty: write FQL such as type = "track", or all', 0)
    try:
        tokens, ends = lex_positions(text)
    except LexError as exc:  # the offset is just past the character that stopped the lexer
        raise FQLError(str(exc), max(exc.offset - 1, 0)) from None
    parser = _Parser(text, tokens, ends)
    if len(tokens) == 2 and tokens[0] == Token("ident", "all"):
        return dict(ALL)
    return {"type": "fql", "ir": parser.parse()}


def where(text: str, offset: int) -> str:
    """``line L, column C`` (both from 1) of a UTF-16 ``offset`` into ``text``."""
    units = _units(text)[:offset]
    line = units.count("\n")
    column = len(units) - (units.rfind("\n") + 1)
    return f"line {line + 1}, column {column + 1}"


def _units(text: str) -> str:
    return "".join(utf16_units(text))


class _Parser:
    def __init__(self, text: str, tokens: list[Token], ends: list[int]):
        self.tokens = tokens
        units = _units(text)
        self.starts = []
        previous = 0
        for end in ends:
            start = previous
            while start < len(units) and units[start] in _WHITESPACE:
                start += 1
            self.starts.append(min(start, end))
            previous = end
        self.i = 0
        for index, token in enumerate(tokens):
            source = units[self.starts[index] : ends[index]]
            if token.type == "ident" and "\\" not in source and source != token.value:
                # fql-ts drops a keyword prefix running into the end: "x = an" lexes as "x = a"
                raise self.fail(f"{source!r} at the end is read as {token.value!r} by Segment's lexer: add a space after it", index)

    # -- token helpers --------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def fail(self, message: str, token_index: int | None = None) -> FQLError:
        index = self.i if token_index is None else token_index
        return FQLError(message, self.starts[min(index, len(self.starts) - 1)])

    def unexpected(self, wanted: str) -> FQLError:
        token = self.peek()
        seen = "the end of the condition" if token.type == "eos" else repr(token.value)
        return self.fail(f"expected {wanted}, got {seen}")

    def expect(self, kind: str, wanted: str) -> Token:
        if self.peek().type != kind:
            raise self.unexpected(wanted)
        return self.next()

    # -- grammar ---------------------------------------------------------------

    def parse(self) -> Any:
        node = self.logical()
        if self.peek().type != "eos":
            token = self.peek()
            if token.type == "operator" and token.value in COMPARISONS:
                raise self.fail(
                    f"{token.value!r} cannot follow this term: compare a field, a value or a function, and write !(a = b) to negate a comparison"
                )
            raise self.unexpected("'and', 'or' or the end of the condition")
        return node.ir

    def logical(self) -> _Node:
        """unary ((and | or) unary)*, one connective per level, nested to the right."""
        first = self.unary()
        if self.peek().type != "conditional":
            return first
        operands = [first]
        connective = self.peek().value
        while self.peek().type == "conditional":
            if self.peek().value != connective:
                raise self.fail(
                    f"'{connective}' and '{self.peek().value}' are mixed without parentheses "
                    "(Segment does not document which binds first): add parentheses, e.g. (a and b) or c"
                )
            self.next()
            operands.append(self.unary())
        ir = operands[-1].ir
        for operand in reversed(operands[:-1]):
            ir = [connective, operand.ir, ir]
        return _Node(ir, "condition")

    def unary(self) -> _Node:
        token = self.peek()
        if token.type == "operator" and token.value == "!":
            self.next()
            target = self.term(allow_list=False)
            after = self.peek()
            if (after.type == "operator" and after.value in COMPARISONS) or (after.type == "ident" and after.value == "in"):
                raise self.fail(f"'!' negates only the term right after it, not the '{after.value}': write !(a {after.value} b)")
            return _Node(["!", target.ir], "condition")
        return self.comparison()

    def comparison(self) -> _Node:
        left_index = self.i
        left = self.term(allow_list=True)
        token = self.peek()
        if token.type == "operator" and token.value in COMPARISONS:
            self._comparable(left, left_index)
            self.next()
            right_index = self.i
            right = self.term(allow_list=True)
            self._comparable(right, right_index)
            return _Node([token.value, left.ir, right.ir], "condition")
        if token.type == "ident" and token.value == "in":
            if left.kind not in ("value", "path"):
                raise self.fail("'in' takes a string, number, boolean, null or field on its left", left_index)
            self.next()
            right_index = self.i
            right = self.term(allow_list=True)
            if right.kind not in ("list", "path"):
                raise self.fail("'in' takes a list such as ['a', 'b'] or a field holding a list on its right", right_index)
            return _Node(["in", left.ir, right.ir], "condition")
        if left.kind == "list":
            raise self.fail("a list alone is not a condition: compare it, or use it after 'in'", left_index)
        return left

    def _comparable(self, node: _Node, index: int) -> None:
        if node.kind in ("group", "condition"):
            raise self.fail("a parenthesised condition cannot be compared: compare fields, values or functions", index)

    def term(self, allow_list: bool) -> _Node:
        token = self.peek()
        if token.type == "parenleft":
            self.next()
            inner = self.logical()
            self.expect("parenright", "')'")
            return _Node(inner.ir, "group")
        if token.type == "brackleft" and not allow_list:
            raise self.fail("'!' negates a condition, a field or a function, not a list")
        return self.operand(function_argument=False)

    def operand(self, function_argument: bool) -> _Node:
        """A literal, a list or a field path."""
        token = self.peek()
        if token.type == "string":
            self.next()
            return _Node({"value": token.value[1:-1]}, "value")
        if token.type == "number":
            value = self.number(token)
            self.next()
            return _Node({"value": value}, "value")
        if token.type == "null":
            self.next()
            return _Node({"value": None}, "value")
        if token.type == "brackleft":
            return self.list_()
        if token.type == "ident":
            if self.peek(1).type == "parenleft":
                if function_argument:
                    raise self.fail(
                        f"{token.value}() inside a function's arguments: tsub does not evaluate a function there "
                        "(it would see the call itself, not its result)"
                    )
                return self.call()
            if token.value in ("true", "false") and self.peek(1).type != "dot":
                self.next()
                return _Node({"value": token.value == "true"}, "value")
            return self.path()
        raise self.unexpected("a field, a value, a list, a function or '('")

    def number(self, token: Token) -> int | float:
        """The number as tsub holds it once the compiled form is parsed: a double."""
        text = token.value
        if _INTEGER.match(text) or (_DECIMAL.match(text) and any(c.isdigit() for c in text)):
            held = js_number(to_float(int(text)) if _INTEGER.match(text) else float(text))
            if held is not None:
                return held
        raise self.fail(f"{text!r} is not a number")

    def list_(self) -> _Node:
        self.expect("brackleft", "'['")
        items = []
        if self.peek().type != "brackright":
            while True:
                item = self.operand(function_argument=True)
                items.append(item.ir)
                if self.peek().type == "comma":
                    self.next()
                    continue
                break
        self.expect("brackright", "',' or ']'")
        return _Node({"value": items}, "list")

    def call(self) -> _Node:
        name_index = self.i
        name = self.next().value
        if name not in FUNCTIONS:
            hint = " (Segment's servers know it, tsub does not)" if name in UNSUPPORTED else ""
            raise self.fail(f"unknown function {name}(){hint}; functions: {', '.join(f'{f}()' for f in FUNCTIONS)}", name_index)
        self.expect("parenleft", "'('")
        args = []
        if self.peek().type != "parenright":
            while True:
                args.append(self.operand(function_argument=True).ir)
                if self.peek().type == "comma":
                    self.next()
                    continue
                break
        self.expect("parenright", "',' or ')'")
        if len(args) != FUNCTIONS[name]:
            wanted = FUNCTIONS[name]
            raise self.fail(f"{name}() takes {wanted} argument{'s' if wanted > 1 else ''}, got {len(args)}", name_index)
        return _Node([name, *args], "call")

    def path(self) -> _Node:
        """ident ('.' (ident | number))*, joined with dots as tsub reads it."""
        start = self.i
        segments = [self._segment(self.next())]
        while self.peek().type == "dot":
            self.next()
            token = self.peek()
            if token.type == "ident":
                segments.append(self._segment(self.next()))
            elif token.type == "number" and _SEGMENT_NUMBER.match(token.value):
                self.next()
                digits = token.value.split(".")
                if token.value.endswith("."):  # "items.0.name" lexes as items . "0." name
                    digits.pop()
                    if self.peek().type != "ident":
                        raise self.unexpected("a field name after '.'")
                    segments.extend(digits)
                    segments.append(self._segment(self.next()))
                else:
                    segments.extend(digits)
            else:
                raise self.unexpected("a field name after '.'")
        if any(not s for s in segments):
            raise self.fail("empty field name in a path", start)
        return _Node(".".join(segments), "path")

    def _segment(self, token: Token) -> str:
        if "." in token.value:
            raise self.fail(
                f"field name {token.value!r} holds a '.': tsub splits paths at every dot, so it cannot be reached",
                self.i - 1,
            )
        return token.value
