"""Subscriptions: which raw events go to which action, with which mapping.

A subscription is Segment's own shape, so a user can paste what Segment shows:
``{"name", "subscribe": "<trigger>", "partnerAction": "logEvent" | "identify"
| "page" | "group", "mapping": {...}}``. ``KAMELEOON_MAPPINGS`` names a JSON
or YAML file holding a list of them; unset, the destination's four presets
apply. Everything is compiled once at start-up, and a bad file is refused
with the subscription and the problem named.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

from service.errors import MappingError, SubscriptionError
from service.routing import specfile
from service.routing.actions import ACTIONS, PRESETS, Action
from service.routing.mapping.directives import compile_mapping
from service.routing.mapping.triggers import compile_trigger
from service.routing.planner import compile_body

MAX_SUBSCRIPTIONS = 50  # what Segment allows one destination instance
KEYS = frozenset({"name", "subscribe", "partnerAction", "mapping"})
OPTIONAL_KEYS = frozenset({"type", "enabled", "id", "description"})


@dataclass(frozen=True)
class Subscription:
    name: str
    subscribe: str
    action: Action
    trigger: Any  # service.routing.mapping.triggers.Trigger
    mapping: Any  # service.routing.mapping.directives.Mapping
    fast_body: Any = field(default=None, repr=False, compare=False)  # service.routing.planner.compile_body's, or None

    def matches(self, event: dict) -> bool:
        return self.trigger.matches(event)

    def payload(self, event: dict) -> dict:
        """The mapped payload; it may share values with ``event``: validate it, never modify it."""
        return self.mapping.resolve_shared(event)

    def body(self, event: dict) -> dict:
        """Segment's body for ``event`` (mapping, validation, perform); InvalidArgument or MappingError.

        The compiled function answers the plain case; anything else takes the general way."""
        if self.fast_body is not None:
            try:
                body = self.fast_body(event)
            except RecursionError:
                body = None
            if body is not None:
                return body
        return self.action.body(self.action.validate(self.payload(event), raw=event))


def preset_specs() -> list[dict]:
    """The destination's four presets, in Segment's shape: each action with its default mapping."""
    return [
        {"name": name, "subscribe": trigger, "partnerAction": slug, "mapping": ACTIONS[slug].default_mapping()} for name, trigger, slug in PRESETS
    ]


def compile_all(specs: Any, origin: str = "subscriptions") -> tuple[Subscription, ...]:
    """Check and compile a list of subscriptions; SubscriptionError names the one at fault."""
    if isinstance(specs, list) and len(specs) > MAX_SUBSCRIPTIONS:
        raise SubscriptionError(f"{origin}: {len(specs)} subscriptions, Segment allows at most {MAX_SUBSCRIPTIONS}")
    return tuple(specfile.compile_each(specs, origin, "subscription", "name", _compile_one, SubscriptionError))


def _compile_one(spec: Any, label: str) -> Subscription:
    specfile.check_keys(spec, label, KEYS, OPTIONAL_KEYS, SubscriptionError)
    name, subscribe, slug, mapping = spec["name"], spec["subscribe"], spec["partnerAction"], spec["mapping"]
    if not isinstance(name, str) or not name.strip():
        raise SubscriptionError(f"{label}: name must be a non-empty string")
    action = ACTIONS.get(slug) if isinstance(slug, str) else None
    if action is None:
        raise SubscriptionError(f"{label}: unknown partnerAction {slug!r}; expected one of {', '.join(ACTIONS)}")
    if not isinstance(subscribe, str) or not subscribe.strip():
        raise SubscriptionError(f"{label}: subscribe must be a non-empty trigger such as 'type = \"track\"'")
    if not isinstance(mapping, dict):
        raise SubscriptionError(f"{label}: mapping must be an object of field -> value or directive")
    unknown_fields = [key for key in mapping if key not in action.by_name]
    if unknown_fields:
        raise SubscriptionError(
            f"{label}: unknown field(s) {', '.join(map(repr, unknown_fields))} for {slug}; its fields are {', '.join(f.name for f in action.fields)}"
        )
    try:
        trigger = compile_trigger(subscribe)
    except MappingError as exc:
        raise SubscriptionError(f"{label}: bad trigger {subscribe!r}: {exc}") from None
    try:
        compiled = compile_mapping(mapping)
    except MappingError as exc:
        raise SubscriptionError(f"{label}: bad mapping: {exc}") from None
    return Subscription(name, subscribe, action, trigger, compiled, compile_body(compiled, action))


def load(path: str | None) -> tuple[Subscription, ...]:
    """The subscriptions in the file at ``path`` (JSON or YAML), or the presets when None."""
    if not path:
        return compile_all(preset_specs(), "presets")
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriptionError(f"KAMELEOON_MAPPINGS={path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    return parse(text, path)


def parse(text: str, path: str) -> tuple[Subscription, ...]:
    """The subscriptions in ``text``, the content of the file at ``path`` (JSON when it ends in .json, else YAML)."""
    specs = specfile.read(text, path, "KAMELEOON_MAPPINGS", SubscriptionError)
    if isinstance(specs, dict) and "subscriptions" in specs:
        specs = specs["subscriptions"]
    return compile_all(specs, path)
