#!/usr/bin/env bash
# Installs the reference Node stack's signing + QR libraries (its lockfile versions)
# and measures its hot path, printing one JSON line. Benchmarks only; the project
# never ships or links this code (@pathcheck/dcc-sdk is GPL-3.0).
# usage: bench/run-node-reference.sh [iterations]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/node-reference"
[ -d node_modules/@pathcheck/dcc-sdk ] || npm ci --no-audit --no-fund >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$work/k.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/k.pem" -out "$work/k8.pem"
openssl req -new -x509 -key "$work/k.pem" -subj "/C=XX/CN=benchmark DSC" -days 30 -out "$work/c.pem" 2>/dev/null
node bench.js "${1:-500}" "$work/c.pem" "$work/k8.pem" "$here/eu-dcc-payload.json"
