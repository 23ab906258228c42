#!/usr/bin/env bash
# Registry cost as the store grows, measured through HTTP (BENCHMARKS.md, "Store").
# For each size: pre-fill the store to that many documents through the store API (fast,
# not measured), start the release `ddcc-mediator serve` on it, run
# bench/registry_http.py (ITI-67/66 search latency, ITI-65 registrations/s), stop it.
#
#   cargo build --release -p ddcc-mediator --bin ddcc-mediator
#   cargo build --release -p ddcc-store --example prefill
#   bench/registry_scale.sh sqlite /var/tmp/bench-sqlite 100000,1000000
#   bench/registry_scale.sh postgres postgres://postgres@127.0.0.1:5432/bench 100000,1000000
#
# FROM=<n> resumes a store already filled to n documents (same samples file).
# Binaries default to $CARGO_TARGET_DIR (else target/)/release/.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=$1 target=$2 sizes=$3
out=${CARGO_TARGET_DIR:-target}/release
bin=${MEDIATOR_BIN:-$out/ddcc-mediator}
prefill=${PREFILL_BIN:-$out/examples/prefill}
work=${BENCH_WORK:-/tmp/registry-scale-$backend}
mkdir -p "$work"
samples=$work/samples.txt
have=${FROM:-0}
if [ "$have" = 0 ]; then rm -f "$samples"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

store_size() {
  if [ "$backend" = sqlite ]; then
    du -sh "$target" | cut -f1
  else
    local psql
    psql=$(ls /usr/lib/postgresql/*/bin/psql | tail -1)
    "$psql" "$target" -Atc "select pg_size_pretty(pg_database_size(current_database()))"
  fi
}

for size in ${sizes//,/ }; do
  echo "=== $backend: fill $have -> $size" >&2
  # The prefill and the service share the data keys (encryption at rest).
  mkdir -p "$work/data"
  DDCC_DATA_KEY_FILE="$work/data/data-keys.json" PREFILL_SAMPLES=$samples "$prefill" "$backend" "$target" "$have" "$size"
  have=$size
  envs=(SERVER_PORT="$port" DDCC_PROFILES_DIR="$PWD/fhir-profiles" RUST_LOG=warn)
  if [ "$backend" = sqlite ]; then
    envs+=(DDCC_DATA_DIR="$target")
  else
    envs+=(DATABASE_URL="$target" DDCC_DATA_DIR="$work/data" DDCC_DATA_KEY_FILE="$work/data/data-keys.json")
  fi
  env -i PATH="$PATH" "${envs[@]}" "$bin" serve 2>"$work/service-$size.log" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
  done
  echo "=== $backend at $size documents, store $(store_size), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  python3 bench/registry_http.py --url "http://127.0.0.1:$port" --samples "$samples" \
    --label "$backend $size" --pid "$pid" "${@:4}"
  kill -TERM "$pid"
  wait "$pid" || true
done
