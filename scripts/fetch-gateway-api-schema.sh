#!/usr/bin/env bash
# Installs the Gateway API v1 validators (npm @kubernetes-models/gateway-api, generated from
# sigs.k8s.io/gateway-api's Go types, pinned with every dependency by the committed
# scripts/gateway-api/package-lock.json) into .tools/gateway-api/ for the HTTPRoute schema
# tests. Set-up time only: the tests never go online.
set -euo pipefail
cd "$(dirname "$0")/.."
destination=".tools/gateway-api"
marker="$destination/node_modules/@kubernetes-models/gateway-api/package.json"
if [ -f "$marker" ] && cmp -s scripts/gateway-api/package-lock.json "$destination/package-lock.json"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-gateway-api-schema: npm is not installed, so the HTTPRoute schema tests will skip" >&2
    exit 0
fi
mkdir -p "$destination"
cp scripts/gateway-api/package.json scripts/gateway-api/package-lock.json "$destination/"
# npm ci installs exactly the lock file and checks every package's integrity hash.
(cd "$destination" && npm ci --silent --ignore-scripts --no-audit --no-fund --engine-strict=false)
echo "fetch-gateway-api-schema: $destination from @kubernetes-models/gateway-api@2.0.0"
