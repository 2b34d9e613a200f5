"""Sources and destination instances (KAMELEOON_WORKSPACE) through a real server and the stand-in: each source's
events at its own instances only (told apart by x-segment-settings and the apiKey), disabled instances, write
keys on event calls and refused on operators' RPCs, instances retried and dead-lettered on their own, reloads,
secrets kept out of logs and errors, and the file's mistakes named."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os

import grpc
import pytest

from kameleoon.destination.v1 import destination_pb2 as pb
from kameleoon.destination.v1 import destination_pb2_grpc as pb_grpc
from service.api.server import create_server
from service.config import Config, from_env
from service.demo.sink import Reply
from service.errors import ConfigError
from service.workspace.load import WorkspaceError, load
from tests.conftest import eventually
from tests.test_http_api import basic, post
from tests.test_metrics import scrape

QUEUED = pb.DELIVERY_MODE_QUEUED
TS = "2026-12-01T10:00:00.000Z"
CHECKOUT_KEY, APP_KEY, ADMIN = "wk_checkout_7f3a", "wk_app_91c2", "adm_5d1e"
# base64 JSON apiKeys, one per instance, so the stand-in tells them apart by authorization too
API_KEYS = {name: base64.b64encode(json.dumps({"id": name, "secret": f"s-{name}"}).encode()).decode() for name in ("eu", "us", "off", "app")}
SITECODES = {"eu": "EU00000001", "us": "US00000001", "off": "OF00000001", "app": "AP00000001", "new": "NW00000001"}


def instance(name: str, **extra) -> dict:
    return {"name": name, "settings": {"apiKey": {"env": f"TEST_KEY_{name.upper()}"}, "sitecode": SITECODES[name]}, **extra}


def workspace(*checkout: dict) -> dict:
    return {
        "sources": [
            {"name": "checkout", "write_keys": [CHECKOUT_KEY], "destinations": list(checkout or (instance("eu"), instance("us")))},
            {"name": "app", "write_keys": [{"file": "app.key"}], "allow_request_settings": False, "destinations": [instance("app")]},
        ]
    }


def write(path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@pytest.fixture
def workspace_file(tmp_path, monkeypatch):
    for name, key in API_KEYS.items():
        monkeypatch.setenv(f"TEST_KEY_{name.upper()}", key)
    monkeypatch.setenv("TEST_KEY_NEW", API_KEYS["eu"])
    (tmp_path / "app.key").write_text(APP_KEY + "\n")
    path = tmp_path / "workspace.json"
    write(path, workspace(instance("eu"), instance("us"), instance("off", enabled=False)))
    return path


@pytest.fixture
async def service(start_service, workspace_file, tmp_path):
    """(app, stub, admin stub, channel); ``start(**overrides)`` starts it with the workspace and an outbox."""

    async def start(**overrides):
        app, stub = await start_service(
            workspace=str(workspace_file),
            admin_tokens=(ADMIN,),
            outbox=f"sqlite:///{tmp_path}/outbox.db",
            metrics_listen=("127.0.0.1", 0),
            **overrides,
        )
        admin = pb_grpc.OutboxAdminStub(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
        return app, stub, admin

    return start


def bearer(key: str) -> tuple:
    return (("authorization", f"Bearer {key}"),)


def track(message_id: str, delivery: int = 0, **extra) -> pb.SendRequest:
    event = {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": message_id, "timestamp": TS, **extra}
    return pb.SendRequest(event_json=json.dumps(event), delivery=delivery)


def arrived(sink, message_id: str) -> dict[str, str]:
    """sitecode -> apiKey of every request carrying ``message_id`` that the stand-in took."""
    found = {}
    for r in sink.accepted():
        if r.json()["messageId"] == message_id:
            assert r.headers["x-segment-settings"] not in found, "delivered twice to one instance"
            found[r.headers["x-segment-settings"]] = r.headers["authorization"].removeprefix("Basic ")
    return found


async def test_each_sources_events_reach_its_enabled_instances_only(service, sink):
    app, stub, _ = await service()
    answer = await stub.Send(track("m-checkout"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert arrived(sink, "m-checkout") == {SITECODES["eu"]: API_KEYS["eu"], SITECODES["us"]: API_KEYS["us"]}  # "off" is disabled
    assert sorted((r.destination, r.http_status) for r in answer.results) == [("eu", 200), ("us", 200)]
    # Segment's libraries send the write key as Basic base64("<key>:"); the app source's key came from a file
    basic = base64.b64encode(f"{APP_KEY}:".encode()).decode()
    answer = await stub.Send(track("m-app"), metadata=(("authorization", f"Basic {basic}"),), timeout=10)
    assert arrived(sink, "m-app") == {SITECODES["app"]: API_KEYS["app"]}
    assert [r.destination for r in answer.results] == ["app"]
    samples = await scrape(app.metrics_port)
    assert samples['kameleoon_destination_events_total{destination="eu",result="delivered",source="checkout"}'] == 1
    assert samples['kameleoon_destination_events_total{destination="app",result="delivered",source="app"}'] == 1
    assert 'kameleoon_destination_events_total{destination="off",result="delivered",source="checkout"}' not in samples


async def test_one_parsed_event_fans_out_across_a_batch_and_the_typed_rpcs(service, sink):
    _, stub, _ = await service()
    batch = pb.SendBatchRequest(requests=[track("b-1"), track("b-2")], delivery=QUEUED)
    answer = await stub.SendBatch(batch, metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert [sorted(r.destination for r in each.results) for each in answer.responses] == [["eu", "us"], ["eu", "us"]]
    await eventually(lambda: all(len(arrived(sink, m)) == 2 for m in ("b-1", "b-2")), what="both events at both instances")
    typed = pb.LogEventRequest(event="Clicked", user_id="u-1", timestamp=TS, message_id="t-1")
    answer = await stub.LogEvent(typed, metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert sorted(r.destination for r in answer.results) == ["eu", "us"]
    assert arrived(sink, "t-1") == {SITECODES["eu"]: API_KEYS["eu"], SITECODES["us"]: API_KEYS["us"]}


@pytest.mark.parametrize(
    "metadata", [(), bearer("wk_unknown"), bearer(ADMIN), (("authorization", "Basic !!"),)], ids=["none", "unknown", "admin", "garbled"]
)
async def test_event_calls_without_a_known_write_key_are_unauthenticated(service, sink, metadata):
    _, stub, _ = await service()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Send(track("m-refused"), metadata=metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "write key" in refused.value.details()
    assert sink.received == []


async def test_a_write_key_never_opens_the_operators_rpcs(service):
    _, _, admin = await service()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    stats = await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), metadata=bearer(ADMIN), timeout=10)
    assert stats.dead == 0


async def test_request_settings_are_a_one_off_unless_the_source_refuses_them(service, sink):
    _, stub, _ = await service()
    own = pb.Settings(api_key=API_KEYS["off"], sitecode="RQ00000001")
    request = track("m-own")
    request.settings.CopyFrom(own)
    await stub.Send(request, metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert arrived(sink, "m-own") == {"RQ00000001": API_KEYS["off"]}  # the request's credentials, once
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Send(request, metadata=bearer(APP_KEY), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "allow_request_settings" in refused.value.details()
    assert len(sink.received) == 1


async def test_consent_is_each_instances_own(service, sink, workspace_file):
    write(workspace_file, workspace(instance("eu", consent_categories=["C0002"]), instance("us")))
    _, stub, _ = await service()
    refused = {"context": {"consent": {"categoryPreferences": {"C0002": False}}}}
    answer = await stub.Send(track("m-consent", **refused), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert arrived(sink, "m-consent") == {SITECODES["us"]: API_KEYS["us"]}
    by_destination = {r.destination: r for r in answer.results}
    assert by_destination["eu"].discard_reason == "FILTERED_BY_END_USER_CONSENT" and by_destination["us"].http_status == 200


async def test_two_instances_are_retried_and_dead_lettered_on_their_own(service, sink):
    """eu is down (503, then 400 for the second event); us is up: us gets each event once, eu's are retried, then one
    becomes eu's dead letter and the other arrives."""
    eu_answers = [Reply(503), Reply(503), Reply(200), Reply(400, '{"error":"bad"}')]

    def choose(received):
        return eu_answers.pop(0) if received.headers.get("x-segment-settings") == SITECODES["eu"] else Reply(200)

    sink.choose = choose
    _, stub, admin = await service(retry_max_backoff_s=0.05)
    await stub.Send(track("m-retried", QUEUED), metadata=bearer(CHECKOUT_KEY), timeout=10)
    await eventually(lambda: len(arrived(sink, "m-retried")) == 2, what="m-retried at both instances")
    await stub.Send(track("m-dead", QUEUED), metadata=bearer(CHECKOUT_KEY), timeout=10)
    await eventually(lambda: eu_answers == [] and len(arrived(sink, "m-dead")) == 1, what="m-dead refused by eu, taken by us")
    tries = [(r.json()["messageId"], r.headers["x-segment-settings"]) for r in sink.received]
    assert tries.count(("m-retried", SITECODES["eu"])) == 3 and tries.count(("m-retried", SITECODES["us"])) == 1
    assert tries.count(("m-dead", SITECODES["us"])) == 1
    letters = []

    async def dead_letters():
        letters[:] = (await admin.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=bearer(ADMIN), timeout=10)).dead_letters
        return letters

    await eventually_async(dead_letters)
    [letter] = letters
    assert (letter.message_id, letter.route, letter.sitecode, letter.last_http_status) == ("m-dead", "checkout/eu/Track Calls", SITECODES["eu"], 400)


