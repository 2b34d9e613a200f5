"""What happens to a raw event before routing: stamping, the size limit, consent, the Integrations object,
and the discard reason of every event not sent. The rules against Segment's own code (tests/goldens/ingest.json),
then through a real server: what reached the stand-in, what was answered, counted and logged."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service import jsonwire
from service.ingest import consent, integrations
from service.ingest.consent import Consent
from service.ingest.stamp import Stamper
from tests.conftest import SETTINGS, bad_request_field, golden
from tests.test_events_golden import CASES, stamped
from tests.test_metrics import scrape

GOLDEN = golden("ingest.json")
TS = "2026-11-28T10:00:00.000Z"
TRACK = {"type": "track", "event": "Order Completed", "timestamp": TS, "properties": {"revenue": 1}}
FRESH_ID = re.compile(r"api-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def send_request(event: dict, **fields) -> pb.SendRequest:
    return pb.SendRequest(settings=SETTINGS, event_json=json.dumps(event), **fields)


# -- the rules, against Segment's code --------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN["integrations"], ids=lambda c: c["name"])
def test_integrations_object_as_segments_event_queue(case):
    event = {"type": "track"} if "integrations" not in case else {"type": "track", "integrations": jsonwire.loads(json.dumps(case["integrations"]))}
    assert integrations.allows(event) is case["delivered"]


def test_the_integrations_goldens_hold_duplicate_keys_as_written():
    """The recorder spliced raw JSON; a JSON reader keeps the last of two equal keys, as JSON.parse does."""
    [case] = [c for c in GOLDEN["integrations"] if c["name"] == "duplicate key: the last wins in JSON.parse"]
    assert case["integrations"] == {"Actions Kameleoon": False} and case["delivered"] is False


@pytest.mark.parametrize("case", GOLDEN["consent"], ids=lambda c: c["name"])
def test_consent_as_segments_consent_tools(case):
    """Where Segment's helper throws (no categoryPreferences, or null), the event flows: Segment's documented rule."""
    event = {"type": "track", "event": "Order Completed", "context": {"consent": {}}}
    if "categoryPreferences" in case:
        event["context"]["consent"]["categoryPreferences"] = jsonwire.loads(json.dumps(case["categoryPreferences"]))
    allowed = Consent(tuple(case["categories"])).allows(event)
    if "throws" in case:
        assert case.get("categoryPreferences") is None and allowed
    else:
        assert allowed is case["delivered"]


def test_consent_flows_without_preferences_and_for_the_preference_update_event():
    rule = Consent(("C0002",))
    denied = {"context": {"consent": {"categoryPreferences": {"C0002": False}}}}
    assert not rule.allows({"type": "track", "event": "Order Completed", **denied})
    assert rule.allows({"type": "track", "event": "Segment Consent Preference Updated", **denied})
    assert not rule.allows({"type": "page", "event": "Segment Consent Preference Updated", **denied})
    shapes = [{}, {"context": None}, {"context": "x"}, {"context": ""}, {"context": 0}, {"context": False}, {"context": []}]
    shapes += [{"context": {"consent": "yes"}}, {"context": {"consent": None}}, {"context": {"consent": 0}}, {"context": {"consent": ""}}]
    for shape in shapes:  # no categoryPreferences to read: the event flows
        assert rule.allows({"type": "track", **shape}), shape
    assert Consent().allows({"type": "track", **denied})  # no category mapped: no enforcement


# -- stamping ------------------------------------------------------------------------------------------


def test_received_at_is_set_when_absent_and_kept_when_present():
    stamp = Stamper(clock=lambda: 1764324000.1234)
    assert stamp({"type": "track"})["receivedAt"] == "2025-11-28T10:00:00.123Z"
    assert stamp({"type": "track", "receivedAt": None})["receivedAt"] == "2025-11-28T10:00:00.123Z"
    assert stamp({"type": "track", "receivedAt": "2020-01-01T00:00:00Z"})["receivedAt"] == "2020-01-01T00:00:00Z"


def test_message_id_absent_null_or_empty_gets_a_fresh_one():
    stamp = Stamper()
    ids = [stamp({"type": "track", **extra})["messageId"] for extra in ({}, {"messageId": None}, {"messageId": ""}, {})]
    assert all(FRESH_ID.match(found) for found in ids) and len(set(ids)) == 4
    assert stamp({"messageId": "m-1"})["messageId"] == "m-1"
    assert stamp({"messageId": 0})["messageId"] == 0  # present: kept as sent (routed as JavaScript prints it)


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"timestamp": "2001-01-01T00:00:00Z"}, "2001-01-01T00:00:00Z"),  # kept as sent
        ({"sentAt": "2026-11-28T09:59:00.000Z", "originalTimestamp": "2026-11-28T09:58:00.000Z"}, "2025-11-28T09:59:00.123Z"),
        ({"sentAt": "2026-11-28T12:00:00+02:00", "originalTimestamp": "2026-11-28T09:59:59.500Z"}, "2025-11-28T09:59:59.623Z"),
        ({"originalTimestamp": "2026-11-28T09:58:00.000Z"}, "2026-11-28T09:58:00.000Z"),
        ({"originalTimestamp": "2026-11-28T09:58:00", "sentAt": "not a date"}, "2026-11-28T09:58:00.000Z"),
        ({"originalTimestamp": "2026-11-28T11:58:00+02:00"}, "2026-11-28T09:58:00.000Z"),
        ({"sentAt": "2026-11-28T09:59:00.000Z"}, "2025-11-28T10:00:00.123Z"),
        ({"originalTimestamp": 1764324000, "sentAt": "2026-11-28T09:59:00.000Z"}, "2025-11-28T10:00:00.123Z"),
        ({"timestamp": None, "originalTimestamp": "yesterday"}, "2025-11-28T10:00:00.123Z"),
        (
            {"receivedAt": "2024-01-01T00:00:10Z", "sentAt": "2024-01-01T00:00:05Z", "originalTimestamp": "2024-01-01T00:00:00Z"},
            "2024-01-01T00:00:05.000Z",
        ),
        ({"receivedAt": 12}, "2025-11-28T10:00:00.123Z"),
    ],
)
def test_timestamp_when_absent_is_corrected_for_the_senders_clock(fields, expected):
    assert Stamper(clock=lambda: 1764324000.1234)({"type": "track", **fields})["timestamp"] == expected


def test_an_event_with_its_stamps_pays_nothing_and_changes_nothing():
    event = {"type": "track", "messageId": "m", "timestamp": TS, "receivedAt": TS}
    assert Stamper()(dict(event)) == event


# -- through a real server ---------------------------------------------------------------------------


async def test_a_track_without_message_id_or_timestamp_is_delivered_stamped(start_service, sink):
    _, stub = await start_service()
    before = datetime.now(UTC)
    response = await stub.Send(send_request({"type": "track", "event": "Signed Up", "userId": "u-1"}), timeout=5)
    (received,) = await sink.wait_for(1)
    body = received.json()
    assert FRESH_ID.match(body["messageId"]) and response.message_id == body["messageId"]
    assert ISO_MS.match(body["timestamp"]) and before.replace(microsecond=0) <= datetime.fromisoformat(body["timestamp"]) <= datetime.now(UTC)
    assert [r.http_status for r in response.results] == [200] and response.discard_reason == ""


@pytest.mark.parametrize(
    "suite, case", [(s, c) for s, c in CASES if stamped(c["event"])][::3], ids=lambda v: v["name"] if "results" in v else v["name"]
)
async def test_stamped_golden_events_send_the_runtimes_bodies_with_the_stamps(suite, case, start_service, sink, tmp_path):
    """The goldens' events that lack a messageId or a timestamp: Segment's runtime saw them unstamped. Ours
    are stamped first, so each body is the runtime's (where it sent one) but for those two fields, now set."""
    mappings = None
    if suite["subscriptions"] is not None:
        mappings = tmp_path / "subscriptions.json"
        mappings.write_bytes(jsonwire.dumps(suite["subscriptions"]))
    _, stub = await start_service(mappings=str(mappings) if mappings else None)
    event = case["event"]
    try:
        response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=jsonwire.dumps(event).decode()), timeout=5)
    except grpc.aio.AioRpcError as error:  # refused for another field than the two stamped ones
        others = {field for r in case["results"] if "error" in r for field in r["error"]["fields"]} - {"messageId", "timestamp"}
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and (others or event.get("timestamp") == ""), error.details()
        assert not sink.received
        return
    assert [r.subscription for r in response.results] == [r["subscription"] for r in case["results"]]
    received = sorted((json.loads(r.body) for r in sink.received), key=lambda b: json.dumps(b, sort_keys=True))
    assert len(received) == len(case["results"])
    for body in received:
        assert body["messageId"] == response.message_id and (event.get("messageId") or FRESH_ID.match(body["messageId"]))
        assert body["timestamp"] == (event.get("timestamp") or body["timestamp"]) and ISO_MS.match(body["timestamp"])
    expected = [json.loads(r["request"]["body"]) for r in case["results"] if "request" in r]
    unstamped = lambda body: {k: v for k, v in body.items() if k not in ("messageId", "timestamp")}  # noqa: E731
    for want in expected:
        assert unstamped(want) in [unstamped(body) for body in received]


