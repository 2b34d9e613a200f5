#!/usr/bin/env bash
# Checks what deploy/ and the Dockerfile ship:
# - hadolint on the Dockerfile;
# - every kustomization (deploy/ = the default variant, deploy/variants/*,
#   deploy/monitoring) rendered with kubectl kustomize, and every object it gives
#   validated by kubernetes-validate in strict mode against the Kubernetes schemas
#   (the Prometheus Operator's PodMonitor and PrometheusRule have no schema there:
#   tests/test_deploy.py and tests/test_monitoring.py check them);
# - the alerting rules with promtool (check rules, and their unit tests), when
#   promtool is installed (.ci/run installs it).
# Installs nothing: hadolint, kubernetes-validate and kubectl come with
# `make install` (the dev extra) and are looked up in .venv/bin first, then on
# PATH. Exits non-zero on any problem. KUBERNETES_VERSION picks the schema
# version (default 1.30).
set -euo pipefail
cd "$(dirname "$0")/.."

kube_version=${KUBERNETES_VERSION:-1.30}

tool() {
    if [[ -x ".venv/bin/$1" ]]; then
        echo ".venv/bin/$1"
    elif command -v "$1" >/dev/null; then
        command -v "$1"
    else
        echo "check_deploy: $1 not found in .venv/bin or on PATH (make install)" >&2
        return 1
    fi
}
hadolint=$(tool hadolint)
kubernetes_validate=$(tool kubernetes-validate)
kubectl=$(tool kubectl)
python=$(tool python)

status=0

echo "hadolint Dockerfile"
"$hadolint" --no-color Dockerfile || status=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

objects=()
for dir in deploy deploy/variants/*/ deploy/monitoring; do
    dir=${dir%/}
    [[ -f $dir/kustomization.yaml ]] || continue # variants/queued is a Component, part of the others
    grep -q '^kind: Component' "$dir/kustomization.yaml" && continue
    name=${dir//\//_}
    echo "kubectl kustomize $dir"
    if ! "$kubectl" kustomize "$dir" >"$work/$name.yaml"; then
        status=1
        continue
    fi
    # One file per object, CRD kinds aside (no schema for them in kubernetes-validate).
    while IFS= read -r file; do
        objects+=("$file")
    done < <("$python" - "$work/$name.yaml" "$work/$name" <<'EOF'
import pathlib, sys, yaml
source, prefix = sys.argv[1], sys.argv[2]
for i, doc in enumerate(d for d in yaml.safe_load_all(pathlib.Path(source).read_text()) if d):
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        continue
    path = pathlib.Path(f"{prefix}_{i}_{doc['kind']}.yaml")
    path.write_text(yaml.safe_dump(doc))
    print(path)
EOF
    )
done
if ((${#objects[@]} == 0)); then
    echo "check_deploy: no objects rendered from deploy/" >&2
    exit 1
fi

echo "kubernetes-validate --strict -k $kube_version (${#objects[@]} objects)"
# kubernetes-validate only warns, exit code 0, on an unknown kind or apiVersion:
# count a warning as a failure too.
if ! output=$("$kubernetes_validate" --strict -k "$kube_version" --quiet "${objects[@]}" 2>&1); then
    status=1
fi
if [[ -n $output ]]; then
    echo "$output"
    if grep -qE '^(WARN|ERROR|FATAL)' <<<"$output"; then
        status=1
    fi
fi

if command -v promtool >/dev/null; then
    echo "promtool check rules / test rules deploy/monitoring"
    (cd deploy/monitoring && promtool check rules alerts.yaml && promtool test rules alerts.test.yaml) || status=1
else
    echo "check_deploy: promtool not installed, alerting rules not checked (apt-get install prometheus)" >&2
fi

if ((status == 0)); then
    echo "check_deploy: Dockerfile and ${#objects[@]} objects OK"
else
    echo "check_deploy: FAILED" >&2
fi
exit "$status"
