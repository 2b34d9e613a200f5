"""The outbox contract: what every store (service.outbox.base.Outbox) must do, run against each store.

Times are passed in (``now=``), so nothing here waits on a clock.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from service.errors import InvalidArgument, OutboxFull, OutboxUnavailable
from service.ops.overview import MemoryOverview, Sample
from service.outbox.base import BUSY, DELIVERED, TAKEN, Dead, DeadLetterFilter, NewEvent, Retry

T0 = 1_800_000_000.0
WINDOW = 3600.0
IDEM = 86400.0
LEASE = 30.0


def event(n: int, action: str = "logEvent", key: bool = True, **changes) -> NewEvent:
    fields = dict(
        action=action,
        route=action,
        sitecode="0123456789",
        message_id=f"m-{n}",
        body=f'{{"messageId":"m-{n}","n":{n}}}'.encode(),
        credentials="server",
        dedupe_key=f"0123456789\x1f{action}\x1fm-{n}" if key else None,
    )
    fields.update(changes)
    return NewEvent(**fields)


async def put(store, events, now=T0, max_pending=0, window=WINDOW):
    return await store.enqueue(events, now=now, window_s=window, idempotency_window_s=IDEM, max_pending=max_pending)


async def test_enqueue_then_claim_gives_back_exactly_what_was_stored(store_factory):
    store = await store_factory()
    accepted = await put(store, [event(1), event(2, "identify")])
    assert all(a.id and not a.duplicate for a in accepted)
    assert len({a.id for a in accepted}) == 2
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    assert [c.id for c in claimed] == [a.id for a in accepted]
    first = claimed[0]
    assert (first.action, first.route, first.sitecode, first.message_id, first.credentials) == ("logEvent", "logEvent", "0123456789", "m-1", "server")
    assert first.body == b'{"messageId":"m-1","n":1}'
    assert first.attempts == 1 and first.accepted_at == T0 and first.expires_at == T0 + WINDOW


async def test_claims_are_leased_limited_and_in_due_order(store_factory):
    store = await store_factory()
    accepted = await put(store, [event(n) for n in range(5)])
    first = await store.claim(2, now=T0, lease_s=LEASE)
    assert [c.id for c in first] == [a.id for a in accepted[:2]]
    second = await store.claim(10, now=T0 + 1, lease_s=LEASE)
    assert [c.id for c in second] == [a.id for a in accepted[2:]]
    assert await store.claim(10, now=T0 + 2, lease_s=LEASE) == []
    stats = await store.stats(now=T0 + 2)
    assert (stats.pending, stats.in_flight) == (0, 5)
    # The lease runs out (its holder died): claimable again, the attempt counted.
    again = await store.claim(10, now=T0 + LEASE + 0.5, lease_s=LEASE)
    assert {c.id for c in again} == {a.id for a in accepted[:2]}
    assert all(c.attempts == 2 for c in again)


async def test_two_instances_never_claim_the_same_event(store_factory):
    one, two = await store_factory(), await store_factory()
    await put(one, [event(n) for n in range(200)])
    results = await asyncio.gather(*(store.claim(7, now=T0, lease_s=LEASE) for store in (one, two) for _ in range(20)))
    ids = [c.id for claimed in results for c in claimed]
    assert len(ids) == 200 and len(set(ids)) == 200


async def test_delivered_events_leave_and_stale_leases_change_nothing(store_factory):
    store = await store_factory()
    await put(store, [event(1), event(2)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    retaken = await store.claim(10, now=T0 + LEASE + 1, lease_s=LEASE)  # the first holder's lease ran out
    assert await store.mark_delivered(claimed, now=T0 + LEASE + 2) == 0
    assert await store.mark_retry([Retry(c.id, c.lease, T0, 503, "x") for c in claimed], now=T0 + LEASE + 2) == 0
    assert await store.mark_dead([Dead(c.id, c.lease, 400, "x") for c in claimed], now=T0 + LEASE + 2) == 0
    assert (await store.stats(now=T0 + LEASE + 2)).in_flight == 2
    assert await store.mark_delivered(retaken, now=T0 + LEASE + 2) == 2
    stats = await store.stats(now=T0 + LEASE + 2)
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 0)
    assert await store.next_due() is None


async def test_retry_waits_until_its_time_and_keeps_the_last_answer(store_factory):
    store = await store_factory()
    await put(store, [event(1)])
    [claimed] = await store.claim(1, now=T0, lease_s=LEASE)
    assert await store.mark_retry([Retry(claimed.id, claimed.lease, T0 + 100, 503, "HTTP 503")], now=T0 + 1) == 1
    assert await store.next_due() == T0 + 100
    assert await store.claim(1, now=T0 + 99, lease_s=LEASE) == []
    stats = await store.stats(now=T0 + 99)
    assert (stats.pending, stats.in_flight) == (1, 0)
    [again] = await store.claim(1, now=T0 + 100, lease_s=LEASE)
    assert again.id == claimed.id and again.attempts == 2 and again.body == claimed.body
    await store.mark_dead([Dead(again.id, again.lease, 503, "HTTP 503 again")], now=T0 + 101)
    [letter], _ = await store.list_dead_letters(DeadLetterFilter(), limit=10)
    assert (letter.attempts, letter.first_attempt_at, letter.last_attempt_at) == (2, T0, T0 + 100)


async def test_release_puts_back_without_counting_the_attempt(store_factory):
    store = await store_factory()
    await put(store, [event(1)])
    claimed = await store.claim(1, now=T0, lease_s=LEASE)
    assert await store.release(claimed, now=T0 + 1) == 1
    [again] = await store.claim(1, now=T0 + 1, lease_s=LEASE)
    assert again.attempts == 1


async def test_dead_letters_are_listed_with_their_last_answer(store_factory):
    store = await store_factory()
    accepted = await put(store, [event(1), event(2, "identify"), event(3)])
    claimed = await store.claim(10, now=T0 + 5, lease_s=LEASE)
    await store.mark_dead([Dead(c.id, c.lease, 400 if c.action == "logEvent" else 422, f"rejected {c.message_id}") for c in claimed], now=T0 + 6)
    stats = await store.stats(now=T0 + 6)
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 3)
    assert stats.by_action["identify"].dead == 1 and stats.by_action["logEvent"].dead == 2
    letters, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=10)
    assert cursor is None
    assert [d.id for d in letters] == [a.id for a in accepted]
    first = letters[0]
    assert (first.action, first.route, first.sitecode, first.message_id, first.attempts) == ("logEvent", "logEvent", "0123456789", "m-1", 1)
    assert (first.accepted_at, first.first_attempt_at, first.last_attempt_at, first.dead_at) == (T0, T0 + 5, T0 + 5, T0 + 6)
    assert (first.last_http_status, first.last_error) == (400, "rejected m-1")
    assert await store.claim(10, now=T0 + 1000, lease_s=LEASE) == []


async def test_dead_letters_page_and_filter(store_factory):
    store = await store_factory()
    await put(store, [event(n, "identify" if n % 3 == 0 else "logEvent") for n in range(10)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    for i, c in enumerate(claimed):  # dead at T0+0..T0+9, status 500 for even ones
        await store.mark_dead([Dead(c.id, c.lease, 500 if i % 2 == 0 else 400, "e")], now=T0 + i)
    pages, cursor = [], None
    while True:
        page, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=3, cursor=cursor)
        pages.append([d.id for d in page])
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert sum(pages, []) == [c.id for c in claimed]
    identify, _ = await store.list_dead_letters(DeadLetterFilter(action="identify"), limit=100)
    assert [d.message_id for d in identify] == ["m-0", "m-3", "m-6", "m-9"]
    rejected, _ = await store.list_dead_letters(DeadLetterFilter(http_status=400), limit=100)
    assert len(rejected) == 5 and {d.last_http_status for d in rejected} == {400}
    window, _ = await store.list_dead_letters(DeadLetterFilter(since=T0 + 2, until=T0 + 5), limit=100)
    assert [d.dead_at for d in window] == [T0 + 2, T0 + 3, T0 + 4]
    some, _ = await store.list_dead_letters(DeadLetterFilter(ids=(claimed[1].id, claimed[4].id, "no-such-id")), limit=100)
    assert [d.id for d in some] == [claimed[1].id, claimed[4].id]


async def test_retry_dead_letters_gives_a_fresh_window_and_purge_deletes(store_factory):
    store = await store_factory()
    await put(store, [event(n) for n in range(4)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(c.id, c.lease, 503, "down") for c in claimed], now=T0 + 1)
    later = T0 + 2 * WINDOW
    assert await store.retry_dead_letters(DeadLetterFilter(ids=(claimed[0].id,)), now=later, window_s=WINDOW) == 1
    [back] = await store.claim(10, now=later, lease_s=LEASE)
    assert back.id == claimed[0].id and back.body == claimed[0].body and back.expires_at == later + WINDOW
    assert back.attempts == 2  # the history is kept
    assert await store.purge_dead_letters(DeadLetterFilter(ids=(claimed[1].id,))) == 1
    assert await store.retry_dead_letters(DeadLetterFilter(http_status=503), now=later, window_s=WINDOW) == 2
    stats = await store.stats(now=later)
    assert (stats.pending, stats.in_flight, stats.dead) == (2, 1, 0)
    assert await store.purge_dead_letters(DeadLetterFilter()) == 0


async def test_expired_windows_become_dead_letters_but_not_under_a_live_lease(store_factory):
    store = await store_factory()
    await put(store, [event(3)], window=100)
    [never] = await store.expire(now=T0 + 100, limit=100)
    assert never.first_attempt_at is None and never.attempts == 0 and "window" in never.last_error
    await put(store, [event(1), event(2)], window=100)
    [held] = await store.claim(1, now=T0 + 50, lease_s=LEASE)  # leased until T0+80
    await store.mark_retry([Retry(held.id, held.lease, T0 + 90, 503, "HTTP 503")], now=T0 + 51)
    both = await store.claim(10, now=T0 + 95, lease_s=LEASE)  # leased until T0+125
    [other] = [c for c in both if c.id != held.id]
    await store.mark_retry([Retry(other.id, other.lease, T0 + 200, 0, "")], now=T0 + 96)
    assert await store.claim(10, now=T0 + 300, lease_s=LEASE) == []  # both expired: never claimed again
    letters = await store.expire(now=T0 + 100, limit=100)
    assert [d.message_id for d in letters] == ["m-2"]  # m-1 is under a live lease
    assert "window" in letters[0].last_error
    letters = await store.expire(now=T0 + 130, limit=100)
    assert [(d.message_id, d.last_http_status, d.attempts) for d in letters] == [("m-1", 503, 2)]
    assert "HTTP 503" in letters[0].last_error
    stats = await store.stats(now=T0 + 130)
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 3)


async def test_expire_moves_at_most_its_limit_the_earliest_windows_first(store_factory):
    store = await store_factory()
    await put(store, [event(1)], window=30)
    await put(store, [event(2), event(3)], window=10)
    await put(store, [event(4)], window=20)
    moved = [sorted(d.message_id for d in await store.expire(now=T0 + 100, limit=limit)) for limit in (2, 1, 5, 5)]
    assert moved == [["m-2", "m-3"], ["m-4"], ["m-1"], []]


async def test_a_dead_letter_expiring_again_says_once_that_the_window_ended(store_factory):
    store = await store_factory()
    await put(store, [event(1)], window=10)
    [claimed] = await store.claim(1, now=T0, lease_s=LEASE)
    await store.mark_retry([Retry(claimed.id, claimed.lease, T0 + 1, 503, "HTTP 503")], now=T0)
    [first] = await store.expire(now=T0 + 50, limit=10)
    assert first.last_error == "the retry window ended; last error: HTTP 503"
    assert await store.retry_dead_letters(DeadLetterFilter(), now=T0 + 60, window_s=10) == 1
    [again] = await store.expire(now=T0 + 100, limit=10)
    assert (again.last_error, again.last_http_status) == ("the retry window ended; last error: HTTP 503", 503)


async def test_duplicates_within_the_window_are_not_stored(store_factory):
    store = await store_factory()
    first = await put(store, [event(1), event(1), event(2, key=False), event(2, key=False)])
    assert [a.duplicate for a in first] == [False, True, False, False]
    assert first[1].id is None
    again = await put(store, [event(1), event(3)], now=T0 + 10)
    assert [a.duplicate for a in again] == [True, False]
    other = await store_factory()  # another process sees the same window
    assert (await put(other, [event(3)], now=T0 + 20))[0].duplicate
    after = await put(other, [event(1)], now=T0 + IDEM + 1)
    assert not after[0].duplicate and after[0].id
    assert (await store.stats(now=T0 + IDEM + 1)).pending == 5


async def test_max_pending_refuses_and_stores_nothing(store_factory):
    store = await store_factory()
    await put(store, [event(1), event(2)], max_pending=3)
    with pytest.raises(OutboxFull):
        await put(store, [event(3), event(4)], max_pending=3)
    assert (await store.stats(now=T0)).pending == 2
    assert (await put(store, [event(1)], max_pending=1))[0].duplicate  # nothing to store: never refused
    # Nothing of the refused call was kept, not even its idempotency keys.
    claimed = await store.claim(1, now=T0, lease_s=LEASE)
    await store.mark_delivered(claimed, now=T0)
    accepted = await put(store, [event(3), event(4)], max_pending=3)
    assert [a.duplicate for a in accepted] == [False, False]
    # In flight counts as not delivered; dead letters do not.
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    with pytest.raises(OutboxFull):
        await put(store, [event(5)], max_pending=3)
    await store.mark_dead([Dead(c.id, c.lease, 400, "x") for c in claimed], now=T0)
    assert not (await put(store, [event(5)], max_pending=3))[0].duplicate


async def test_seen_and_remember_share_the_window_with_enqueue(store_factory):
    store = await store_factory()
    key = "0123456789\x1flogEvent\x1fm-9"
    assert not await store.seen(key, now=T0, window_s=IDEM)
    await store.remember(key, now=T0)
    assert await store.seen(key, now=T0 + IDEM - 1, window_s=IDEM)
    assert not await store.seen(key, now=T0 + IDEM + 1, window_s=IDEM)
    assert (await put(store, [event(9)], now=T0 + 5))[0].duplicate
    await put(store, [event(8)])
    assert await (await store_factory()).seen("0123456789\x1flogEvent\x1fm-8", now=T0 + 1, window_s=IDEM)


# A lone surrogate: JSON's "\ud800" is legal, and the parser keeps it as JavaScript does; UTF-8 cannot encode it.
ODD_SITECODE = "012345678\udc80"  # no request can carry it and the config refuses it: the store keeps it anyway


def odd(n: int, surrogate: str = "\ud800") -> NewEvent:
    message_id = f"m-{surrogate}{n}"
    return event(n, route="sub-\udfff", sitecode=ODD_SITECODE, message_id=message_id, dedupe_key=f"{ODD_SITECODE}\x1fsub-\udfff\x1f{message_id}")


async def test_text_no_utf8_encodes_is_stored_and_given_back_exactly(store_factory):
    store = await store_factory()
    accepted = await put(store, [odd(1), odd(1), odd(1, "\ud801"), odd(1, "\ufffd"), event(1)])
    assert [a.duplicate for a in accepted] == [False, True, False, False, False]
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    assert [(c.route, c.sitecode, c.message_id) for c in claimed] == [
        ("sub-\udfff", ODD_SITECODE, "m-\ud8001"),
        ("sub-\udfff", ODD_SITECODE, "m-\ud8011"),
        ("sub-\udfff", ODD_SITECODE, "m-\ufffd1"),
        ("logEvent", "0123456789", "m-1"),
    ]
    await store.mark_dead([Dead(claimed[0].id, claimed[0].lease, 400, "x")], now=T0 + 1)
    letters, _ = await store.list_dead_letters(DeadLetterFilter(), limit=10)
    assert [(d.route, d.sitecode, d.message_id) for d in letters] == [("sub-\udfff", ODD_SITECODE, "m-\ud8001")]
    assert await store.retry_dead_letters(DeadLetterFilter(), now=T0 + 2, window_s=WINDOW) == 1
    again = await store.claim(10, now=T0 + 2, lease_s=LEASE)
    assert [c.message_id for c in again] == ["m-\ud8001"]
    other = await store_factory()  # the keys, as another process reads them
    assert [a.duplicate for a in await put(other, [odd(1), odd(1, "\ud801"), odd(2)], now=T0 + 3)] == [True, True, False]
    assert await other.seen(odd(2).dedupe_key, now=T0 + 4, window_s=IDEM)
    assert not await other.seen(odd(3).dedupe_key, now=T0 + 4, window_s=IDEM)
    await other.remember(odd(3).dedupe_key, now=T0 + 4)
    assert (await put(store, [odd(3)], now=T0 + 5))[0].duplicate
    taken = await store.reserve(odd(4).dedupe_key, now=T0 + 5, window_s=IDEM, until=T0 + 5 + HOLD)
    assert taken.state == TAKEN
    assert (await other.reserve(odd(4).dedupe_key, now=T0 + 6, window_s=IDEM, until=T0 + 6 + HOLD)).state == BUSY
    assert await store.unreserve(odd(4).dedupe_key, taken.token, now=T0 + 7)
    assert (await other.reserve(odd(4).dedupe_key, now=T0 + 8, window_s=IDEM, until=T0 + 8 + HOLD)).state == TAKEN


async def test_a_key_that_looks_like_another_keys_stored_form_is_still_its_own(store_factory):
    store = await store_factory()
    key = odd(1).dedupe_key
    lookalikes = [
        "\uffff" + key.encode("utf-8", "surrogatepass").hex(),  # what an escaped stored form could look like
        key.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),  # the key with U+FFFD for its surrogates
        key.encode("utf-8", "surrogatepass").decode("latin-1"),
    ]
    await put(store, [odd(1)])
    for n, lookalike in enumerate(lookalikes):
        assert not await store.seen(lookalike, now=T0 + 1, window_s=IDEM)
        assert not (await put(store, [event(10 + n, dedupe_key=lookalike)], now=T0 + 1))[0].duplicate
    again = await put(store, [odd(1), *(event(20 + n, dedupe_key=k) for n, k in enumerate(lookalikes))], now=T0 + 2)
    assert [a.duplicate for a in again] == [True] * 4


# -- reservations: synchronous deliveries in flight ------------------------------------

KEY = "0123456789\x1flogEvent\x1fm-7"  # the key of event(7)
HOLD = 40.0  # how long a reservation holds in these tests


async def reserve(store, now=T0, until=None):
    return await store.reserve(KEY, now=now, window_s=IDEM, until=now + HOLD if until is None else until)


async def test_a_key_taken_exactly_at_the_windows_start_is_still_taken(store_factory):
    store = await store_factory()
    await store.remember(KEY, now=T0)
    edge = T0 + IDEM  # the window [edge - IDEM, edge] still holds T0
    assert await store.seen(KEY, now=edge, window_s=IDEM)
    assert (await put(store, [event(7)], now=edge))[0].duplicate
    assert (await store.reserve(KEY, now=edge, window_s=IDEM, until=edge + HOLD)).state == DELIVERED
    later = edge + 0.5
    assert not await store.seen(KEY, now=later, window_s=IDEM)
    assert (await store.reserve(KEY, now=later, window_s=IDEM, until=later + HOLD)).state == TAKEN


async def test_a_reservation_is_taken_by_one_and_makes_the_others_wait(store_factory):
    one, two = await store_factory(), await store_factory()
    first = await reserve(one)
    assert first.state == TAKEN and first.token
    again = await reserve(two, now=T0 + 1)
    assert (again.state, again.until) == (BUSY, T0 + HOLD)
    assert (await reserve(one, now=T0 + 2)).state == BUSY  # the same store: no second holder either
    # In flight is not delivered: not seen, and an enqueue is neither stored nor a duplicate.
    assert not await two.seen(KEY, now=T0 + 1, window_s=IDEM)
    [queued] = await put(two, [event(7)], now=T0 + 1)
    assert (queued.id, queued.duplicate, queued.busy_until) == (None, False, T0 + HOLD)
    assert (await two.stats(now=T0 + 1)).pending == 0


async def test_a_delivered_reservation_makes_every_later_call_a_duplicate(store_factory):
    one, two = await store_factory(), await store_factory()
    await reserve(one)
    await one.remember(KEY, now=T0 + 5)  # the post succeeded
    assert (await reserve(two, now=T0 + 6)).state == DELIVERED
    assert await two.seen(KEY, now=T0 + 6, window_s=IDEM)
    assert (await put(two, [event(7)], now=T0 + 6))[0].duplicate
    # ... for the window, counted from the delivery.
    assert (await reserve(two, now=T0 + 5 + IDEM + 1)).state == TAKEN


async def test_a_failed_delivery_frees_its_reservation_and_only_its_own(store_factory):
    one, two = await store_factory(), await store_factory()
    first = await reserve(one)
    assert not await two.unreserve(KEY, "12345", now=T0 + 1)  # not that reservation's token: nothing freed
    assert not await two.unreserve(KEY, "not a token", now=T0 + 1)
    assert (await reserve(two, now=T0 + 1)).state == BUSY
    assert await one.unreserve(KEY, first.token, now=T0 + 2)  # the post failed
    second = await reserve(two, now=T0 + 3)
    assert second.state == TAKEN and second.token != first.token
    assert not await one.unreserve(KEY, first.token, now=T0 + 4)  # late: the key is someone else's now
    assert (await reserve(one, now=T0 + 4)).state == BUSY


async def test_an_expired_reservation_is_taken_over_and_never_counts_as_a_delivery(store_factory):
    """A process that died holding a key: once its reservation runs out, the event is sent (or queued), not a duplicate."""
    one, two = await store_factory(), await store_factory()
    first = await reserve(one)  # ... and the process dies
    assert not await two.seen(KEY, now=T0 + HOLD + 1, window_s=IDEM)
    second = await reserve(two, now=T0 + HOLD)  # its expiry reached: free
    assert second.state == TAKEN
    assert (await reserve(one, now=T0 + HOLD + 1)).state == BUSY
    # The holder that overran cannot free the new reservation; its success still counts (Kameleoon got it).
    assert not await one.unreserve(KEY, first.token, now=T0 + HOLD + 1)
    await one.remember(KEY, now=T0 + HOLD + 2)
    assert not await two.unreserve(KEY, second.token, now=T0 + HOLD + 3)  # a delivery is never undone
    assert (await reserve(two, now=T0 + HOLD + 4)).state == DELIVERED


async def test_an_expired_reservation_does_not_stop_an_enqueue(store_factory):
    one, two = await store_factory(), await store_factory()
    await reserve(one)
    [queued] = await put(two, [event(7)], now=T0 + HOLD + 1)
    assert queued.id and not queued.busy
    assert (await reserve(one, now=T0 + HOLD + 2)).state == DELIVERED  # enqueued: taken, as before
    assert (await put(one, [event(7)], now=T0 + HOLD + 2))[0].duplicate


async def test_an_enqueue_meeting_a_live_reservation_stores_the_rest_of_its_batch(store_factory):
    one, two = await store_factory(), await store_factory()
    await reserve(one)
    accepted = await put(two, [event(6), event(7), event(8), event(7), event(9, key=False)], now=T0 + 1)
    assert [bool(a.id) for a in accepted] == [True, False, True, False, True]
    assert [a.busy_until for a in accepted] == [None, T0 + HOLD, None, T0 + HOLD, None]  # the repeat shares its fate
    assert not any(a.duplicate for a in accepted)
    # The holder fails: the event can be enqueued now, once.
    await one.unreserve(KEY, (await reserve(one, now=T0 + HOLD, until=T0 + HOLD + 1)).token, now=T0 + HOLD)
    again = await put(two, [event(7), event(7)], now=T0 + HOLD + 1)
    assert again[0].id and again[1].duplicate
    assert (await two.stats(now=T0 + HOLD + 1)).pending == 4


async def test_reservations_are_atomic_across_instances(store_factory):
    stores = [await store_factory() for _ in range(3)]
    results = await asyncio.gather(
        *(store.reserve(f"{KEY}-{n}", now=T0, window_s=IDEM, until=T0 + HOLD) for n in range(30) for store in stores for _ in range(2))
    )
    for n in range(30):
        states = [r.state for r in results[n * 6 : (n + 1) * 6]]
        assert states.count(TAKEN) == 1 and states.count(BUSY) == 5, (n, states)
    # Sync reservations and queued enqueues racing for the same keys: each key goes to exactly one of them.
    keys = [event(100 + n) for n in range(30)]
    races = await asyncio.gather(
        stores[0].enqueue(keys, now=T0, window_s=WINDOW, idempotency_window_s=IDEM, max_pending=0),
        *(store.reserve(e.dedupe_key, now=T0, window_s=IDEM, until=T0 + HOLD) for e in keys for store in stores[1:]),
    )
    accepted, reservations = races[0], races[1:]
    for n, result in enumerate(accepted):
        states = [r.state for r in reservations[n * 2 : (n + 1) * 2]]
        if result.id:
            assert all(state in (BUSY, DELIVERED) for state in states), (n, states)
        else:
            assert result.busy and states.count(TAKEN) == 1, (n, result, states)


async def test_housekeeping_keeps_live_reservations(store_factory):
    store = await store_factory()
    await store.reserve(KEY, now=T0, window_s=IDEM, until=T0 + 3 * IDEM)  # a (very) long delivery
    await store.reserve(KEY + "-dead", now=T0, window_s=IDEM, until=T0 + HOLD)  # its process died
    assert await store.housekeep(now=T0 + IDEM + 1, dead_letter_retention_s=IDEM, idempotency_window_s=IDEM) == (0, 1)
    assert (await reserve(store, now=T0 + IDEM + 2)).state == BUSY
    assert (await store.reserve(KEY + "-dead", now=T0 + IDEM + 2, window_s=IDEM, until=T0 + 2 * IDEM)).state == TAKEN


async def test_housekeeping_forgets_old_dead_letters_and_keys(store_factory):
    store = await store_factory()
    await put(store, [event(1), event(2)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(claimed[0].id, claimed[0].lease, 400, "x")], now=T0)
    await store.mark_dead([Dead(claimed[1].id, claimed[1].lease, 400, "x")], now=T0 + 500)
    letters, keys = await store.housekeep(now=T0 + 1000, dead_letter_retention_s=600, idempotency_window_s=IDEM)
    assert (letters, keys) == (1, 0)
    assert (await store.stats(now=T0 + 1000)).dead == 1
    letters, keys = await store.housekeep(now=T0 + IDEM + 1, dead_letter_retention_s=10 * IDEM, idempotency_window_s=IDEM)
    assert (letters, keys) == (0, 2)


async def test_stats_count_by_state_and_action_with_the_oldest_age(store_factory):
    store = await store_factory()
    await put(store, [event(1, "page")], now=T0)
    await put(store, [event(2), event(3)], now=T0 + 10)
    await store.claim(1, now=T0 + 20, lease_s=LEASE)
    stats = await store.stats(now=T0 + 30)
    assert (stats.pending, stats.in_flight, stats.dead) == (2, 1, 0)
    assert stats.oldest_pending_age_s == 30
    assert (stats.by_action["page"].in_flight, stats.by_action["logEvent"].pending) == (1, 2)
    assert (await store.stats(now=T0 + 100)).in_flight == 0  # the lease ran out


async def test_stats_add_up_actions_with_events_in_every_state(store_factory):
    store = await store_factory()
    await put(store, [event(1), event(2), event(3), event(4, "identify"), event(5, "identify"), event(6, "page")])
    claimed = {c.message_id: c for c in await store.claim(10, now=T0, lease_s=LEASE)}
    await store.mark_dead([Dead(claimed[m].id, claimed[m].lease, 400, "x") for m in ("m-1", "m-4", "m-6")], now=T0)
    await store.release([claimed["m-2"], claimed["m-5"]], now=T0)  # m-3 stays in flight
    stats = await store.stats(now=T0 + 1)
    assert {action: (e.pending, e.in_flight, e.dead) for action, e in stats.by_action.items()} == {
        "logEvent": (1, 1, 1),
        "identify": (1, 0, 1),
        "page": (0, 0, 1),
    }
    assert (stats.pending, stats.in_flight, stats.dead) == (2, 1, 3)


async def test_the_oldest_age_is_the_oldest_of_every_action_whatever_their_order(store_factory):
    store = await store_factory()
    await put(store, [event(1, "logEvent")], now=T0)  # the oldest, an action neither first nor last by name
    await put(store, [event(2, "identify")], now=T0 + 10)
    await put(store, [event(3, "page"), event(4, "track")], now=T0 + 20)
    assert (await store.stats(now=T0 + 30)).oldest_pending_age_s == 30


async def test_many_concurrent_enqueues_all_commit(store_factory):
    store = await store_factory()
    results = await asyncio.gather(*(put(store, [event(n), event(n + 10_000)]) for n in range(300)))
    ids = [a.id for accepted in results for a in accepted]
    assert len(set(ids)) == 600 and None not in ids
    assert (await (await store_factory()).stats(now=T0)).pending == 600


# -- what the counts, the pages and the routes say exactly --------------------------------


async def test_a_claim_and_a_dead_letter_keep_the_route_apart_from_the_action(store_factory):
    """A raw event's route is its subscription's name, not its action: the deliverer labels metrics with it."""
    store = await store_factory()
    await put(store, [event(1, route="my-subscription")])
    [claimed] = await store.claim(1, now=T0, lease_s=LEASE)
    assert (claimed.action, claimed.route) == ("logEvent", "my-subscription")
    await store.mark_dead([Dead(claimed.id, claimed.lease, 400, "x")], now=T0 + 1)
    [letter], _ = await store.list_dead_letters(DeadLetterFilter(), limit=10)
    assert (letter.action, letter.route) == ("logEvent", "my-subscription")


async def test_expired_and_retried_dead_letters_keep_the_undelivered_count_right(store_factory):
    """KAMELEOON_OUTBOX_MAX_PENDING counts undelivered events: an expired one leaves it, a retried letter joins it."""
    store = await store_factory()
    await put(store, [event(1), event(2)], window=100)
    assert len(await store.expire(now=T0 + 100, limit=100)) == 2
    # Both gone from the queue: two more fit under a limit of 2 (with the expired ones still counted, none would).
    accepted = await put(store, [event(3), event(4)], now=T0 + 100, max_pending=2)
    assert all(a.id for a in accepted)
    with pytest.raises(OutboxFull):
        await put(store, [event(5)], now=T0 + 100, max_pending=2)
    assert await store.retry_dead_letters(DeadLetterFilter(), now=T0 + 101, window_s=WINDOW) == 2
    # Four undelivered now: a fifth passes a limit of 4, fits under 5.
    with pytest.raises(OutboxFull, match=r"^the outbox holds 4 undelivered events; 1 more would pass KAMELEOON_OUTBOX_MAX_PENDING\b.*: retry later$"):
        await put(store, [event(5)], now=T0 + 101, max_pending=4)
    assert (await put(store, [event(5)], now=T0 + 101, max_pending=5))[0].id


async def test_stats_of_an_empty_store_and_of_events_in_flight_under_several_actions(store_factory):
    store = await store_factory()
    empty = await store.stats(now=T0)
    assert (empty.pending, empty.in_flight, empty.dead, empty.oldest_pending_age_s, empty.by_action) == (0, 0, 0, 0.0, {})
    await put(store, [event(1), event(2, "identify"), event(3, "page")])
    assert (await store.stats(now=T0)).oldest_pending_age_s == 0.0  # accepted this very moment
    assert (await store.stats(now=T0 + 0.5)).oldest_pending_age_s == 0.5
    await put(store, [event(4)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(claimed[-1].id, claimed[-1].lease, 400, "x")], now=T0)
    stats = await store.stats(now=T0 + 1)
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 3, 1)  # summed over the three actions
    logged = stats.by_action["logEvent"]
    assert (logged.pending, logged.in_flight, logged.dead) == (0, 1, 1)  # one in flight, one dead letter


async def test_the_last_page_of_dead_letters_has_no_cursor_when_it_is_full(store_factory):
    store = await store_factory()
    await put(store, [event(n) for n in range(4)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(c.id, c.lease, 400, "x") for c in claimed], now=T0)
    first, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=2)
    second, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=2, cursor=cursor)
    assert [d.message_id for d in first + second] == ["m-0", "m-1", "m-2", "m-3"]
    assert cursor is None  # exactly two were left: no third page
    every, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=4)
    assert len(every) == 4 and cursor is None


async def test_marks_of_nothing_change_nothing(store_factory):
    store = await store_factory()
    await put(store, [event(1)])
    assert await store.mark_delivered([], now=T0) == 0
    assert await store.mark_retry([], now=T0) == 0
    assert await store.mark_dead([], now=T0) == 0
    assert await store.release([], now=T0) == 0
    assert (await store.stats(now=T0)).pending == 1


async def test_a_closed_store_refuses_reads_and_writes_naming_itself(store_factory):
    store = await store_factory()
    await put(store, [event(1)])
    await store.close()
    closed = f"^the outbox {re.escape(getattr(store, 'path', store.location))} is closed$"  # its file, or its URL without password
    with pytest.raises(OutboxUnavailable, match=closed):
        await store.stats(now=T0)
    with pytest.raises(OutboxUnavailable, match=closed):
        await put(store, [event(2)])
    with pytest.raises(OutboxUnavailable, match="is closed"):
        await store.claim(1, now=T0, lease_s=LEASE)
    await store.close()  # twice is harmless


async def test_dead_letter_ids_no_store_could_hold_match_nothing(store_factory):
    """Ids come from an operator's command line: one out of any integer column's range is no error, it matches nothing."""
    store = await store_factory()
    await put(store, [event(1)])
    [claimed] = await store.claim(1, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(claimed.id, claimed.lease, 400, "x")], now=T0)
    huge = ("9223372036854775808", "-9223372036854775809", "99999999999999999999", "not-an-id")  # 2**63, -2**63 - 1
    letters, _ = await store.list_dead_letters(DeadLetterFilter(ids=(*huge, claimed.id)), limit=10)
    assert [d.id for d in letters] == [claimed.id]
    assert await store.purge_dead_letters(DeadLetterFilter(ids=huge)) == 0
    assert await store.retry_dead_letters(DeadLetterFilter(ids=huge), now=T0, window_s=WINDOW) == 0
    assert not await store.unreserve(KEY, "9223372036854775808", now=T0)


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", " 2", "²", str(2**63)])
async def test_a_cursor_no_page_gave_is_refused_naming_the_page_token(store_factory, cursor):
    """Read as "from the start" or "past the end", a cursor the store never gave would list the wrong
    letters without a word: it is the caller's mistake, named as the request's page_token."""
    store = await store_factory()
    await put(store, [event(n) for n in range(2)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(c.id, c.lease, 400, "x") for c in claimed], now=T0)
    with pytest.raises(InvalidArgument) as refused:
        await store.list_dead_letters(DeadLetterFilter(), limit=1, cursor=cursor)
    assert refused.value.field == "page_token"
    assert str(refused.value) == "page_token is not one a page of dead letters gave: pass next_page_token as it came"
    first, cursor = await store.list_dead_letters(DeadLetterFilter(), limit=1)
    second, _ = await store.list_dead_letters(DeadLetterFilter(), limit=1, cursor=cursor)
    assert [d.message_id for d in first + second] == ["m-0", "m-1"]
    assert await store.list_dead_letters(DeadLetterFilter(), limit=1, cursor=str(2**63 - 1)) == ([], None)  # the largest id


# -- the delivery overview's rollups and samples (service.ops.overview), and the in-process stand-in ----------


@pytest.fixture(params=["store", "memory"])
async def overview_store(request, store_factory):
    """Each outbox store, and MemoryOverview (a service without an outbox): the same contract."""
    return MemoryOverview() if request.param == "memory" else await store_factory()


def sample(n: int, reason: str = "HTTP_400", destination: str = "eu", at: float = T0) -> Sample:
    return Sample("checkout", destination, reason, at + n, f"m-{n}", f'{{"n":{n}}}', f"POST x\n\n{n}", 400, "no", 1)


async def test_overview_rollups_add_up_by_minute_and_window(overview_store):
    minute = int(T0 // 60)
    rows = [("checkout", "eu", "received", "", 3), ("checkout", "eu", "discarded", "NO_MATCHING_MAPPING", 1)]
    keep = dict(first_minute=minute - 10, samples_since=T0 - 60, samples_kept=10)
    await overview_store.add_overview(minute, rows, [], **keep)
    await overview_store.add_overview(minute, [("checkout", "eu", "received", "", 2)], [], **keep)
    await overview_store.add_overview(minute + 1, [("checkout", "eu", "received", "", 5)], [], **keep)
    start = minute * 60
    assert sorted(await overview_store.overview(start, start + 60)) == [
        ("checkout", "eu", "discarded", "NO_MATCHING_MAPPING", 1),
        ("checkout", "eu", "received", "", 5),
    ]
    assert ("checkout", "eu", "received", "", 10) in await overview_store.overview(start - 1, start + 120)
    assert ("checkout", "eu", "received", "", 5) in await overview_store.overview(start + 1, start + 120)  # minutes starting in it
    # A later write forgets the minutes before its first_minute (that minute itself is kept).
    await overview_store.add_overview(minute + 2, [], [sample(0)], first_minute=minute + 1, samples_since=T0 - 60, samples_kept=10)
    assert await overview_store.overview(start, start + 60) == []
    assert ("checkout", "eu", "received", "", 5) in await overview_store.overview(start + 60, start + 120)


async def test_samples_keep_the_latest_of_each_kind_newest_first_within_the_retention(overview_store):
    keep = dict(first_minute=0, samples_since=T0 - 60, samples_kept=3)
    await overview_store.add_overview(int(T0 // 60), [], [sample(n) for n in range(5)], **keep)
    # "aa" sorts before "eu" but is the newest: newest first is by time, not by name
    await overview_store.add_overview(int(T0 // 60), [], [sample(9, destination="aa"), sample(8, reason="DEAD_LETTER")], **keep)
    found = [Sample(*row) for row in await overview_store.samples("HTTP_400")]
    assert [(s.destination, s.message_id) for s in found] == [("aa", "m-9"), ("eu", "m-4"), ("eu", "m-3"), ("eu", "m-2")]
    assert found[1] == sample(4)  # every field as given
    assert [s.message_id for s in map(Sample._make, await overview_store.samples("HTTP_400", "checkout", "aa"))] == ["m-9"]
    assert await overview_store.samples("HTTP_400", "app") == []
    # Samples older than samples_since are forgotten at the next write.
    await overview_store.add_overview(int(T0 // 60), [], [], first_minute=0, samples_since=T0 + 4, samples_kept=3)
    assert [Sample(*row).message_id for row in await overview_store.samples("HTTP_400")] == ["m-9", "m-4"]


# -- one event's fate (OutboxAdmin.GetEvent) ------------------------------------------------------------


async def test_an_events_rows_are_found_by_message_id_and_its_delivery_time_kept_with_its_key(store_factory):
    store = await store_factory()
    wanted = [event(1), event(1, "identify"), event(1, "page"), event(2)]
    await put(store, wanted)
    claimed = {c.action: c for c in await store.claim(10, now=T0, lease_s=LEASE) if c.message_id == "m-1"}
    await store.mark_dead([Dead(claimed["identify"].id, claimed["identify"].lease, 400, "bad")], now=T0 + 1)
    await store.mark_retry([Retry(claimed["page"].id, claimed["page"].lease, T0 + 60, 503, "busy")], now=T0 + 1)
    found = {f.action: f for f in await store.find_event("m-1", now=T0 + 2)}
    assert (found["logEvent"].state, found["logEvent"].at, found["logEvent"].attempts) == ("in_flight", T0 + LEASE, 1)
    assert (found["identify"].state, found["identify"].at, found["identify"].last_status, found["identify"].last_error) == (
        "dead",
        T0 + 1,
        400,
        "bad",
    )
    assert (found["page"].state, found["page"].at, found["page"].last_status, found["page"].route) == ("pending", T0 + 60, 503, "page")
    assert await store.find_event("m-404", now=T0) == []
    # Delivered: the row leaves, its key remembers when (the keys are the deliverer's; others are untouched).
    log_key = event(1).dedupe_key
    assert await store.mark_delivered([claimed["logEvent"]], now=T0 + 3, keys=[log_key]) == 1
    assert [f.action for f in await store.find_event("m-1", now=T0 + 3)] == ["page", "identify"]
    assert await store.delivered_at([log_key, event(1, "page").dedupe_key, "never"]) == {log_key: T0 + 3}
    # A synchronous delivery through the shared window: remembered when delivered; a reservation is not a delivery.
    await store.remember("sync key", now=T0 + 4)
    await store.reserve("held key", now=T0 + 4, window_s=IDEM, until=T0 + 30)
    assert await store.delivered_at(["sync key", "held key"]) == {"sync key": T0 + 4}


async def test_dead_letters_bodies_are_read_by_id(store_factory):
    """The operator's page shows what a dead letter would have sent; ids no store could hold match nothing."""
    store = await store_factory()
    await put(store, [event(1), event(2)])
    claimed = await store.claim(10, now=T0, lease_s=LEASE)
    await store.mark_dead([Dead(c.id, c.lease, 400, "x") for c in claimed], now=T0)
    first, second = claimed
    assert await store.dead_letter_bodies([first.id, "not-an-id", "9223372036854775808"]) == {first.id: b'{"messageId":"m-1","n":1}'}
    assert await store.dead_letter_bodies([]) == {}
    assert set(await store.dead_letter_bodies([first.id, second.id])) == {first.id, second.id}