@pytest.mark.parametrize(
    "integrations_object, sent",
    [
        ({"All": False}, False),
        ({"Kameleoon (Actions)": False}, False),
        ({"Actions Kameleoon": 0}, False),
        ({"All": False, "Actions Kameleoon": True}, True),
        ({"All": False, "Kameleoon (Actions)": {"x": 1}}, True),
        ({"Kameleoon": False, "Segment.io": False}, True),
        ("not an object", True),
        (["All"], True),
    ],
)
async def test_the_integrations_object_at_the_stand_in(integrations_object, sent, start_service, sink):
    app, stub = await start_service(metrics_listen=("127.0.0.1", 0))
    response = await stub.Send(send_request({**TRACK, "messageId": "i-1", "integrations": integrations_object}), timeout=5)
    samples = await scrape(app.metrics_port)
    if sent:
        assert [r.http_status for r in response.results] == [200] and response.discard_reason == ""
        (received,) = await sink.wait_for(1)
        assert received.json()["messageId"] == "i-1"
    else:
        assert list(response.results) == [] and response.discard_reason == integrations.REASON and response.message_id == "i-1"
        assert not sink.received
        assert samples['kameleoon_discarded_events_total{reason="FILTERED_BY_INTEGRATIONS_OBJECT"}'] == 1


