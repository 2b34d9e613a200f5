"""Tokens of Segment's subscription language, as ``@segment/fql-ts`` lexes them.

The lexer is reproduced with its quirks, because they decide which triggers
Segment accepts and what they mean:

- ``and``, ``or``, ``null``, ``!=``, ``<=``, ``>=`` and a string's closing
  quote count only when followed by whitespace (space, tab, newline), a
  comma, ``]``, ``)`` or the end; ``a!="x"`` is a lexing error while
  ``a != "x"`` is fine.
- Strings have no escapes: ``"..."`` or ``'...'`` runs to the next quote of
  the same kind, and a string token keeps its quotes.
- Identifiers may escape any character with a backslash.
- A keyword prefix running into the end of the input loses its characters
  (``name = an`` lexes as ``name = a``), as in fql-ts.

Any lexing error makes Segment's parser see no tokens at all, so the error
text never reaches the user: :func:`lex` returns None. Destination filters
(``service.routing.filters``) lex with the same rules and do show the error:
:func:`lex_positions` raises :class:`LexError` with fql-ts's message and the
offset where lexing stopped.
"""

from __future__ import annotations

from typing import NamedTuple

from service.routing.mapping.jsvalue import from_units, utf16_units

EOS_FLAG = "-1"
_LIMIT = 100000


class Token(NamedTuple):
    type: str  # ident dot operator conditional string number null brackleft brackright parenleft parenright comma eos
    value: str


EOS = Token("eos", "eos")


class _LexError(Exception):
    pass


