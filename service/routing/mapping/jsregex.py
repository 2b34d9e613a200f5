"""``@replace``'s string replacement, as JavaScript's ``String.prototype.replace``
does it with a fully escaped pattern (so: a literal search).

- flags ``g`` (all matches or the first) and ``i`` (JavaScript's
  non-Unicode case folding: each UTF-16 unit upper-cased, keeping units whose
  upper case is several characters or would turn non-ASCII into ASCII;
  so ``ß`` matches only ``ß`` and ``ſ`` does not match ``s``);
- replacement patterns ``$$``, ``$&``, ``$``` and ``$'`` (the pattern has
  no groups, so ``$1`` or ``$<x>`` stay as written).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from service.routing.mapping.jsvalue import from_units, js_upper, utf16_units

_CLASSES: dict[str, list[str]] | None = None


def _canonical(ch: str) -> str:
    upper = js_upper(ch)
    if len(upper) != 1:
        return ch
    if ord(ch) >= 128 and ord(upper) < 128:
        return ch
    return upper


def _classes() -> dict[str, list[str]]:
    global _CLASSES
    if _CLASSES is None:
        groups: dict[str, list[str]] = {}
        for code in range(0x10000):
            if 0xD800 <= code <= 0xDFFF:
                continue
            ch = chr(code)
            groups.setdefault(_canonical(ch), []).append(ch)
        _CLASSES = groups
    return _CLASSES


def _search_regex(pattern: str, ignorecase: bool) -> re.Pattern[str]:
    if not ignorecase:
        return re.compile(re.escape(pattern))
    classes = _classes()
    parts = []
    for ch in pattern:
        if ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF:
            parts.append(re.escape(ch))
            continue
        same = classes.get(_canonical(ch), [ch])
        if len(same) == 1:
            parts.append(re.escape(ch))
        else:
            parts.append("[" + "".join(re.escape(c) for c in same) + "]")
    return re.compile("".join(parts))


_TOKENS = re.compile(r"\$([$&`'])")


# $$ a dollar sign; $& the match, $` what comes before it, $' what comes after.
_REFERENCES: dict[str, str | int] = {"$": "$", "&": 0, "`": 1, "'": 2}


def _expander(replacement: str) -> Callable[[re.Match[str]], str]:
    pieces: list[str | int] = []  # str literal, or 0 match, 1 before, 2 after
    pos = 0
    for m in _TOKENS.finditer(replacement):
        pieces.append(replacement[pos : m.start()])
        pieces.append(_REFERENCES[m.group(1)])
        pos = m.end()
    pieces.append(replacement[pos:])
    pieces = [p for p in pieces if p != ""]
    if all(isinstance(p, str) for p in pieces):
        text = "".join(pieces)  # type: ignore[arg-type]
        return lambda m: text

    def expand(m: re.Match[str]) -> str:
        out = []
        for p in pieces:
            if p == 0:
                out.append(m.group())
            elif p == 1:
                out.append(m.string[: m.start()])
            elif p == 2:
                out.append(m.string[m.end() :])
            else:
                out.append(p)  # type: ignore[arg-type]
        return "".join(out)

    return expand


def literal_replacer(pattern: str, replacement: str, global_: bool, ignorecase: bool, units: bool = False) -> Callable[[str], str]:
    """A function doing ``value.replace(new RegExp(escaped(pattern), flags), replacement)``."""
    if not units and any("\ud800" <= c <= "\udfff" for c in pattern + replacement):
        # A lone surrogate matches half of a character: work on UTF-16 units.
        inner = literal_replacer("".join(utf16_units(pattern)), "".join(utf16_units(replacement)), global_, ignorecase, units=True)
        return lambda value: from_units(inner("".join(utf16_units(value))))
    count = 0 if global_ else 1
    if not ignorecase and "$" not in replacement:
        if global_:
            return lambda value: value.replace(pattern, replacement)
        return lambda value: value.replace(pattern, replacement, 1)
    regex = _search_regex(pattern, ignorecase)
    expand = _expander(replacement)
    return lambda value: regex.sub(expand, value, count=count)
