#!/usr/bin/env bash
# Installs cargo-deny (licence, ban, source and advisory checks of Cargo.lock) into
# tests/.tools/cargo-deny from crates.io, unless that exact version is already on
# PATH or there. Idempotent. Prints the binary path on stdout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version=0.20.2
dest="$root/tests/.tools/cargo-deny"
for c in "$(command -v cargo-deny || true)" "$dest/bin/cargo-deny"; do
  if [ -n "$c" ] && [ -x "$c" ] && "$c" --version 2>/dev/null | grep -qx "cargo-deny $version"; then
    echo "$c"
    exit 0
  fi
done
# Its own target dir: the workspace's must not be invalidated by a tool build.
cargo install cargo-deny --locked --version "$version" --root "$dest" \
  --target-dir "$root/tests/.tools/cargo-deny-build" >&2
rm -rf "$root/tests/.tools/cargo-deny-build"
echo "$dest/bin/cargo-deny"
