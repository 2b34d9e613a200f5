"""What Segment's Tracking API stamps on every event before a destination sees it.

- ``receivedAt``: when the event was received (ISO 8601 UTC, milliseconds, ``Z``); set when
  absent or null, kept when present.
- ``messageId``: absent, null or empty gets a fresh one, ``api-`` + a random UUID.
- ``timestamp``: absent or null becomes ``receivedAt - (sentAt - originalTimestamp)`` when both
  are dates, else ``originalTimestamp`` when it is a date, else ``receivedAt``, written as
  receivedAt is. A date is an ISO 8601 text (``datetime.fromisoformat``; no zone: UTC). A
  timestamp the caller sent is kept as sent: Segment's servers may correct it for a client's
  clock skew, we trust the caller's clock.

The event is changed in place; an event that has all three pays three dictionary look-ups.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime


def iso(at: datetime) -> str:
    """``at`` as JavaScript's toISOString() writes it: UTC, milliseconds, ``Z``."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def date_of(value: object) -> datetime | None:
    """An ISO 8601 date-time string as an aware datetime (no zone: UTC); None for anything else."""
    if type(value) is not str or not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


# ".000Z" to ".999Z": a millisecond's end of a receivedAt text, made once.
_MILLISECONDS = tuple(f"{ms:03d}Z" for ms in range(1000))


class Stamper:
    """Stamps events. The text of the current second is made once a second, that of the current
    millisecond once a millisecond: an event stamped within the same millisecond as the one before
    pays a clock read and a comparison."""

    __slots__ = ("_ms", "_text", "_second", "_prefix", "_clock")

    def __init__(self, clock=time.time):
        self._ms = self._second = -1
        self._text = self._prefix = ""
        self._clock = clock

    def now(self) -> str:
        """This millisecond as receivedAt text."""
        ms = int(self._clock() * 1000)
        if ms != self._ms:
            second = ms // 1000
            if second != self._second:
                self._second, self._prefix = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._ms, self._text = ms, self._prefix + _MILLISECONDS[ms - second * 1000]
        return self._text

    def __call__(self, event: dict) -> dict:
        received = event.get("receivedAt")
        if received is None:
            ms = int(self._clock() * 1000)  # now(), inlined: every event without a receivedAt pays this
            received = event["receivedAt"] = self._text if ms == self._ms else self.now()
        message_id = event.get("messageId")
        if message_id is None or message_id == "":
            event["messageId"] = f"api-{uuid.uuid4()}"
        if event.get("timestamp") is None:
            event["timestamp"] = self._timestamp(event, received)
        return event

    def _timestamp(self, event: dict, received: object) -> str:
        """Segment's timestamp of an event that has none: corrected for the sender's clock when it can be."""
        original = date_of(event.get("originalTimestamp"))
        sent = date_of(event.get("sentAt"))
        at = date_of(received)
        if original is not None and sent is not None and at is not None:
            return iso(at - (sent - original))
        if original is not None:
            return iso(original)
        return iso(at) if at is not None else self.now()
