"""Files holding a list of named entries in Segment's shape (subscriptions, filters): reading
them as JSON or YAML, and compiling each entry under a label that names it in errors."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import yaml

from service.errors import ConfigError
from service.jsonwire import is_well_formed


def read(text: str, path: str, variable: str, error: type[ConfigError]) -> Any:
    """The data in ``text``, the content of ``path``: JSON when the name ends in .json, else YAML."""
    is_json = pathlib.Path(path).suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise error(f"{variable}={path}: not valid {'JSON' if is_json else 'YAML'}: {exc}") from None


def compile_each(specs: Any, origin: str, noun: str, name_key: str, compile_one: Callable[[Any, str], Any], error: type[ConfigError]) -> list:
    """``compile_one(spec, label)`` for each entry of the list ``specs``; names (``spec[name_key]``) must be unique.

    The label reads ``<origin>: <noun> #<n> '<name>'``, so every error names the entry at fault."""
    if not isinstance(specs, list):
        raise error(f"{origin}: expected a list of {noun}s, got {type(specs).__name__}")
    compiled = []
    names: set[object] = set()
    for index, spec in enumerate(specs):
        label = f"{origin}: {noun} #{index + 1}"
        name = spec.get(name_key) if isinstance(spec, dict) else None
        if isinstance(name, str) and name.strip():
            label = f"{label} {name!r}"
            if not is_well_formed(name):
                raise error(f"{label}: the {name_key} has a lone surrogate, which responses, logs and metrics cannot carry")
        item = compile_one(spec, label)
        if name in names:
            raise error(f"{label}: the {name_key} is used twice")
        names.add(name)
        compiled.append(item)
    return compiled


def check_keys(spec: Any, label: str, required: frozenset, optional: frozenset, error: type[ConfigError]) -> dict:
    """``spec`` itself when it is an object with every ``required`` key and no key outside ``optional``."""
    if not isinstance(spec, dict):
        raise error(f"{label}: expected an object with {', '.join(sorted(required))}")
    missing = required - spec.keys()
    if missing:
        raise error(f"{label}: missing {', '.join(sorted(missing))}")
    unknown = spec.keys() - required - optional
    if unknown:
        raise error(f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    return spec
