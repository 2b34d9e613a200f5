"""The delivery overview's recorder on its own (service.ops.overview): what a flush hands the store, what is kept
when the store fails, how many samples wait between flushes, retention by the recorder's clock, and the texts a
sample holds (cut, redacted). The service-level behaviour is tests/test_overview.py's."""

from __future__ import annotations

import asyncio

from service.ops import overview
from service.ops.overview import SAMPLES_PER_REASON, MemoryOverview, Recorder, Sample, cut, failure_reason, request_text

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FailingStore(MemoryOverview):
    """A store that refuses writes until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    async def add_overview(self, minute, rows, samples, **keep):
        if not self.up:
            raise ConnectionError("database unreachable")
        await super().add_overview(minute, rows, samples, **keep)


async def test_counts_wait_for_a_store_that_is_down_and_are_written_once_it_is_back(log_lines):
    store = FailingStore()
    recorder = Recorder(store, clock=Clock())
    for _ in range(3):
        recorder.count("s", "d", overview.RECEIVED)
    await recorder.flush()
    assert await store.overview(0, T0 + 60) == []
    assert [line["event"] for line in log_lines() if line["level"] == "warning"] == ["delivery overview not written: kept for the next try"]
    recorder.count("s", "d", overview.RECEIVED)
    store.up = True
    await recorder.flush()
    assert await store.overview(0, T0 + 60) == [("s", "d", "received", "", 4)]  # nothing lost, nothing counted twice
    await recorder.flush()
    assert await store.overview(0, T0 + 60) == [("s", "d", "received", "", 4)]


async def test_at_most_ten_samples_of_a_reason_wait_for_a_flush():
    clock, store = Clock(), MemoryOverview()
    recorder = Recorder(store, clock=clock)
    for n in range(15):
        clock.now += 1
        assert recorder.wants("s", "d", "HTTP_400") == (n < SAMPLES_PER_REASON)
        recorder.sample("s", "d", "HTTP_400", f"m-{n}")
    assert recorder.wants("s", "other", "HTTP_400") and recorder.wants("s", "d", "HTTP_503")  # each instance and reason its own
    await recorder.flush()
    assert [Sample(*row).message_id for row in await store.samples("HTTP_400")] == [f"m-{n}" for n in range(9, -1, -1)]  # the first ten
    assert recorder.wants("s", "d", "HTTP_400")  # a flush makes room again
    off = Recorder(MemoryOverview(), samples=False)
    assert not off.wants("s", "d", "HTTP_400")


async def test_samples_older_than_the_retention_are_forgotten_by_the_recorders_clock():
    clock, store = Clock(), MemoryOverview()
    recorder = Recorder(store, sample_retention_s=60, clock=clock)
    recorder.sample("s", "d", "HTTP_400", "m-old")
    await recorder.flush()
    clock.now += 61
    recorder.sample("s", "d", "HTTP_400", "m-new")
    await recorder.flush()
    assert [Sample(*row).message_id for row in await store.samples("HTTP_400")] == ["m-new"]


async def test_stop_ends_the_flushing_task_and_writes_what_was_left():
    store = MemoryOverview()
    recorder = Recorder(store, clock=Clock())
    recorder.start()
    recorder.count("s", "d", overview.DELIVERED)
    await recorder.stop()
    assert not [task for task in asyncio.all_tasks() if "Recorder._run" in repr(task.get_coro())]
    assert await store.overview(0, T0 + 60) == [("s", "d", "delivered", "", 1)]


def test_texts_are_cut_at_a_character_and_hold_no_nul():
    assert cut("é" * 3000) == "é" * 2048  # 4096 bytes: no character split
    assert cut("aé", 2) == "a"  # half a character is left out
    assert cut("a\x00b") == "a\ufffdb"
    assert cut("\ud800x") == "?x"  # a lone surrogate, which no store's text holds
    assert cut(b"\xff\xfeab") == "ab"


async def test_a_samples_message_id_is_cut_at_1_kib():
    store = MemoryOverview()
    recorder = Recorder(store, clock=Clock())
    recorder.sample("s", "d", "HTTP_400", "m" * 5000, event="e" * 5000)
    await recorder.flush()
    [kept] = [Sample(*row) for row in await store.samples("HTTP_400")]
    assert (len(kept.message_id), len(kept.event)) == (1024, 4096)


def test_a_requests_text_redacts_its_authorization_and_shows_any_body():
    text = request_text("https://k/segmentio", {"authorization": "Basic c2VjcmV0", "x-segment-settings": "0123456789"}, b'{"a":1}\xff')
    assert text.splitlines() == ["POST https://k/segmentio", "authorization: Basic <redacted>", "x-segment-settings: 0123456789", "", '{"a":1}\ufffd']
    assert failure_reason(0) == "NETWORK_ERROR" and failure_reason(503) == "HTTP_503"
