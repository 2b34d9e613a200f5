"""The filters file (KAMELEOON_FILTERS): Segment's Public API shape, checked in full.

A JSON or YAML list of filters, as Segment's Public API returns them, so a
team can paste what it has (a ``{"filters": [...]}`` or the API's
``{"data": {"filters": [...]}}`` answer works as well):

    - title: Drop test traffic          # names the filter in responses, logs and metrics
      description: optional
      enabled: true
      if: context.library.name = "test-suite" or match(traits.email, "*@example.com")
      actions:
        - type: DROP                    # DROP | SAMPLE | DROP_PROPERTIES | ALLOW_PROPERTIES
        # - {type: SAMPLE, percent: 0.1, path: userId}
        # - {type: DROP_PROPERTIES, fields: {context: [ip], traits: [email]}}
        # - {type: ALLOW_PROPERTIES, fields: {properties: [revenue, currency]}}

The API's own keys (id, sourceId, destinationId, createdAt, updatedAt) are
accepted and ignored. Anything wrong stops the load with a FilterError
naming the filter and the problem (FQL errors with their line and column).
"""

from __future__ import annotations

from typing import Any

from service.errors import FilterError, FQLError
from service.routing import specfile
from service.routing.filters.actions import ALLOW_PROPERTIES, DROP, DROP_PROPERTIES, SAMPLE, AllowProperties, Drop, DropProperties, Sample, fields_of
from service.routing.filters.engine import Filter, FilterSet
from service.routing.filters.fql import compile_fql, where

REQUIRED = frozenset({"title", "enabled", "if", "actions"})
OPTIONAL = frozenset({"description", "id", "sourceId", "destinationId", "createdAt", "updatedAt"})
ACTION_KEYS = {
    DROP: frozenset(),
    SAMPLE: frozenset({"percent", "path"}),
    DROP_PROPERTIES: frozenset({"fields"}),
    ALLOW_PROPERTIES: frozenset({"fields"}),
}


def parse(text: str, path: str) -> FilterSet:
    """The filters in ``text``, the content of the file at ``path`` (JSON when it ends in .json, else YAML)."""
    specs = specfile.read(text, path, "KAMELEOON_FILTERS", FilterError)
    if isinstance(specs, dict) and isinstance(specs.get("data"), dict):
        specs = specs["data"]
    if isinstance(specs, dict) and "filters" in specs:
        specs = specs["filters"]
    if specs is None:
        specs = []
    return compile_all(specs, f"KAMELEOON_FILTERS={path}")


def compile_all(specs: Any, origin: str = "filters") -> FilterSet:
    """Check and compile a list of filters; FilterError names the one at fault."""
    return FilterSet(tuple(specfile.compile_each(specs, origin, "filter", "title", compile_one, FilterError)))


def compile_one(spec: Any, label: str = "filter") -> Filter:
    specfile.check_keys(spec, label, REQUIRED, OPTIONAL, FilterError)
    title, enabled, condition, actions = spec["title"], spec["enabled"], spec["if"], spec["actions"]
    description = spec.get("description") or ""
    if not isinstance(title, str) or not title.strip():
        raise FilterError(f"{label}: title must be a non-empty string")
    if not isinstance(enabled, bool):
        raise FilterError(f"{label}: enabled must be true or false, got {enabled!r}")
    if not isinstance(description, str):
        raise FilterError(f"{label}: description must be a string")
    if not isinstance(condition, str):
        raise FilterError(f"{label}: if must be FQL text such as 'type = \"track\"' (or 'all'), got {type(condition).__name__}")
    try:
        matcher = compile_fql(condition)
    except FQLError as exc:
        raise FilterError(f"{label}: bad FQL in if at {where(condition, exc.offset)}: {exc} (in {condition!r})") from None
    if not isinstance(actions, list) or not actions:
        raise FilterError(f"{label}: actions must be a non-empty list of {{type: DROP | SAMPLE | DROP_PROPERTIES | ALLOW_PROPERTIES, ...}}")
    compiled = tuple(_action(action, f"{label}: action #{i + 1}") for i, action in enumerate(actions))
    return Filter(title, condition, matcher, compiled, enabled, description)


def _action(spec: Any, label: str):
    if not isinstance(spec, dict) or "type" not in spec:
        raise FilterError(f"{label}: expected an object with a type ({', '.join(ACTION_KEYS)})")
    kind = spec["type"]
    if kind not in ACTION_KEYS:
        raise FilterError(f"{label}: unknown action type {kind!r}; expected one of {', '.join(ACTION_KEYS)}")
    unknown = spec.keys() - {"type"} - ACTION_KEYS[kind]
    if unknown:
        raise FilterError(
            f"{label}: {kind} takes {', '.join(sorted(ACTION_KEYS[kind])) or 'nothing but its type'}; unknown key(s) {', '.join(sorted(map(str, unknown)))}"
        )
    if kind == DROP:
        return Drop()
    if kind == SAMPLE:
        percent, path = spec.get("percent"), spec.get("path")
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 1:
            raise FilterError(f"{label}: SAMPLE percent must be a number from 0 to 1 (a fraction: 0.1 keeps 10%), got {percent!r}")
        if path is not None and not isinstance(path, str):
            raise FilterError(f"{label}: SAMPLE path must be a field path such as userId, got {path!r}")
        return Sample(float(percent), path or "")
    fields = spec.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise FilterError(f"{label}: {kind} needs fields: {{<object path>: [<key>, ...]}}, e.g. {{context: [ip], traits: [email]}}")
    for path, keys in fields.items():
        if not isinstance(path, str):
            raise FilterError(f"{label}: {kind} fields keys must be object paths (strings), got {path!r}")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise FilterError(f"{label}: {kind} fields[{path!r}] must be a list of key names, got {keys!r}")
    return (DropProperties if kind == DROP_PROPERTIES else AllowProperties)(fields_of(fields))
