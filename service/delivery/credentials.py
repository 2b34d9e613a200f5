"""Kameleoon credentials: which apiKey and sitecode a call uses, and what the apiKey holds.

A request's own settings win, field by field; the server's configured
defaults fill the gaps. The apiKey is never put in a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass, field

from service.config import SITECODE_LENGTH, USER_AGENT, Config
from service.errors import InvalidArgument, MissingSetting
from service.jsonwire import js_string, loads


@dataclass(frozen=True)
class Credentials:
    api_key: str
    sitecode: str
    _headers: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_headers",
            {
                "authorization": f"Basic {self.api_key}",
                "x-segment-settings": self.sitecode,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            },
        )

    def __repr__(self) -> str:
        return f"Credentials(api_key=<secret>, sitecode={self.sitecode!r})"

    def headers(self) -> dict[str, str]:
        """The headers Segment's destination sends with every event (do not modify the dict)."""
        return self._headers


@functools.lru_cache(maxsize=1024)
def _credentials(api_key: str, sitecode: str) -> Credentials:
    """One Credentials (and its headers) per apiKey and sitecode in use, made once."""
    return Credentials(api_key, sitecode)


def resolve(settings, config: Config) -> Credentials:
    """Credentials for a request whose ``settings`` field is ``settings`` (or None when unset)."""
    api_key = (settings.api_key if settings is not None else "") or config.api_key
    sitecode = (settings.sitecode if settings is not None else "") or config.sitecode
    for name, value, variable in (("api_key", api_key, "KAMELEOON_API_KEY"), ("sitecode", sitecode, "KAMELEOON_SITECODE")):
        if value:
            continue
        if settings is not None:
            raise InvalidArgument(f"settings.{name} is empty and the server has no default ({variable})", field=f"settings.{name}")
        raise MissingSetting(f"settings.{name} is missing: send settings in the request or set {variable} on the server")
    assert api_key is not None and sitecode is not None  # both checked just above
    if not api_key.strip():
        raise InvalidArgument("settings.api_key is blank", field="settings.api_key")
    if len(sitecode) != SITECODE_LENGTH:
        raise InvalidArgument(f"settings.sitecode must be exactly {SITECODE_LENGTH} characters, got {len(sitecode)}", field="settings.sitecode")
    return _credentials(api_key, sitecode)


def api_key_entries(api_key: str) -> list[tuple[str, str]]:
    """The entries of the JSON object the apiKey encodes, as Segment reads them.

    Like Node's ``Buffer.from(key, 'base64').toString('ascii')``: lenient
    base64 (URL-safe letters, missing padding) and 7-bit ASCII. Raises
    InvalidArgument without quoting the key.
    """
    text = api_key.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
        decoded = loads("".join(chr(byte & 0x7F) for byte in raw))
    except (binascii.Error, ValueError):
        raise InvalidArgument("settings.api_key is not base64 of a JSON object") from None
    if not isinstance(decoded, dict):
        raise InvalidArgument("settings.api_key is not base64 of a JSON object")
    return [(key, js_string(value)) for key, value in decoded.items()]
