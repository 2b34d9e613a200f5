"""Raw events through subscriptions, against Segment's runtime (tests/goldens/events.json)."""

from __future__ import annotations

import functools

import pytest

from service import jsonwire
from service.errors import InvalidArgument, SubscriptionError
from service.routing.router import Router
from service.routing.subscriptions import compile_all, load, preset_specs
from tests.conftest import SETTINGS, golden

SUITES = golden("events.json")["suites"]
VALID_SUITES = [suite for suite in SUITES if not (suite.get("error") or suite.get("errors"))]
CASES = [(suite, case) for suite in VALID_SUITES for case in suite["cases"]]


def subscriptions_of(suite):
    return load(None) if suite["subscriptions"] is None else compile_all(suite["subscriptions"], suite["name"])


@functools.cache
def router_for(name: str) -> Router:
    [suite] = [s for s in VALID_SUITES if s["name"] == name]
    return Router(subscriptions_of(suite))


def test_presets_are_segments():
    assert preset_specs() == [{key: p[key] for key in ("name", "subscribe", "partnerAction", "mapping")} for p in golden("presets.json")]


@pytest.mark.parametrize("suite", [s for s in SUITES if s.get("error") or s.get("errors")], ids=lambda s: s["name"])
def test_subscriptions_segment_rejects_are_refused_at_start(suite):
    with pytest.raises(SubscriptionError) as raised:
        compile_all(suite["subscriptions"], suite["name"])
    bad = [s["name"] for s in suite["subscriptions"] if not s["name"].startswith("Valid")]
    assert any(name in str(raised.value) for name in bad)


@pytest.mark.parametrize("suite, case", CASES, ids=[case["name"] for _, case in CASES])
def test_event_routes_like_runtime(suite, case):
    router = router_for(suite["name"])
    expected = case["results"]
    errors = [result for result in expected if "error" in result]
    event = case["event"]
    if errors:
        # Segment sends the valid subscriptions' requests and then fails; we refuse the event whole.
        with pytest.raises(InvalidArgument) as raised:
            router.plan(event)
        fields = [f for result in errors for f in result["error"]["fields"]] or ["context"]
        assert any(raised.value.field and raised.value.field.startswith(f) for f in fields), str(raised.value)
        return
    planned = router.plan(event)
    assert [p.subscription.name for p in planned] == [r["subscription"] for r in expected]
    for item, result in zip(planned, expected):
        assert item.subscription.action.slug == result["action"]
        assert item.body.decode() == result["request"]["body"]


def stamped(event) -> bool:
    """Whether Segment's Tracking API (service.ingest.stamp) fills in the event's messageId or timestamp: the
    runtime was fed the event as it is, so only events that carry both are compared byte for byte here
    (tests/test_ingest.py compares the others)."""
    return isinstance(event, dict) and (event.get("messageId") in (None, "") or event.get("timestamp") is None)


SAMPLED = [(suite, case) for suite, case in CASES if not any("error" in r for r in case["results"]) and not stamped(case["event"])][::7]


@pytest.mark.parametrize("suite, case", SAMPLED, ids=[case["name"] for _, case in SAMPLED])
async def test_send_rpc_delivers_what_runtime_sends(suite, case, start_service, sink, tmp_path):
    mappings = None
    if suite["subscriptions"] is not None:
        mappings = tmp_path / "subscriptions.json"
        mappings.write_bytes(jsonwire.dumps(suite["subscriptions"]))
    _, stub = await start_service(mappings=str(mappings) if mappings else None)
    from kameleoon.destination.v1 import destination_pb2 as pb

    response = await stub.Send(pb.SendRequest(settings=SETTINGS, event_json=jsonwire.dumps(case["event"]).decode()), timeout=10)
    assert [r.subscription for r in response.results] == [r["subscription"] for r in case["results"]]
    assert sorted(r.body for r in sink.received) == sorted(r["request"]["body"] for r in case["results"])
    for received in sink.received:
        assert received.headers["authorization"] == case["results"][0]["request"]["headers"]["authorization"]
