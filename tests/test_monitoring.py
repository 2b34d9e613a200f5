"""The monitoring kit (deploy/monitoring): promtool tests of the alerting rules, queries that parse,
and every metric the rules and the dashboard name exposed by a running server, with the labels they use."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kameleoon.destination.v1 import destination_pb2 as pb
from service.demo.sink import Reply
from tests.conftest import SETTINGS
from tests.test_http_status_metrics import scrape_text

ROOT = pathlib.Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "dashboard.json"
TS = "2024-03-15T12:34:56.789Z"

# Metrics that the rules and the dashboard name but that other branches add: this branch's server
# does not expose them yet. The lead deletes each entry as its branch lands; the scrape test fails
# on an entry the server does expose, so none is left behind.
# Labels Prometheus puts on every series from the target (PodMonitor or kubernetes-pods job), not the service.
TARGET_LABELS = {"namespace", "pod", "instance", "job", "container"}
# Families the scrape test's traffic must have produced samples of, so their labels are checked for real.
DRIVEN = {
    "kameleoon_rpc_total",
    "kameleoon_rpc_in_flight",
    "kameleoon_deliveries_total",
    "kameleoon_http_attempts_total",
    "kameleoon_delivery_retries_total",
    "kameleoon_delivery_seconds",
    "kameleoon_events_in_flight",
    "kameleoon_duplicates_total",
    "kameleoon_filtered_events_total",
    "kameleoon_outbox_enqueued_total",
    "kameleoon_outbox_delivered_total",
    "kameleoon_outbox_dead_lettered_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: .ci/run installs it (Debian package prometheus)")
        pytest.skip("promtool is not installed: apt-get install --no-install-recommends prometheus")
    return found


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[str]:
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    exprs += [var["definition"] for var in dashboard()["templating"]["list"] if var["type"] == "query"]
    return exprs


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in as Grafana would."""
    return expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")


# -- the rules -----------------------------------------------------------------------


