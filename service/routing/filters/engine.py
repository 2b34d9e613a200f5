"""A set of destination filters, applied to one event in Segment's order.

Each filter's actions become steps, ordered as Segment applies them: every
SAMPLE first, then every DROP, then DROP_PROPERTIES, then ALLOW_PROPERTIES,
filters in file order within each kind. A step checks its filter's condition
on the event as it is at that point (tsub's middleware does the same,
filter after filter) and applies its action when it matches. The first
DROP, sample-out, or condition that cannot be evaluated stops the event;
the verdict names that filter.

A FilterSet is immutable: a call keeps the one it started with while a
reload puts another in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.errors import FilterEvaluationError
from service.routing.filters.actions import DROP, DROP_PROPERTIES, ORDER, SAMPLE
from service.routing.filters.evaluate import predicate
from service.routing.filters.typed import event_of, payload_from

DROPPED, SAMPLED_OUT, ERROR = "dropped", "sampled_out", "error"
PROPERTIES_DROPPED, PROPERTIES_ALLOWED = "properties_dropped", "properties_allowed"


@dataclass(frozen=True)
class Filter:
    title: str
    condition: str  # the FQL text
    matcher: dict  # compiled: {"type": "all"} or {"type": "fql", "ir": ...}
    actions: tuple  # service.routing.filters.actions instances
    enabled: bool = True
    description: str = ""
    test: Callable[[dict], bool] = field(init=False, repr=False, compare=False)  # the matcher, compiled

    def __post_init__(self) -> None:
        object.__setattr__(self, "test", predicate(self.matcher))


@dataclass
class Verdict:
    """What the filters did to one event: the event (changed in place), or the filter that stopped it."""

    event: Any
    stopped_by: str | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (filter title, outcome) for metrics
    error: str | None = None  # why a condition could not be evaluated


@dataclass(frozen=True)
class FilterSet:
    filters: tuple[Filter, ...] = ()
    steps: tuple[tuple[Filter, Any], ...] = field(init=False)

    def __post_init__(self) -> None:
        steps = [(f, action) for kind in ORDER for f in self.filters if f.enabled for action in f.actions if action.type == kind]
        object.__setattr__(self, "steps", tuple(steps))

    def __bool__(self) -> bool:
        """False when no enabled filter has an action: the router then skips filtering altogether."""
        return bool(self.steps)

    def apply(self, event: dict) -> Verdict:
        """Run every step on ``event`` (changed in place)."""
        verdict = Verdict(event)
        for flt, action in self.steps:
            try:
                hit = flt.test(event)
            except FilterEvaluationError as exc:
                verdict.outcomes.append((flt.title, ERROR))
                verdict.stopped_by, verdict.event, verdict.error = flt.title, None, str(exc)
                return verdict
            if not hit:
                continue
            kind = action.type
            if kind == DROP or (kind == SAMPLE and not action.keeps(event)):
                verdict.outcomes.append((flt.title, DROPPED if kind == DROP else SAMPLED_OUT))
                verdict.stopped_by, verdict.event = flt.title, None
                return verdict
            if kind != SAMPLE:
                action.apply(event)
                verdict.outcomes.append((flt.title, PROPERTIES_DROPPED if kind == DROP_PROPERTIES else PROPERTIES_ALLOWED))
        return verdict

    def apply_payload(self, action, payload: dict) -> Verdict:
        """Filter a typed request's payload as the event of its action's type; ``verdict.event`` is the payload."""
        verdict = self.apply(event_of(action, payload))
        if verdict.event is not None:
            verdict.event = payload_from(action, payload, verdict.event) if verdict.outcomes else payload
        return verdict


NO_FILTERS = FilterSet()
