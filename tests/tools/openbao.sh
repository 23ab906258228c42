#!/usr/bin/env bash
# Start/stop a throw-away OpenBao dev server (in-memory, unsealed, root token) for
# end-to-end tests, with the transit and pki engines enabled.
#
#   tests/tools/openbao.sh start   # prints `export VAULT_ADDR=… VAULT_TOKEN=…`
#   tests/tools/openbao.sh env     # the same exports for a running server
#   tests/tools/openbao.sh status
#   tests/tools/openbao.sh stop
#
# Settings: OPENBAO_PORT (default 18200), OPENBAO_ROOT_TOKEN (default
# ddcc-dev-root). State (pid, log, env, unseal key) lives in tests/.tools/openbao/.
# Rust integration tests do not need this script: they start their own servers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="$root/tests/.tools/openbao"
port="${OPENBAO_PORT:-18200}"
token="${OPENBAO_ROOT_TOKEN:-ddcc-dev-root}"
addr="http://127.0.0.1:$port"

bao_bin() {
  "$root/tests/tools/setup-openbao.sh" 2>/dev/null
}

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

print_env() {
  cat "$state/env"
}

case "${1:-}" in
  start)
    if running; then
      print_env
      exit 0
    fi
    bao="$(bao_bin)"
    mkdir -p "$state"
    : >"$state/log"
    "$bao" server -dev -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" \
      -dev-no-store-token >"$state/log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    export VAULT_ADDR="$addr" VAULT_TOKEN="$token"
    for _ in $(seq 1 200); do
      if "$bao" status >/dev/null 2>&1 && grep -q "Unseal Key:" "$state/log"; then
        break
      fi
      if ! running; then
        echo "openbao exited:" >&2
        cat "$state/log" >&2
        exit 1
      fi
      sleep 0.1
    done
    if ! "$bao" status >/dev/null 2>&1; then
      echo "openbao did not become ready on $addr" >&2
      exit 1
    fi
    grep "Unseal Key:" "$state/log" | awk '{print $3}' >"$state/unseal-key"
    for engine in transit pki; do
      if ! "$bao" secrets list -format=json | grep -q "\"$engine/\""; then
        "$bao" secrets enable "$engine" >/dev/null
      fi
    done
    "$bao" secrets tune -max-lease-ttl=87600h pki >/dev/null
    printf 'export VAULT_ADDR=%s\nexport VAULT_TOKEN=%s\n' "$addr" "$token" >"$state/env"
    print_env
    ;;
  env)
    running || { echo "openbao is not running" >&2; exit 1; }
    print_env
    ;;
  status)
    if running; then
      echo "running (pid $(cat "$state/pid")): $(grep VAULT_ADDR "$state/env" | cut -d= -f2)"
    else
      echo "stopped"
      exit 1
    fi
    ;;
  stop)
    if running; then
      pid="$(cat "$state/pid")"
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$state/pid" "$state/env"
    ;;
  *)
    echo "usage: $0 start|env|status|stop" >&2
    exit 2
    ;;
esac
