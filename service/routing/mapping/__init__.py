"""Segment's subscription triggers and mapping-kit directives, in Python.

- :func:`service.routing.mapping.triggers.compile_trigger` -- the trigger language
  (``@segment/destination-subscriptions``).
- :func:`service.routing.mapping.directives.compile_mapping` -- mapping directives
  (``@segment/actions-core`` mapping-kit).

Both compile once and then run per event; both follow Segment's runtime,
quirks included (see the module docstrings). JavaScript ``undefined`` is
:data:`UNDEFINED`.
"""

from service.routing.mapping.jsvalue import UNDEFINED

__all__ = ["UNDEFINED"]
