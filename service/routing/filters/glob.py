"""FQL's ``match(str, pattern)`` globs, as ``@segment/tsub`` matches them.

tsub ports Segment's Go glob (segmentio/glob) with no path separator: ``*``
crosses ``/``. It works on JavaScript strings, so one ``?`` or one
character-class position is one UTF-16 code unit (an emoji is two), and a
malformed class or a trailing backslash fails the match rather than raising.

    *        any run of characters, empty included
    ?        one UTF-16 code unit
    [abc]    one of a, b, c        [a-z] a range      [^a-z] not in the range
    \\x       x literally (FQL strings have no escapes: the backslash is typed as is)
"""

from __future__ import annotations

from service.routing.mapping.jsvalue import has_surrogates, utf16_units


def units(text: str) -> str:
    """``text`` as JavaScript indexes it: one character per UTF-16 code unit."""
    return "".join(utf16_units(text)) if has_surrogates(text) else text


def glob_matches(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches the whole of ``text`` (tsub's globMatches)."""
    pattern, text = units(pattern), units(text)
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return True  # a trailing * matches the rest
        rest, ok, err = _match_chunk(chunk, text)
        if err:
            return False
        if ok and (not rest or pattern):
            text = rest
            continue
        if star:
            found = False
            for i in range(len(text)):
                rest, ok, err = _match_chunk(chunk, text[i + 1 :])
                if ok:
                    if not pattern and rest:
                        continue  # the last chunk must use up the text
                    text = rest
                    found = True
                    break
                if err:
                    return False
            if found:
                continue
        return False
    return not text


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Leading stars, then the chunk up to the next star outside a class, then the rest."""
    star = False
    while pattern and pattern[0] == "*":
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


_NO = ("", False, False)


def _match_chunk(chunk: str, text: str) -> tuple[str, bool, bool]:
    """Whether ``chunk`` (no stars) matches the start of ``text``: (rest, ok, bad pattern)."""
    while chunk:
        if not text:
            return _NO
        head = chunk[0]
        if head == "[":
            char, text, chunk = text[0], text[1:], chunk[1:]
            wanted = True
            if chunk and chunk[0] == "^":
                wanted = False
                chunk = chunk[1:]
            found = False
            ranges = 0
            while True:
                if chunk and chunk[0] == "]" and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk, err = _escaped(chunk)
                if err:
                    return _NO
                hi = lo
                if chunk and chunk[0] == "-":
                    hi, chunk, err = _escaped(chunk[1:])
                    if err:
                        return _NO
                if lo <= char <= hi:
                    found = True
                ranges += 1
            if found != wanted:
                return _NO
        elif head == "?":
            text, chunk = text[1:], chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    return "", False, True
            if chunk[0] != text[0]:
                return _NO
            text, chunk = text[1:], chunk[1:]
    return text, True, False


def _escaped(chunk: str) -> tuple[str, str, bool]:
    """One possibly escaped character of a class: (char, rest, error). tsub also errs when nothing follows."""
    if not chunk or chunk[0] in "-]":
        return "", "", True
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            return "", "", True
    return chunk[0], chunk[1:], len(chunk) == 1
