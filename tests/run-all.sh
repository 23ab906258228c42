#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs every oracle and server the
# tests need (Python verifiers, FHIRPath.js, OpenBao, PostgreSQL), then runs format,
# lint and all tests. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Tests that need an oracle fail (instead of skipping) when it is missing.
export DDCC_REQUIRE_ORACLES=1
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s\n' "$*"; }

if [ ! -d "$root/../shared" ]; then
  echo "NOTE: ../shared is absent: conformance-corpus tests will skip and say so."
  unset DDCC_REQUIRE_ORACLES
fi

step "installing test tools"
for s in tests/tools/setup-*.sh; do
  [ -e "$s" ] || continue
  echo "--- $s"
  bash "$s"
done

step "starting PostgreSQL for the store tests"
if [ -x tests/tools/postgres.sh ] || [ -f tests/tools/postgres.sh ]; then
  DDCC_TEST_DATABASE_URL=$(bash tests/tools/postgres.sh start)
  export DDCC_TEST_DATABASE_URL
  trap 'bash tests/tools/postgres.sh stop >/dev/null 2>&1 || true' EXIT
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
