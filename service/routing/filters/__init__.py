"""Segment's destination filters: which events reach Kameleoon, and with which properties.

One interface, :class:`FilterSet` (``apply(event)``, ``apply_payload(action,
payload)``, false when there is nothing to apply); one module per job:

    fql.py        FQL text -> tsub's compiled JSON form (lexed as @segment/fql-ts lexes)
    evaluate.py   that form on an event, as @segment/tsub evaluates it
    glob.py       match() globs, as tsub matches them
    actions.py    DROP, SAMPLE, DROP_PROPERTIES, ALLOW_PROPERTIES
    engine.py     Segment's order of actions; the verdict for one event
    typed.py      a typed request's payload seen as an event, and back
    load.py       the KAMELEOON_FILTERS file, checked in full
"""

from service.routing.filters.engine import NO_FILTERS, Filter, FilterSet, Verdict
from service.routing.filters.load import parse

__all__ = ["NO_FILTERS", "Filter", "FilterSet", "Verdict", "parse"]
