#!/usr/bin/env bash
# Regenerates requirements/image.txt, the container image's lock file: every
# dependency of the server and of the client package (pyproject.toml files),
# pinned, with the sha256 of every file PyPI has for that version (so the lock
# serves amd64 and arm64 builds alike). The Dockerfile installs it with
# pip --require-hashes. Run after changing a dependency; tests/test_deploy.py
# fails while the lock misses one. Needs PyPI; uses uv (installed into .venv,
# pinned, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

uv=.venv/bin/uv
if [[ ! -x $uv ]]; then
    .venv/bin/python -m pip install --quiet "uv==0.13.8"
fi
"$uv" pip compile requirements/image.in \
    --generate-hashes \
    --python-version 3.11 \
    --python-platform linux \
    --no-emit-package kameleoon-destination \
    --no-emit-package kameleoon-destination-client \
    --custom-compile-command "tools/lock_image.sh" \
    --output-file requirements/image.txt \
    "$@"