class LexError(ValueError):
    """fql-ts's lexing error: its message, and the UTF-16 offset in the code where lexing stopped."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def _is_alpha(c: str) -> bool:
    return len(c) == 1 and ("a" <= c <= "z" or "A" <= c <= "Z")


def _is_number(c: str) -> bool:
    return len(c) == 1 and "0" <= c <= "9"


def _is_whitespace(c: str) -> bool:
    return c == " " or c == "\t" or c == "\n"


def _is_ident(c: str) -> bool:
    if c == EOS_FLAG:
        return False
    return _is_alpha(c) or _is_number(c) or c == "_" or c == "-" or c == "\\"


def _is_terminator(c: str) -> bool:
    return c == EOS_FLAG or _is_whitespace(c) or c == "," or c == "]" or c == ")"


class _Lexer:
    def __init__(self, code: str):
        self.units = utf16_units(code)
        self.pos = 0
        self.ends: list[int] = []  # the offset just past each token, in step with the tokens

    def next(self) -> tuple[str, bool]:
        if self.pos == len(self.units):
            return EOS_FLAG, True
        c = self.units[self.pos]
        self.pos += 1
        return c, False

    def peek(self) -> str:
        c, eos = self.next()
        if not eos:
            self.backup(1)
        return c

    def backup(self, count: int) -> None:
        for _ in range(count):
            if self.pos == 0:
                return
            self.pos -= 1

    def accept(self, s: str) -> bool:
        chars = ""
        for _ in s:
            c, eos = self.next()
            chars += c
            if eos:
                return False
            if _is_terminator(c):
                break
        if s == chars and _is_terminator(self.peek()):
            return True
        self.backup(len(chars))
        return False

    def lex(self) -> list[Token]:
        tokens: list[Token] = []

        def emit(token: Token) -> None:
            tokens.append(token)
            self.ends.append(self.pos)

        while True:
            c, eos = self.next()
            if eos:
                emit(EOS)
                return tokens
            if _is_whitespace(c):
                continue
            if c == "!":
                nxt = self.peek()
                if _is_alpha(nxt) or nxt == "(":
                    emit(Token("operator", "!"))
                    continue
            if _is_alpha(c) or c in ("!", "=", ">", "<", "\\", "_"):
                emit(self.operator_or_conditional(c))
                continue
            if _is_number(c) or c == "-" or c == "+":
                emit(self.number(c))
                continue
            if c == '"' or c == "'":
                emit(self.string(c))
                continue
            simple = {".": "dot", "[": "brackleft", "]": "brackright", ",": "comma", "(": "parenleft", ")": "parenright"}
            if c in simple:
                emit(Token(simple[c], c))
                continue
            raise _LexError(f'invalid character "{c}"')

    def string(self, quote: str) -> Token:
        chars: list[str] = []
        while self.peek() != quote:
            c, eos = self.next()
            chars.append(c)
            if eos:
                raise _LexError("unterminated string")
            if len(chars) >= _LIMIT:
                raise _LexError("unreasonable string length")
        self.accept(quote)
        return Token("string", quote + from_units(chars) + quote)

    def number(self, previous: str) -> Token:
        s = ""
        coming = self.peek()
        decimal = False
        while _is_number(coming) or coming == ".":
            c, _ = self.next()
            s += c
            if coming == ".":
                if _is_terminator(self.peek()):
                    raise _LexError("unexpected terminator after decimal point")
                if decimal:
                    raise _LexError("multiple decimal points in one number")
                decimal = True
            if len(s) >= _LIMIT:
                raise _LexError("unreasonable number length")
            coming = self.peek()
        return Token("number", previous + s)

    def operator_or_conditional(self, previous: str) -> Token:
        if previous == "=":
            return Token("operator", "=")
        if previous == "!":
            if self.accept("="):
                return Token("operator", "!=")
            raise _LexError(f"expected '=' after '!', got '{self.peek()}'")
        if previous == "a":
            if self.accept("nd"):
                return Token("conditional", "and")
            return self.ident(previous)
        if previous == "o":
            if self.accept("r"):
                return Token("conditional", "or")
            return self.ident(previous)
        if previous == "n":
            if self.accept("ull"):
                return Token("null", "null")
            return self.ident(previous)
        if previous in ("<", ">"):
            if self.accept("="):
                return Token("operator", previous + "=")
            return Token("operator", previous)
        return self.ident(previous)

    def ident(self, previous: str) -> Token:
        chars: list[str] = []
        c = previous
        while True:
            if c == "\\":
                if self.peek() == EOS_FLAG:
                    raise _LexError("expected character after escape character, got EOS")
                c, _ = self.next()
            chars.append(c)
            if len(chars) >= _LIMIT:
                raise _LexError("unreasonable literal length")
            if not _is_ident(self.peek()):
                break
            c, _ = self.next()
        coming = self.peek()
        if not (coming == EOS_FLAG or _is_terminator(coming) or coming in (".", "(", "=", "!")):
            raise _LexError(f"expected termination character after identifier, got {coming}")
        return Token("ident", from_units(chars))


def lex(code: str) -> list[Token] | None:
    """The tokens of ``code`` (ending with EOS), or None when fql-ts fails to lex it."""
    try:
        return _Lexer(code).lex()
    except _LexError:
        return None


def lex_positions(code: str) -> tuple[list[Token], list[int]]:
    """The tokens of ``code`` and the UTF-16 offset just past each one; LexError where fql-ts fails."""
    lexer = _Lexer(code)
    try:
        return lexer.lex(), lexer.ends
    except _LexError as exc:
        raise LexError(str(exc), lexer.pos) from None


def normalize(tokens: list[Token]) -> list[Token]:
    """Join ``ident . ident`` runs into one dotted identifier, as destination-subscriptions does."""
    out: list[Token] = []
    i = 0
    n = len(tokens)
    while i < n:
        current = tokens[i]
        last = out[-1] if out else None
        nxt = tokens[i + 1] if i + 1 < n else None
        if last is not None and last.type == "ident" and current.type == "dot" and nxt is not None and nxt.type == "ident":
            out.pop()
            out.append(Token("ident", last.value + current.value + nxt.value))
            i += 2
        else:
            out.append(current)
            i += 1
    return out