def test_alerting_rules_pass_their_promtool_unit_tests():
    result = subprocess.run([promtool(), "test", "rules", "alerts.test.yaml"], cwd=MONITORING, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case.get("exp_alerts")}
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"
    assert alerts == quiet, f"alerts without a test that they stay quiet: {sorted(alerts - quiet)}"
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_prometheusrule_holds_the_same_rules():
    result = subprocess.run([sys.executable, "-m", "tools.gen_prometheusrule", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    generated = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert generated["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


# -- the dashboard -------------------------------------------------------------------


def test_dashboard_queries_parse(tmp_path):
    # promtool parses PromQL when it checks rules: every dashboard query becomes a recording rule.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
        for i, expr in enumerate(dashboard_expressions())
        if not expr.startswith("label_values(")
    ]
    (tmp_path / "dashboard_rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", "dashboard_rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_what_operators_asked_for():
    panels = dashboard_panels()
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])
    queried = "\n".join(dashboard_expressions())
    wanted = {
        "events in by method": r"sum by \(method\) \(rate\(kameleoon_rpc_total",
        "delivered": r'kameleoon_deliveries_total\{[^}]*http_status=~"2\.\*"',
        "failed by gRPC code": r"sum by \(method, code\) \(rate\(kameleoon_rpc_total\{[^}]*code!=\"OK\"",
        "failed by Kameleoon status": r"sum by \(action, http_status\) \(rate\(kameleoon_deliveries_total\{[^}]*http_status!~",
        "attempts by Kameleoon status": r"sum by \(http_status\) \(rate\(kameleoon_http_attempts_total",
        "retries": r"rate\(kameleoon_delivery_retries_total",
        "latency percentiles": r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(kameleoon_delivery_seconds_bucket",
        "connection-pool waits": r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(kameleoon_pool_wait_seconds_bucket",
        "backlog": r"kameleoon_outbox_pending",
        "backlog age": r"kameleoon_outbox_oldest_pending_age_seconds",
        "dead letters": r"kameleoon_outbox_dead_letters\b",
        "filtered events": r"sum by \(filter, outcome\) \(rate\(kameleoon_filtered_events_total",
    }
    missing = [what for what, pattern in wanted.items() if not re.search(pattern, queried)]
    assert not missing, missing


# -- rules and dashboard against a running server ---------------------------------------


def references(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names its matchers use) for every kameleoon_* metric an expression names."""
    found = []
    for match in re.finditer(r"\b(kameleoon_[a-z0-9_]+)\b(\{[^}]*\})?", expr):
        matchers = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2) or ""))
        found.append((match.group(1), matchers))
    return found


def grouping_labels(expr: str) -> set[str]:
    labels = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    # label_values(metric, label) in template variables.
    labels |= set(re.findall(r"label_values\(\s*kameleoon_[a-z0-9_]+\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", expr))
    return labels


def legend_labels() -> set[str]:
    return {
        label
        for panel in dashboard_panels()
        for target in panel["targets"]
        for label in re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", target.get("legendFormat", ""))
    }


async def drive_traffic(stub, sink) -> None:
    """Traffic that makes every labelled family of this branch's server report samples."""

    def log(message_id: str) -> pb.LogEventRequest:
        return pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id=message_id)

    await stub.LogEvent(log("ok"), timeout=10)
    await stub.LogEvent(log("ok"), timeout=10)  # a duplicate
    sink.script.append(Reply(status=503))
    await stub.LogEvent(log("retried"), timeout=10)  # a retry
    sink.script.append(Reply(status=400, body="bad"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.LogEvent(log("rejected"), timeout=10)
    dropped = pb.LogEventRequest(settings=SETTINGS, event="dropped", timestamp=TS, message_id="filtered")
    assert (await stub.LogEvent(dropped, timeout=10)).filtered_by == "Drop"  # FILTERS below
    # Queued delivery (the outbox): one event dead-lettered by a 400, one delivered.
    for message_id in ("queued-rejected", "queued-ok"):
        if message_id == "queued-rejected":
            sink.script.append(Reply(status=400, body="bad"))
        seen = len(sink.received)
        queued = pb.LogEventRequest(settings=SETTINGS, event="e", timestamp=TS, message_id=message_id, delivery=pb.DELIVERY_MODE_QUEUED)
        assert (await stub.LogEvent(queued, timeout=10)).queued
        await sink.wait_for(seen + 1, timeout=30)


FILTERS = '[{"title": "Drop", "enabled": true, "if": "event = \\"dropped\\"", "actions": [{"type": "DROP"}]}]'


async def test_every_metric_the_kit_names_is_exposed_with_the_labels_it_uses(start_service, sink, tmp_path):
    (tmp_path / "filters.json").write_text(FILTERS)
    app, stub = await start_service(
        metrics_listen=("127.0.0.1", 0),
        max_attempts=3,
        filters=str(tmp_path / "filters.json"),
        outbox=f"sqlite:///{tmp_path / 'outbox.db'}",
        api_key=SETTINGS.api_key,
    )
    await drive_traffic(stub, sink)
    text = await scrape_text(app.metrics_port)
    for _ in range(500):  # the deliverer counts an outcome once its mark is committed: wait for both
        if "kameleoon_outbox_delivered_total{" in text and "kameleoon_outbox_dead_lettered_total{" in text:
            break
        await asyncio.sleep(0.02)
        text = await scrape_text(app.metrics_port)
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))  # what exists, samples or not
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)

    def family_of(name: str) -> str | None:
        if name in declared:
            return name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and declared.get(name[: -len(suffix)]) in ("histogram", "summary"):
                return name[: -len(suffix)]
        return None

    problems = []
    named = set()
    for where, exprs in (("alerts.yaml", rule_expressions()), ("dashboard.json", dashboard_expressions())):
        for expr in exprs:
            known_labels = set(TARGET_LABELS) | {"le"}
            for name, matchers in references(expr):
                named.add(name)
                family = family_of(name)
                if family is None:
                    problems.append(f"{where}: {name} is not on /metrics")
                    continue
                if name in labels:  # samples exist: their labels are known
                    known_labels |= labels[name]
                    unknown = matchers - labels[name] - TARGET_LABELS
                    if unknown:
                        problems.append(f"{where}: {name} has no label {sorted(unknown)}")
                else:
                    known_labels |= matchers
            unknown = grouping_labels(expr) - known_labels
            if unknown:
                problems.append(f"{where}: grouping by {sorted(unknown)}, which no metric of {expr!r} has")
    assert not problems, "\n".join(problems)

    legends = legend_labels() - TARGET_LABELS - {"le"}
    all_labels = set().union(*labels.values())
    assert legends <= all_labels, "legend labels no metric has"

    assert DRIVEN <= {family_of(name) for name in labels}, "the traffic left families without samples"
    assert DRIVEN <= {family_of(name) for name in named}, "the kit no longer names a family this test drives"
