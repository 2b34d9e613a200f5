"""Segment's end-user consent: an event goes to Kameleoon only if its user consented to every
category mapped to the destination (KAMELEOON_CONSENT_CATEGORIES).

The rule is @segment/analytics-consent-tools' (``shouldEnableIntegrationHelper``; goldens in
tests/goldens/ingest.json): no category mapped, no enforcement; otherwise each mapped category
must read truthy, as JavaScript reads ``categoryPreferences[category]`` (a missing one is not
consented, ``"false"`` is, extra categories do not matter, ``{}`` blocks). Segment's documented
rules around it: an event with no ``context.consent.categoryPreferences`` (missing or null) flows,
and so does the track ``Segment Consent Preference Updated`` that tells of a change.
"""

from __future__ import annotations

from service.routing.mapping.jsvalue import UNDEFINED, get_prop, truthy

REASON = "FILTERED_BY_END_USER_CONSENT"
PREFERENCE_UPDATED = "Segment Consent Preference Updated"
_PREFERENCES = ("context", "consent", "categoryPreferences")


class Consent:
    __slots__ = ("categories",)

    def __init__(self, categories: tuple[str, ...] = ()):
        self.categories = categories

    def allows(self, event: dict) -> bool:
        """Whether ``event`` may go to the destination (always, with no category mapped)."""
        if not self.categories:
            return True
        preferences: object = event
        for key in _PREFERENCES:  # context.consent.categoryPreferences, read as JavaScript reads properties
            preferences = get_prop(preferences, key)
            if preferences is None or preferences is UNDEFINED:
                return True
        if event.get("type") == "track" and event.get("event") == PREFERENCE_UPDATED:
            return True
        return all(truthy(get_prop(preferences, category)) for category in self.categories)
