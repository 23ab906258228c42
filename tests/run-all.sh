#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs every oracle and server the
# tests need (Python verifiers, FHIRPath.js, OpenBao, PostgreSQL), then runs format,
# lint and all tests. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

if [ -d "$root/../shared" ]; then
  # Tests that need an oracle fail (instead of skipping) when it is missing.
  export DDCC_REQUIRE_ORACLES=1
else
  echo "NOTE: ../shared is absent: conformance-corpus tests skip and say so."
fi

step "installing test tools (idempotent)"
for s in tests/tools/setup-*.sh; do
  echo "--- $s"
  bash "$s" >/dev/null
done

step "starting a throwaway PostgreSQL for the store tests"
DDCC_TEST_DATABASE_URL=$(bash tests/tools/postgres.sh start)
export DDCC_TEST_DATABASE_URL
trap 'bash tests/tools/postgres.sh stop >/dev/null 2>&1 || true' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "generated files are current"
python3 tools/derive-rc2-map.py --check
python3 tools/gen-cql-libraries.py --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo deny (licences, bans, sources; advisories where the database is reachable)"
bash tests/tools/cargo-deny.sh

step "compliance harness self-test"
python3 -m unittest discover -s tests/compliance -p 'test_*.py'

step "cargo test"
cargo test --workspace --no-fail-fast