async def eventually_async(condition, timeout: float = 10.0):
    from tests.test_reload import eventually as poll

    return await poll(condition, timeout)


async def test_a_reload_adds_an_instance_and_a_removed_ones_queued_events_become_dead_letters(service, sink, workspace_file):
    hold = [Reply(503)] * 1000

    def choose(received):  # us answers 503 until it is removed from the workspace
        return hold[0] if received.headers.get("x-segment-settings") == SITECODES["us"] else Reply(200)

    sink.choose = choose
    app, stub, admin = await service(config_poll_s=0.05, retry_max_backoff_s=0.05)
    await stub.Send(track("m-before", QUEUED), metadata=bearer(CHECKOUT_KEY), timeout=10)
    await eventually(lambda: len(arrived(sink, "m-before")) == 1 and any(r.status == 503 for r in sink.received), what="eu took it, us refused")
    before = app.reloader.versions["workspace"]
    write(workspace_file, workspace(instance("eu"), instance("new")))
    await eventually(lambda: app.reloader.versions["workspace"] != before, what="the new workspace in force")

    async def letters():
        return (await admin.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=bearer(ADMIN), timeout=10)).dead_letters

    [letter] = await eventually_async(letters)
    assert (letter.message_id, letter.route) == ("m-before", "checkout/us/Track Calls")
    assert "'us' of source 'checkout' is no longer in the workspace" in letter.last_error
    await stub.Send(track("m-after"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert arrived(sink, "m-after") == {SITECODES["eu"]: API_KEYS["eu"], SITECODES["new"]: API_KEYS["eu"]}
    assert app.metrics.registry.get_sample_value("kameleoon_config_reloads_total", {"config": "workspace", "result": "applied"}) == 1


async def test_a_bad_reload_keeps_the_workspace_in_force(service, sink, workspace_file):
    app, stub, _ = await service(config_poll_s=0)
    write(workspace_file, {"sources": [{"name": "checkout", "write_keys": [CHECKOUT_KEY], "destinations": [], "typo": 1}]})
    assert app.reloader.reload() == {"workspace": "refused"}
    await stub.Send(track("m-kept"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    assert len(arrived(sink, "m-kept")) == 2


async def test_a_rotated_secret_file_is_a_new_version(service, sink, workspace_file, tmp_path):
    app, stub, _ = await service(config_poll_s=0)
    (tmp_path / "app.key").write_text("wk_app_rotated")
    assert app.reloader.reload() == {"workspace": "applied"}
    await stub.Send(track("m-rotated"), metadata=bearer("wk_app_rotated"), timeout=10)
    assert arrived(sink, "m-rotated") == {SITECODES["app"]: API_KEYS["app"]}
    with pytest.raises(grpc.aio.AioRpcError) as old:
        await stub.Send(track("m-old"), metadata=bearer(APP_KEY), timeout=10)
    assert old.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_http_tracking_api_takes_a_workspaces_write_keys(service, sink):
    """Segment's Python library with the app source's write key: its events reach the app instance only;
    a key of no source is refused (401)."""
    app, _, _ = await service(http_listen=("127.0.0.1", 0))
    url = f"http://127.0.0.1:{app.http_port}"

    def send() -> None:
        from segment.analytics import Client

        client = Client(APP_KEY, host=url, sync_mode=True, max_retries=1)
        client.track(user_id="u-2", event="Signed Up", message_id="m-http", timestamp=datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC))
        client.flush()

    await asyncio.to_thread(send)
    await eventually(lambda: arrived(sink, "m-http") == {SITECODES["app"]: API_KEYS["app"]})
    status, _, _ = await post(f"{url}/v1/track", {"event": "X", "userId": "u-2", "messageId": "m-no"}, basic(CHECKOUT_KEY[:-1]))
    assert status == 401


async def test_secrets_never_reach_the_logs_or_the_errors(service, sink, log_lines, workspace_file):
    app, stub, admin = await service(config_poll_s=0)
    await stub.Send(track("m-log"), metadata=bearer(CHECKOUT_KEY), timeout=10)
    for metadata in (bearer(CHECKOUT_KEY + "x"), bearer(APP_KEY + "x")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Send(track("m-log"), metadata=metadata, timeout=10)
        assert CHECKOUT_KEY not in refused.value.details() and APP_KEY not in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError):
        await admin.GetOutboxStats(pb.GetOutboxStatsRequest(), metadata=bearer(CHECKOUT_KEY), timeout=10)
    write(workspace_file, {"sources": [{"name": "checkout", "write_keys": [CHECKOUT_KEY, CHECKOUT_KEY], "destinations": [instance("eu")]}]})
    assert app.reloader.reload() == {"workspace": "refused"}
    await stub.SendBatch(pb.SendBatchRequest(requests=[track("m-batch")]), metadata=bearer(APP_KEY), timeout=10)
    lines = log_lines()
    rpcs = {line["method"]: line for line in lines if line["event"] == "rpc" and line["code"] == "OK"}
    assert (rpcs["Send"]["source"], rpcs["Send"]["destinations"]) == ("checkout", ["eu", "us"])
    assert rpcs["SendBatch"]["source"] == "app"
    text = json.dumps(lines)
    assert "m-log" in text and "write_keys[1]" in text  # the lines are there, and the refused reload names the path
    for secret in (CHECKOUT_KEY, APP_KEY, ADMIN, *API_KEYS.values()):
        assert secret not in text
    exposition = app.metrics.exposition().decode()
    for secret in (CHECKOUT_KEY, APP_KEY, *API_KEYS.values()):
        assert secret not in exposition


# -- the file ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda w: w["sources"][0].update(typo=1), "sources[0].typo: unknown key"),
        (lambda w: w["sources"][0]["destinations"][1].update(name="eu"), "sources[0].destinations[1].name: 'eu' is used twice"),
        (lambda w: w["sources"][1].update(name="checkout"), "sources[1].name: 'checkout' is used twice"),
        (lambda w: w["sources"][0].update(name="no spaces"), "sources[0].name: must be 1 to 64 letters"),
        (lambda w: w["sources"][0]["destinations"][0]["settings"].update(sitecode="123"), "destinations[0].settings.sitecode: must be exactly 10"),
        (lambda w: w["sources"][0]["destinations"][0]["settings"].update(apiKey={"env": "UNSET_VAR_X"}), "UNSET_VAR_X is not set"),
        (lambda w: w["sources"][0]["destinations"][0]["settings"].pop("apiKey"), "destinations[0].settings: missing apiKey"),
        (lambda w: w["sources"][0]["destinations"][0].update(enabled="yes"), "destinations[0].enabled: must be true or false"),
        (lambda w: w["sources"][0]["destinations"][0].update(mappings="absent.yaml"), "destinations[0].mappings: absent.yaml: cannot read it"),
        (lambda w: w["sources"][0]["destinations"][0].update(consent_categories="C0002"), "consent_categories: must be a list"),
        (lambda w: w["sources"][1]["write_keys"].append(CHECKOUT_KEY), "write_keys[1]: the same write key opens source 'checkout'"),
        (
            lambda w: w["sources"][0].update(destinations=[{**instance("eu"), "name": f"i{n}"} for n in range(26)]),
            "26 instances, Segment connects at most 25",
        ),
        (lambda w: w["sources"][0].update(allow_request_settings="no"), "allow_request_settings: must be true or false"),
        (lambda w: w.update(sources=[]), "sources: must be a non-empty list"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_bad_file_is_refused_naming_the_path_and_no_secret(workspace_file, change, named):
    data = json.loads(workspace_file.read_text())
    change(data)
    write(workspace_file, data)
    with pytest.raises(WorkspaceError) as refused:
        load(str(workspace_file))
    assert named in str(refused.value) and str(workspace_file) in str(refused.value)
    for secret in (CHECKOUT_KEY, APP_KEY, *API_KEYS.values()):
        assert secret not in str(refused.value)


def test_yaml_with_mappings_and_filters_relative_to_the_file(workspace_file, tmp_path):
    (tmp_path / "filters.yaml").write_text('- title: Drop tests\n  enabled: true\n  if: event = "Test"\n  actions: [{type: DROP}]\n')
    (tmp_path / "ws.yaml").write_text(
        "sources:\n"
        "  - name: web\n"
        "    write_keys: [wk_web_1]\n"
        "    destinations:\n"
        "      - name: kameleoon-eu\n"
        "        settings: {apiKey: {env: TEST_KEY_EU}, sitecode: '0123456789'}\n"
        "        filters: filters.yaml\n"
    )
    loaded = load(str(tmp_path / "ws.yaml"))
    [source] = loaded.workspace.sources
    assert source.name == "web" and [i.name for i in source.instances] == ["kameleoon-eu"]
    assert loaded.workspace.source_of("wk_web_1") is source and loaded.workspace.source_of("wk_web_2") is None
    assert [str(f.name) for f in loaded.files] == ["ws.yaml", "filters.yaml"]
    filters, _ = source.instances[0].router.current()
    assert filters.steps


async def test_the_workspace_replaces_the_per_instance_variables(workspace_file):
    with pytest.raises(ConfigError) as clash:
        from_env({"KAMELEOON_WORKSPACE": str(workspace_file), "KAMELEOON_MAPPINGS": "mappings.yaml"})
    assert "KAMELEOON_WORKSPACE replaces KAMELEOON_MAPPINGS" in str(clash.value)
    with pytest.raises(ConfigError) as bad:  # a bad file stops the start, naming the problem
        await create_server(Config(workspace=str(workspace_file.with_name("absent.json"))), "127.0.0.1:0")
    assert "absent.json: cannot read it" in str(bad.value)
