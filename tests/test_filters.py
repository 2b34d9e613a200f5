"""Destination filters in the running service: tsub's goldens through a real server and the
Kameleoon stand-in, typed RPCs seen as events, sampling, and a bad file stopping start-up."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys

import pytest
import yaml

from kameleoon.destination.v1 import destination_pb2 as pb
from service import jsonwire
from service.api.server import create_server
from service.config import Config
from service.errors import FilterError
from service.routing.filters.actions import Sample, sample_fraction
from service.routing.filters.load import compile_all
from service.routing.mapping.jsvalue import json_stringify
from tests.conftest import SETTINGS, golden

GOLDEN = golden("filters.json")
TS = "2024-01-01T00:00:00Z"
# Every event, whole, as the properties of one Log Event: what the filters left is what Kameleoon gets.
EVERYTHING = [
    {
        "name": "Everything",
        "subscribe": 'type != "__none__"',
        "partnerAction": "logEvent",
        "mapping": {"properties": {"@path": "$."}, "type": "track", "timestamp": TS, "messageId": "m"},
    }
]
NOTHING = [
    {
        "name": "Nothing",
        "subscribe": 'type = "__none__"',
        "partnerAction": "logEvent",
        "mapping": {"type": "track", "timestamp": TS, "messageId": "m"},
    }
]


def write(path, data) -> str:
    path.write_text(json.dumps(data) if str(path).endswith(".json") else yaml.safe_dump(data))
    return str(path)


def batch(events) -> pb.SendBatchRequest:
    return pb.SendBatchRequest(settings=SETTINGS, requests=[pb.SendRequest(event_json=jsonwire.dumps(e).decode()) for e in events])


def unstamped(properties: dict, event: dict) -> dict:
    """The event as tsub saw it: without what the service stamps on it before the filters (receivedAt, and a
    messageId or timestamp it lacked), which tsub was not given."""
    return {key: value for key, value in properties.items() if key in event or key not in ("receivedAt", "messageId", "timestamp")}


async def test_golden_suites_through_the_server(start_service, sink, tmp_path):
    filters = tmp_path / "filters.json"
    write(filters, [])
    app, stub = await start_service(
        filters=str(filters), mappings=write(tmp_path / "subs.json", EVERYTHING), idempotency_window_s=0, batch_concurrency=1
    )
    delivered = 0
    for suite in GOLDEN["suites"]:
        write(filters, suite["filters"])
        assert app.reloader.reload(("filters",)) == {"filters": "applied"}
        response = await stub.SendBatch(batch(case["event"] for case in suite["cases"]), timeout=30)
        expected, inputs = [], []
        for case, answer in zip(suite["cases"], response.responses, strict=True):
            assert answer.status.code == 0, answer.status.message
            assert answer.filtered_by == (case["stopped_by"] or ""), (suite["name"], case["event"])
            assert len(answer.results) == (0 if case["stopped_by"] else 1)
            if case["output"] is not None:
                expected.append(case["output"])
                inputs.append(case["event"])
        received = await sink.wait_for(delivered + len(expected))
        got = [json_stringify(unstamped(jsonwire.loads(r.body)["properties"], event)) for r, event in zip(received[delivered:], inputs)]
        assert got == expected, suite["name"]
        delivered += len(expected)
    assert len(sink.received) == delivered


async def test_golden_conditions_through_the_server(start_service, sink, tmp_path):
    """Each condition as a DROP filter on its own copies of the pool's events (marked by _case):
    dropped exactly when tsub matched, or threw."""
    # "_case = i and (c)" reads c by truthiness: left out are lone lowercase(), length(), typeof(), true only alone when boolean
    cases = [
        c
        for c in GOLDEN["conditions"]
        if "results" in c and not (isinstance(c["matcher"].get("ir"), list) and c["matcher"]["ir"][0] in ("lowercase", "length", "typeof"))
    ]
    filters = tmp_path / "filters.json"
    app, stub = await start_service(filters=write(filters, []), mappings=write(tmp_path / "subs.json", NOTHING))
    checked = 0
    for start in range(0, len(cases), 40):
        chunk = list(enumerate(cases))[start : start + 40]
        write(
            filters,
            [
                {
                    "title": f"c{i}",
                    "enabled": True,
                    "actions": [{"type": "DROP"}],
                    "if": f"_case = {i}" if c["if"] == "all" else f"_case = {i} and ({c['if']})",
                }
                for i, c in chunk
            ],
        )
        assert app.reloader.reload(("filters",)) == {"filters": "applied"}
        events, wanted = [], []
        for i, case in chunk:
            for event, result in zip(GOLDEN["events"], case["results"], strict=True):
                events.append({"_case": i, **event})
                wanted.append(f"c{i}" if result is not False else "")
        response = await stub.SendBatch(batch(events), timeout=60)
        assert [r.filtered_by for r in response.responses] == wanted
        checked += len(wanted)
    assert checked > 3500 and sink.received == []


TYPED_FILTERS = [
    {"title": "Test users", "enabled": True, "if": 'match(traits.email, "*@example.test")', "actions": [{"type": "DROP"}]},
    {"title": "Test events", "enabled": True, "if": 'type = "track" and contains(event, "Test")', "actions": [{"type": "DROP"}]},
    {
        "title": "PII",
        "enabled": True,
        "if": "all",
        "actions": [{"type": "DROP_PROPERTIES", "fields": {"traits": ["email"], "context": ["ip"], "properties": ["email"]}}],
    },
    {
        "title": "Group plan only",
        "enabled": True,
        "if": 'type = "group" and traits.plan != null',
        "actions": [{"type": "ALLOW_PROPERTIES", "fields": {"traits": ["plan", "kameleoonVisitorCode"]}}],
    },
    {"title": "Home page", "enabled": True, "if": 'type = "page" and name = "Home"', "actions": [{"type": "DROP"}]},
]


def struct(data: dict):
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(data)
    return s


async def test_typed_rpcs_go_through_the_filters_as_events(start_service, sink, tmp_path):
    app, stub = await start_service(filters=write(tmp_path / "filters.yaml", TYPED_FILTERS))
    common = {"settings": SETTINGS, "timestamp": TS}
    # identify: its traits are the event's traits
    done = await stub.IdentifyEvent(
        pb.IdentifyEventRequest(
            **common, message_id="i1", user_id="u1", kameleoon_visitor_code="vc1", traits=struct({"email": "a@b.c", "name": "Ann"})
        ),
        timeout=5,
    )
    assert done.http_status == 200 and done.filtered_by == ""
    dropped = await stub.IdentifyEvent(
        pb.IdentifyEventRequest(**common, message_id="i2", user_id="u2", traits=struct({"email": "qa@example.test"})), timeout=5
    )
    assert (dropped.filtered_by, dropped.http_status, dropped.attempts, dropped.message_id) == ("Test users", 0, 0, "i2")
    # log event: context and properties are the event's; the type is track
    done = await stub.LogEvent(
        pb.LogEventRequest(
            **common,
            message_id="l1",
            event="Order Completed",
            kameleoon_visitor_code="vc2",
            properties=struct({"email": "x@y.z", "revenue": 42}),
            context=struct({"ip": "1.2.3.4", "locale": "fr"}),
        ),
        timeout=5,
    )
    assert done.http_status == 200
    dropped = await stub.LogEvent(pb.LogEventRequest(**common, message_id="l2", event="A Test Event"), timeout=5)
    assert dropped.filtered_by == "Test events"
    # group: allow only the plan (and the visitor code) among the traits
    done = await stub.GroupEvent(
        pb.GroupEventRequest(
            **common, message_id="g1", group_id="g", kameleoon_visitor_code="vc3", traits=struct({"plan": "pro", "seats": 10, "email": "e"})
        ),
        timeout=5,
    )
    assert done.http_status == 200
    dropped = await stub.PageEvent(pb.PageEventRequest(**common, message_id="p1", name="Home"), timeout=5)
    assert dropped.filtered_by == "Home page"
    done = await stub.PageEvent(pb.PageEventRequest(**common, message_id="p2", name="Pricing", context=struct({"ip": "5.6.7.8"})), timeout=5)
    assert done.http_status == 200

    bodies = [r.json() for r in await sink.wait_for(4)]
    assert len(sink.received) == 4
    identify, log_event, group, page = bodies
    assert identify == {
        "userId": "u1",
        "type": "identify",
        "properties": {"name": "Ann", "kameleoonVisitorCode": "vc1"},
        "timestamp": TS,
        "messageId": "i1",
    }
    assert log_event["type"] == "track" and log_event["properties"] == {"revenue": 42, "kameleoonVisitorCode": "vc2"}
    assert log_event["context"] == {"locale": "fr"}
    assert group["properties"] == {"plan": "pro", "kameleoonVisitorCode": "vc3"} and group["groupId"] == "g"
    assert page["name"] == "Pricing" and page["context"] == {}
    count = app.metrics.registry.get_sample_value
    assert count("kameleoon_filtered_events_total", {"filter": "Test users", "outcome": "dropped"}) == 1
    assert count("kameleoon_filtered_events_total", {"filter": "PII", "outcome": "properties_dropped"}) == 4
    assert count("kameleoon_filtered_events_total", {"filter": "Group plan only", "outcome": "properties_allowed"}) == 1


async def test_a_filter_that_drops_the_visitor_code_drops_it_from_the_body(start_service, sink, tmp_path):
    spec = [
        {
            "title": "No visitor code",
            "enabled": True,
            "if": "all",
            "actions": [{"type": "DROP_PROPERTIES", "fields": {"properties": ["kameleoonVisitorCode"]}}],
        }
    ]
    _, stub = await start_service(filters=write(tmp_path / "f.json", spec))
    await stub.LogEvent(
        pb.LogEventRequest(settings=SETTINGS, timestamp=TS, message_id="m", kameleoon_visitor_code="vc", properties=struct({"a": 1})), timeout=5
    )
    (received,) = await sink.wait_for(1)
    assert received.json()["properties"] == {"a": 1}


async def test_dropped_raw_events_answer_ok_name_the_filter_and_are_counted(start_service, sink, tmp_path):
    spec = [
        {"title": "Drop tests", "enabled": True, "if": "properties.test = true", "actions": [{"type": "DROP"}]},
        {"title": "Broken", "enabled": True, "if": '"x" in properties.tags', "actions": [{"type": "DROP_PROPERTIES", "fields": {"": ["x"]}}]},
        {"title": "Off", "enabled": False, "if": "all", "actions": [{"type": "DROP"}]},
    ]
    app, stub = await start_service(filters=write(tmp_path / "f.yaml", spec), metrics_listen=("127.0.0.1", 0))
    send = lambda event: stub.Send(pb.SendRequest(settings=SETTINGS, event_json=json.dumps(event)), timeout=5)  # noqa: E731
    track = {"type": "track", "event": "E", "timestamp": TS}
    dropped = await send({**track, "messageId": "t1", "properties": {"test": True}})
    assert dropped.filtered_by == "Drop tests" and list(dropped.results) == [] and dropped.message_id == "t1"
    errored = await send({**track, "messageId": "t2", "properties": {"tags": "not a list"}})
    assert errored.filtered_by == "Broken"  # a condition that cannot be evaluated drops the event
    kept = await send({**track, "messageId": "t3", "properties": {"tags": ["x"]}})
    assert kept.filtered_by == "" and [r.http_status for r in kept.results] == [200]
    stream = stub.SendStream(
        iter([pb.SendRequest(settings=SETTINGS, event_json=json.dumps({**track, "messageId": "t4", "properties": {"test": True}}))])
    )
    assert [r.filtered_by async for r in stream] == ["Drop tests"]
    (received,) = await sink.wait_for(1)
    assert received.json()["messageId"] == "t3" and len(sink.received) == 1
    from tests.test_metrics import scrape

    samples = await scrape(app.metrics_port)
    assert samples['kameleoon_filtered_events_total{filter="Drop tests",outcome="dropped"}'] == 2
    assert samples['kameleoon_filtered_events_total{filter="Broken",outcome="error"}'] == 1
    assert not any('filter="Off"' in name for name in samples)


def test_no_filters_and_disabled_filters_leave_nothing_to_do():
    from service.routing.filters import NO_FILTERS

    disabled = compile_all([{"title": "Off", "enabled": False, "if": "all", "actions": [{"type": "DROP"}]}])
    assert NO_FILTERS.steps == () and disabled.steps == () and not disabled


@pytest.mark.parametrize(
    "spec, problem",
    [
        ({"if": 'type = "track" and', "actions": [{"type": "DROP"}]}, "bad FQL in if at line 1, column 19: expected a field"),
        ({"if": "a = 1\nand b = ", "actions": [{"type": "DROP"}]}, "line 2, column 9"),
        ({"if": "all", "actions": [{"type": "DELETE"}]}, "unknown action type 'DELETE'"),
        ({"if": "all", "actions": [{"type": "SAMPLE", "percent": 30}]}, "SAMPLE percent must be a number from 0 to 1"),
        ({"if": "all", "actions": [{"type": "SAMPLE", "percent": True}]}, "SAMPLE percent must be a number from 0 to 1"),
        ({"if": "all", "actions": [{"type": "DROP_PROPERTIES", "fields": {"context": "ip"}}]}, "must be a list of key names"),
        ({"if": 'uppercase(event) = "X"', "actions": [{"type": "DROP"}]}, "unknown function uppercase()"),
        ({"if": "a = 1 and b = 2 or c = 3", "actions": [{"type": "DROP"}]}, "mixed without parentheses"),
        ({"if": "all", "actions": []}, "actions must be a non-empty list"),
        ({"if": "all", "actions": [{"type": "DROP"}], "colour": "red"}, "unknown key(s) colour"),
    ],
)
async def test_a_bad_filters_file_stops_start_up_naming_the_filter_and_the_problem(tmp_path, spec, problem):
    path = write(
        tmp_path / "filters.json",
        [{"title": "Fine", "enabled": True, "if": "all", "actions": [{"type": "DROP"}]}, {"title": "Faulty one", "enabled": True, **spec}],
    )
    with pytest.raises(FilterError) as raised:
        await create_server(Config(filters=path), "127.0.0.1:0")
    assert "filter #2 'Faulty one'" in str(raised.value) and problem in str(raised.value)


async def test_a_title_with_a_lone_surrogate_stops_start_up_naming_it(tmp_path):
    path = write(tmp_path / "filters.json", [{"title": "Drop \udc00", "enabled": True, "if": "all", "actions": [{"type": "DROP"}]}])
    with pytest.raises(FilterError) as raised:
        await create_server(Config(filters=path), "127.0.0.1:0")
    assert str(raised.value).endswith("filter #1 'Drop \\udc00': the title has a lone surrogate, which responses, logs and metrics cannot carry")


async def test_a_bad_filters_file_stops_the_process(tmp_path):
    from tests.test_cli import free_port, start

    path = write(tmp_path / "filters.yaml", [{"title": "Typo", "enabled": True, "if": "type = 'track' and", "actions": [{"type": "DROP"}]}])
    process = await start("serve", "--listen", f"127.0.0.1:{free_port()}", env={"KAMELEOON_FILTERS": path})
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "KAMELEOON_FILTERS" in err.decode() and "'Typo'" in err.decode() and "line 1, column 19" in err.decode()


# -- sampling ------------------------------------------------------------------------------


def _within_binomial(kept: int, n: int, p: float) -> bool:
    """kept is within 5 standard deviations of n*p (a false alarm about once in 3.5 million runs)."""
    return abs(kept - n * p) <= 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("percent", [0.05, 0.3, 0.5, 0.9])
def test_sampling_by_path_keeps_about_percent_of_the_values(percent):
    sample = Sample(percent, "userId")
    n = 20000
    kept = sum(sample.keeps({"userId": f"user-{i}"}) for i in range(n))
    assert _within_binomial(kept, n, percent), kept


def test_sampling_by_path_is_the_md5_fraction_of_the_json_value():
    import hashlib

    for value, text in [("u1", '"u1"'), (42, "42"), (None, "null"), ({"b": 1, "a": [True]}, '{"b":1,"a":[true]}'), ("é", '"é"')]:
        digest = hashlib.md5(text.encode()).digest()
        assert sample_fraction(value) == pytest.approx(int.from_bytes(digest[:8], "big") / 2**64, abs=2**-52)
    fraction = sample_fraction("u1")
    assert Sample(fraction + 1e-9, "userId").keeps({"userId": "u1"}) and not Sample(fraction, "userId").keeps({"userId": "u1"})
    assert not Sample(0.0, "userId").keeps({"userId": "u1"}) and Sample(1.0, "userId").keeps({"userId": "u1"})


def test_sampling_by_path_gives_the_same_answer_in_every_process():
    code = (
        "from service.routing.filters.actions import Sample; s = Sample(0.5, 'properties.id');"
        "print(''.join('1' if s.keeps({'properties': {'id': f'v{i}'}}) else '0' for i in range(2000)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip() for _ in range(2)}
    sample = Sample(0.5, "properties.id")
    here = "".join("1" if sample.keeps({"properties": {"id": f"v{i}"}}) else "0" for i in range(2000))
    assert runs == {here}


def test_sampling_without_a_path_is_a_fresh_draw_each_time():
    sample = Sample(0.3)
    n = 20000
    kept = sum(sample.keeps({"userId": "always the same"}) for _ in range(n))
    assert _within_binomial(kept, n, 0.3), kept


async def test_sampled_out_events_answer_ok_and_name_the_filter(start_service, sink, tmp_path):
    spec = [{"title": "Half of the users", "enabled": True, "if": "all", "actions": [{"type": "SAMPLE", "percent": 0.5, "path": "userId"}]}]
    app, stub = await start_service(filters=write(tmp_path / "f.json", spec), idempotency_window_s=0)
    sample = Sample(0.5, "userId")
    users = [f"u{i}" for i in range(40)]
    response = await stub.SendBatch(batch({"type": "track", "userId": u, "timestamp": TS, "messageId": u} for u in users), timeout=30)
    for user, answer in zip(users, response.responses, strict=True):
        assert answer.filtered_by == ("" if sample.keeps({"userId": user}) else "Half of the users")
    kept = [u for u in users if sample.keeps({"userId": u})]
    assert 0 < len(kept) < len(users)
    received = await sink.wait_for(len(kept))
    assert sorted(r.json()["userId"] for r in received) == sorted(kept)
    assert app.metrics.registry.get_sample_value("kameleoon_filtered_events_total", {"filter": "Half of the users", "outcome": "sampled_out"}) == len(
        users
    ) - len(kept)
