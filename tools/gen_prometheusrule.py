"""Write deploy/monitoring/prometheusrule.yaml from alerts.yaml (or, with --check, fail when it is stale).

alerts.yaml is the one source of the alerting rules: Prometheus loads it as a
rule file and promtool tests it (alerts.test.yaml). The Prometheus Operator
wants the same groups inside a PrometheusRule object; this writes that object.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import yaml

MONITORING = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
SOURCE = MONITORING / "alerts.yaml"
TARGET = MONITORING / "prometheusrule.yaml"
HEADER = """\
# GENERATED from alerts.yaml by `python -m tools.gen_prometheusrule`: edit
# alerts.yaml (and alerts.test.yaml), then regenerate. The same alerting rules,
# as a PrometheusRule for the Prometheus Operator (kube-prometheus-stack selects
# it by its labels: add yours, e.g. release: <your Prometheus release>).
"""


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    rules = yaml.safe_load(SOURCE.read_text())
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "kameleoon-destination",
            "labels": {"app.kubernetes.io/name": "kameleoon-destination", "app.kubernetes.io/part-of": "kameleoon-destination"},
        },
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if prometheusrule.yaml differs from what alerts.yaml gives")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m tools.gen_prometheusrule", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
