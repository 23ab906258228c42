#!/usr/bin/env bash
# Runs cargo-deny with deny.toml. Licences, bans and sources need only Cargo.lock.
# Advisories need the RustSec database, which is cloned from GitHub: where GitHub is
# unreachable (this workplace's machines reach only the package registries) the
# advisory check cannot run; it says so loudly, and fails instead when
# DDCC_REQUIRE_ADVISORIES=1 (set it wherever the database can be fetched).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
deny="$(bash tests/tools/setup-cargo-deny.sh)"
"$deny" --offline check licenses bans sources
if "$deny" fetch db >/dev/null 2>&1; then
  "$deny" --offline check advisories
elif [ "${DDCC_REQUIRE_ADVISORIES:-0}" = 1 ]; then
  echo "cargo deny: the RustSec advisory database cannot be fetched" >&2
  exit 1
else
  echo "WARNING: RustSec advisory database unreachable (github.com): advisories NOT checked" >&2
fi
