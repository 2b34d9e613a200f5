#!/usr/bin/env bash
# The callers' package end to end: build the kameleoon-destination-client wheel, install it
# into a fresh virtual environment that has a `service` module of its own (as many
# applications do), and call a running server through it. Run by .ci/run after make install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN=${VENV_BIN:-.venv/bin}

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$VENV_BIN/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" ./clients/python
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/dist/kameleoon_destination_client-*.whl
mkdir -p "$work/app"
echo 'NAME = "the caller'"'"'s own service module"' > "$work/app/service.py"

# A sink standing in for Kameleoon and a server, both from the project's environment, on free ports.
ports=$("$VENV_BIN/python" -c "
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in socks))")
read -r sink_port grpc_port <<<"$ports"
"$VENV_BIN/kameleoon-destination" sink --listen "127.0.0.1:$sink_port" >"$work/sink.log" 2>&1 &
pids+=($!)
KAMELEOON_BASE_URL="http://127.0.0.1:$sink_port/segmentio" \
KAMELEOON_API_KEY=eyJpZCI6ImRlbW8taWQiLCJzZWNyZXQiOiJkZW1vLXNlY3JldCJ9 KAMELEOON_SITECODE=0123456789 \
  "$VENV_BIN/kameleoon-destination" serve --listen "127.0.0.1:$grpc_port" >"$work/server.log" 2>&1 &
pids+=($!)

(cd "$work/app" && ../venv/bin/python - "$grpc_port" <<'PY'
import importlib.metadata
import sys

import grpc

import service  # the caller's own module, untouched by the install
from kameleoon.destination.client import KameleoonDestinationSyncClient
from kameleoon.destination.v1 import destination_pb2, destination_pb2_grpc

assert service.NAME == "the caller's own service module", service.__file__
installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
assert not {"aiohttp", "structlog", "kameleoon-destination"} & installed, installed
target = f"127.0.0.1:{sys.argv[1]}"
grpc.channel_ready_future(grpc.insecure_channel(target)).result(timeout=30)
with KameleoonDestinationSyncClient(target, timeout=10) as client:
    response = client.log_event(event="Client Package Checked", timestamp="2026-11-28T10:00:00Z", message_id="pkg-1")
assert response.http_status == 200 and response.message_id == "pkg-1", response
assert destination_pb2_grpc.KameleoonDestinationStub and destination_pb2.DESCRIPTOR.package == "kameleoon.destination.v1"
print("client package: installed beside a `service` module, called the server:", response.http_status)
PY
)
grep -q '"Client Package Checked"' "$work/sink.log" || { echo "the sink did not receive the event"; cat "$work/sink.log"; exit 1; }
