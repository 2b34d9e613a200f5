"""One messageId's fate (OutboxAdmin.GetEvent, ``kameleoon-destination events show``), from what the store knows.

Pending, in-flight and dead rows are found by their messageId. A delivered event has left the outbox; its
idempotency key remains for the window, stamped with the delivery's time (queued, and synchronous ones
through the shared window). Keys are digests in PostgreSQL, so the ones this event could have are made
from the workspace: each instance's sitecode with each of its routes (subscriptions and typed actions).
A delivery with a request's own settings (a sitecode no instance has) is found while in the outbox only.
"""

from __future__ import annotations

from collections.abc import Callable

from kameleoon.destination.v1 import destination_pb2 as pb
from service.api.timestamps import timestamp_of
from service.config import Config
from service.delivery.idempotency import stored_key
from service.outbox.base import Found, Outbox
from service.outbox.deliverer import instance_of
from service.routing.actions import ACTIONS
from service.workspace.model import Workspace

Candidate = tuple[str, str, str, str]  # (source, destination, route, action)


def candidates(workspace: Workspace, config: Config, message_id: str) -> dict[str, Candidate]:
    """Each idempotency key a delivery of ``message_id`` could have taken, and where that delivery went."""
    found: dict[str, Candidate] = {}
    for source in workspace.sources:
        for instance in source.instances:
            sitecode = instance.credentials.sitecode if instance.credentials is not None else config.sitecode
            if not sitecode:
                continue
            _, subscriptions = instance.router.current()
            routes = [(subscription.name, subscription.action.slug) for subscription in subscriptions]
            routes += [(slug, slug) for slug in ACTIONS]
            for name, action in routes:
                route = instance.route(name)
                found[stored_key(sitecode, route, message_id)] = (instance.source, instance.name, route, action)
    return found


def _from_row(row: Found) -> pb.EventFate:
    source, destination = instance_of(row.credentials, row.route)
    return pb.EventFate(
        state=row.state,
        source=source,
        destination=destination,
        route=row.route,
        action=row.action,
        id=row.id,
        attempts=row.attempts,
        at=timestamp_of(row.at),
        last_http_status=row.last_status,
        last_error=row.last_error,
    )


async def fates(store: Outbox, message_id: str, keys: Callable[[str], dict[str, Candidate]], now: float) -> list[pb.EventFate]:
    """Every fate the store knows of: its rows first (by id), then the deliveries its keys remember."""
    rows = await store.find_event(message_id, now=now)
    shown = [_from_row(row) for row in rows]
    held = {(fate.source, fate.destination, fate.route) for fate in shown}
    possible = keys(message_id)
    delivered = await store.delivered_at(list(possible))
    for key, at in sorted(delivered.items(), key=lambda item: item[1]):
        source, destination, route, action = possible[key]
        if (source, destination, route) not in held:
            shown.append(pb.EventFate(state="delivered", source=source, destination=destination, route=route, action=action, at=timestamp_of(at)))
    return shown