async def test_consent_at_the_stand_in_sync_and_queued(start_service, sink, tmp_path, log_lines):
    app, stub = await start_service(consent_categories=("C0002", "C0004"), outbox=f"sqlite:///{tmp_path}/outbox.db", metrics_listen=("127.0.0.1", 0))
    consented = {"context": {"consent": {"categoryPreferences": {"C0002": True, "C0004": "yes", "C0001": False}}}}
    refused = {"context": {"consent": {"categoryPreferences": {"C0002": True}}}}  # C0004 missing: not consented
    answers = [
        await stub.Send(send_request({**TRACK, "messageId": "c-1", **consented}), timeout=5),
        await stub.Send(send_request({**TRACK, "messageId": "c-2", **refused}), timeout=5),
        await stub.Send(send_request({**TRACK, "messageId": "c-3"}), timeout=5),  # no preferences: flows
        await stub.Send(send_request({**TRACK, "messageId": "c-4", **refused}, delivery=pb.DELIVERY_MODE_QUEUED), timeout=5),
        await stub.Send(send_request({**TRACK, "event": "Segment Consent Preference Updated", "messageId": "c-5", **refused}), timeout=5),
        await stub.Send(send_request({**TRACK, "messageId": "c-6", "context": {"consent": {"categoryPreferences": ["C0002", "C0004"]}}}), timeout=5),
    ]
    assert [a.discard_reason for a in answers] == ["", consent.REASON, "", consent.REASON, "", consent.REASON]
    await sink.wait_for(3)
    assert sorted(r.json()["messageId"] for r in sink.received) == ["c-1", "c-3", "c-5"]
    admin = pb_grpc.OutboxAdminStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
    stats = await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=5)
    assert stats.pending + stats.in_flight == 0  # the queued one was refused before anything was stored
    samples = await scrape(app.metrics_port)
    assert samples['kameleoon_discarded_events_total{reason="FILTERED_BY_END_USER_CONSENT"}'] == 3
    lines = [line for line in log_lines() if line.get("event") == "rpc" and line.get("message_id") == "c-2"]
    assert [line["discard_reason"] for line in lines] == [consent.REASON]


