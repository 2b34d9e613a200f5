#!/usr/bin/env bash
# Installs Segment's runtime beside this script, to record golden fixtures.
# @segment/action-destinations cannot be installed whole (it pins an AWS SDK
# version that fails to install), so it is packed and unpacked by hand next to
# @segment/actions-core, lodash and liquidjs, with fast-uri held at 3.0.6
# (newer versions break ajv there).
set -euo pipefail
cd "$(dirname "$0")"
DEST_VERSION=3.497.0
npm ci --no-audit --no-fund --loglevel=error
dest=node_modules/@segment/action-destinations
if [ "$(node -p "try{require('./$dest/package.json').version}catch(e){''}")" != "$DEST_VERSION" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@segment/action-destinations@$DEST_VERSION" >/dev/null)
  rm -rf "$dest" && mkdir -p "$dest"
  tar xzf "$tmp"/segment-action-destinations-"$DEST_VERSION".tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
fi
node -e "require('./$dest/dist/destinations/kameleoon'); console.log('oracle ready: @segment/action-destinations $DEST_VERSION')"
