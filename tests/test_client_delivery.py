"""The client's ``delivery`` option reaches the server: queued calls are answered from the outbox."""

from __future__ import annotations

import pytest

from kameleoon.destination.client import KameleoonDestinationClient
from tests.conftest import API_KEY, SITECODE

TS = "2026-11-28T10:00:00Z"


def track(message_id: str) -> dict:
    return {"type": "track", "event": "Signed Up", "timestamp": TS, "messageId": message_id}


@pytest.fixture
async def client(start_service, tmp_path):
    # Sync by default; the outbox is there for calls that ask for queued delivery.
    app, _ = await start_service(outbox=f"sqlite:///{tmp_path / 'outbox.db'}", api_key=API_KEY, sitecode=SITECODE)
    async with KameleoonDestinationClient(f"127.0.0.1:{app.port}", timeout=10) as client:
        yield client


async def test_each_call_can_ask_for_queued_or_sync_delivery(client):
    queued = await client.send(track("c-1"), delivery="queued")
    assert (queued.results[0].queued, queued.results[0].http_status) == (True, 0)
    synced = await client.send(track("c-2"), delivery="sync")
    assert (synced.results[0].queued, synced.results[0].http_status) == (False, 200)
    default = await client.send(track("c-3"))
    assert default.results[0].queued is False

    batch = await client.send_batch([track("c-4"), track("c-5")], delivery="queued")
    assert [r.results[0].queued for r in batch.responses] == [True, True]
    streamed = [r async for r in client.send_stream([track("c-6")], delivery="queued")]
    assert streamed[0].results[0].queued is True

    typed = await client.log_event(event="Signed Up", timestamp=TS, delivery="queued")
    assert typed.queued and typed.outbox_id


async def test_an_unknown_delivery_mode_is_refused_before_any_call(client):
    with pytest.raises(ValueError, match="delivery must be 'sync' or 'queued'"):
        await client.send(track("c-7"), delivery="later")
    with pytest.raises(ValueError, match="delivery must be"):
        await client.send_batch([track("c-8")], delivery=7)
