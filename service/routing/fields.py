"""One entry of an action's field table, as Segment declares it: what the actions declare
(service.routing.actions) and what validation checks a payload against (service.routing.validation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    name: str  # the key in Segment's payload and in the JSON body
    type: str  # "string" or "object"
    default: dict  # where a raw event's value comes from (mapping-kit directive)
    proto: str  # the field of the typed gRPC request that carries it
    required: bool = False
    format: str | None = None

    def replace(self, **changes: Any) -> Field:
        return Field(**{**self.__dict__, **changes})