async def test_an_event_over_the_size_limit_is_refused_naming_event_json_alone_in_its_batch(start_service, sink):
    _, stub = await start_service(max_event_bytes=1000)
    big = {**TRACK, "messageId": "big", "properties": {"text": "é" * 480}}  # 960 bytes of UTF-8 in the text alone
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(send_request(big), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_field(raised.value) == "event_json"
    assert "KAMELEOON_MAX_EVENT_BYTES" in raised.value.details() and "1000" in raised.value.details()
    small = {**TRACK, "messageId": "small", "properties": {"text": "e" * 480}}
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[send_request(big), send_request(small)]), timeout=5)
    assert [r.status.code for r in batch.responses] == [grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    (received,) = await sink.wait_for(1)
    assert received.json()["messageId"] == "small"


async def test_the_default_limit_is_segments_32_kb(start_service, sink):
    _, stub = await start_service()
    at_limit = {**TRACK, "messageId": "edge", "properties": {"text": ""}}
    at_limit["properties"]["text"] = "x" * (32768 - len(json.dumps(at_limit)))
    assert len(json.dumps(at_limit).encode()) == 32768
    await stub.Send(send_request(at_limit), timeout=5)
    over = {**at_limit, "messageId": "over!"}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Send(send_request(over), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (received,) = await sink.wait_for(1)
    assert received.json()["messageId"] == "edge"


async def test_each_discard_reason_is_answered_and_counted(start_service, sink, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"title": "No tests", "enabled": True, "if": "properties.test = true", "actions": [{"type": "DROP"}]}]))
    app, stub = await start_service(filters=str(filters), metrics_listen=("127.0.0.1", 0))
    alias = {"type": "alias", "userId": "u", "previousId": "a", "timestamp": TS, "messageId": "a-1"}
    dropped = {**TRACK, "messageId": "f-1", "properties": {"test": True}}
    batch = await stub.SendBatch(pb.SendBatchRequest(requests=[send_request(alias), send_request(dropped)]), timeout=5)
    assert [(r.discard_reason, r.filtered_by) for r in batch.responses] == [("NO_MATCHING_MAPPING", ""), ("FILTERED_BY_RULES", "No tests")]
    typed = await stub.LogEvent(
        pb.LogEventRequest(settings=SETTINGS, event="E", timestamp=TS, message_id="t-1", properties=_struct({"test": True})), timeout=5
    )
    assert (typed.discard_reason, typed.filtered_by, typed.http_status) == ("FILTERED_BY_RULES", "No tests", 0)
    samples = await scrape(app.metrics_port)
    assert samples['kameleoon_discarded_events_total{reason="NO_MATCHING_MAPPING"}'] == 1
    assert samples['kameleoon_discarded_events_total{reason="FILTERED_BY_RULES"}'] == 2
    assert not sink.received


def _struct(value: dict):
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    message.update(value)
    return message


async def test_odd_shapes_never_fail_a_call(start_service, sink):
    _, stub = await start_service(consent_categories=("C0002",))
    odd = [
        {"integrations": "Kameleoon"},
        {"integrations": 0},
        {"integrations": None},
        {"context": {"consent": "granted"}},
        {"context": {"consent": {"categoryPreferences": None}}},
        {"context": {"consent": {"categoryPreferences": "C0002"}}},
        {"context": {"consent": {"categoryPreferences": []}}},
    ]
    answers = [await stub.Send(send_request({**TRACK, "messageId": f"o-{i}", **extra}), timeout=5) for i, extra in enumerate(odd)]
    assert [a.discard_reason for a in answers] == ["", "", "", "", "", consent.REASON, consent.REASON]
    await sink.wait_for(5)
