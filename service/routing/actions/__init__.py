"""Kameleoon's actions, by Segment's action key. Adding one: a proto message, a module here, its tests."""

from service.routing.actions import group, identify, log_event, page
from service.routing.actions.base import Action, Field

ACTIONS: dict[str, Action] = {module.ACTION.slug: module.ACTION for module in (log_event, identify, page, group)}

# Segment's default presets: which event type each action takes with its default mapping.
PRESETS: tuple[tuple[str, str, str], ...] = (
    ("Track Calls", 'type = "track"', "logEvent"),
    ("Page Calls", 'type = "page"', "page"),
    ("Group Calls", 'type = "group"', "group"),
    ("Identify Calls", 'type = "identify"', "identify"),
)

__all__ = ["ACTIONS", "PRESETS", "Action", "Field"]
