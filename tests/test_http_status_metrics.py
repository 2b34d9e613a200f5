"""What Kameleoon answered, attempt by attempt: kameleoon_http_attempts_total{action, http_status}."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from service.ops.metrics import KNOWN_STATUSES, status_label
from tests.conftest import SETTINGS

TS = "2024-03-15T12:34:56.789Z"


async def scrape_text(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            return await response.text()


async def samples(port: int, family: str) -> dict[tuple, float]:
    """The samples of one metric family: {sorted label items: value}."""
    found = {}
    for metric in text_string_to_metric_families(await scrape_text(port)):
        if metric.name == family:
            for sample in metric.samples:
                if sample.name == family + "_total" or sample.name == family:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_status(found: dict[tuple, float], action: str) -> dict[str, float]:
    return {dict(k)["http_status"]: v for k, v in found.items() if dict(k)["action"] == action}


def log_event(message_id: str) -> pb.LogEventRequest:
    return pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id=message_id)


async def test_a_503_retried_into_a_200_shows_both_answers(start_service, sink):
    app, stub = await start_service(metrics_listen=("127.0.0.1", 0), max_attempts=3)
    sink.script.append(Reply(status=503))
    response = await stub.LogEvent(log_event("m-503"), timeout=10)
    assert (response.http_status, response.attempts) == (200, 2)

    assert by_status(await samples(app.metrics_port, "kameleoon_http_attempts"), "logEvent") == {"503": 1, "200": 1}
    # The delivery itself counts once, by its final answer: the 503 is visible only in the attempts.
    assert by_status(await samples(app.metrics_port, "kameleoon_deliveries"), "logEvent") == {"200": 1}


async def test_no_answer_and_odd_statuses_get_bounded_labels(start_service, sink):
    app, stub = await start_service(metrics_listen=("127.0.0.1", 0), max_attempts=3)
    # A dropped connection (no answer), an unlisted 5xx (retried), then a 200.
    sink.script.extend([Reply(drop=True), Reply(status=599), Reply(status=200)])
    await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp=TS, message_id="p-1"), timeout=10)
    # An unlisted 4xx: final.
    sink.script.append(Reply(status=418, body="teapot"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.PageEvent(pb.PageEventRequest(settings=SETTINGS, timestamp=TS, message_id="p-2"), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    attempts = by_status(await samples(app.metrics_port, "kameleoon_http_attempts"), "page")
    assert attempts == {"none": 1, "5xx_other": 1, "200": 1, "4xx_other": 1}
    assert by_status(await samples(app.metrics_port, "kameleoon_deliveries"), "page") == {"200": 1, "4xx_other": 1}


def test_status_labels_are_a_small_fixed_set():
    labels = {status_label(status) for status in range(-10, 2000)}
    assert {str(status) for status in KNOWN_STATUSES} <= labels
    assert labels - {str(status) for status in KNOWN_STATUSES} == {"none", "1xx_other", "2xx_other", "3xx_other", "4xx_other", "5xx_other", "other"}
    # Every status the service retries or maps to its own error keeps its number.
    assert {status_label(s) for s in (408, 423, 429, 500, 502, 503, 504, 400, 401, 403, 404, 413, 422, 501)} <= {str(s) for s in KNOWN_STATUSES}
    assert status_label(0) == "none" and status_label(207) == "2xx_other" and status_label(1000) == "other"
