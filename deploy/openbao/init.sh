#!/bin/sh
# One-shot init job for the compose stack's OpenBao (server mode):
#   1. initialise once (1 key share; the keys go to the bao-init volume),
#   2. unseal on every start,
#   3. enable the transit engine and create the DDCC signing key (idempotent),
#   4. write a policy limited to that key and a token for the mediator.
# The key share and root token on a volume are a development convenience:
# in production an operator keeps them and unseals (or uses auto-unseal).
set -eu

: "${BAO_ADDR:=http://openbao:8200}"
: "${DDCC_TRANSIT_MOUNT:=transit}"
: "${DDCC_SIGNING_KEY:=ddcc}"
OUT="${BAO_INIT_DIR:-/bao-init}"
export BAO_ADDR
mkdir -p "$OUT"

echo "waiting for OpenBao at $BAO_ADDR"
i=0
# `bao status` exits 0 (unsealed), 2 (sealed) or 1 (error/unreachable).
while :; do
  set +e
  bao status >/dev/null 2>&1
  rc=$?
  set -e
  [ "$rc" -ne 1 ] && break
  i=$((i + 1))
  [ "$i" -gt 60 ] && { echo "OpenBao did not come up" >&2; exit 1; }
  sleep 2
done

if bao status 2>/dev/null | grep -q 'Initialized *false'; then
  echo "initialising OpenBao"
  bao operator init -key-shares=1 -key-threshold=1 > "$OUT/init.txt"
  chmod 600 "$OUT/init.txt"
fi

UNSEAL_KEY=$(sed -n 's/^Unseal Key 1: //p' "$OUT/init.txt")
ROOT_TOKEN=$(sed -n 's/^Initial Root Token: //p' "$OUT/init.txt")
[ -n "$UNSEAL_KEY" ] && [ -n "$ROOT_TOKEN" ] || { echo "cannot read $OUT/init.txt" >&2; exit 1; }

if bao status 2>/dev/null | grep -q 'Sealed *true'; then
  echo "unsealing"
  bao operator unseal "$UNSEAL_KEY" >/dev/null
fi

export BAO_TOKEN="$ROOT_TOKEN"

# After unsealing, raft elects itself leader before requests are served.
i=0
until bao secrets list >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -gt 60 ] && { echo "OpenBao not active after unseal" >&2; exit 1; }
  sleep 1
done

# Enabling an existing mount answers 400: check first.
if ! bao secrets list | grep -q "^${DDCC_TRANSIT_MOUNT}/"; then
  bao secrets enable -path="$DDCC_TRANSIT_MOUNT" transit
fi
if ! bao read "$DDCC_TRANSIT_MOUNT/keys/$DDCC_SIGNING_KEY" >/dev/null 2>&1; then
  bao write -f "$DDCC_TRANSIT_MOUNT/keys/$DDCC_SIGNING_KEY" type=ecdsa-p256 exportable=false >/dev/null
fi

cat > "$OUT/ddcc-mediator.hcl" <<POLICY
path "$DDCC_TRANSIT_MOUNT/sign/$DDCC_SIGNING_KEY" { capabilities = ["update"] }
path "$DDCC_TRANSIT_MOUNT/sign/$DDCC_SIGNING_KEY/*" { capabilities = ["update"] }
path "$DDCC_TRANSIT_MOUNT/verify/$DDCC_SIGNING_KEY" { capabilities = ["update"] }
path "$DDCC_TRANSIT_MOUNT/keys/$DDCC_SIGNING_KEY" { capabilities = ["read"] }
path "$DDCC_TRANSIT_MOUNT/keys/$DDCC_SIGNING_KEY/csr" { capabilities = ["update"] }
path "$DDCC_TRANSIT_MOUNT/keys/$DDCC_SIGNING_KEY/set-certificate" { capabilities = ["update"] }
POLICY
bao policy write ddcc-mediator "$OUT/ddcc-mediator.hcl" >/dev/null

if [ ! -s "$OUT/mediator-token" ]; then
  bao token create -policy=ddcc-mediator -orphan -period=768h -field=token > "$OUT/mediator-token"
fi
# The mediator runs as uid 10001 and reads the token file.
chmod 644 "$OUT/mediator-token"
echo "OpenBao ready: transit mount '$DDCC_TRANSIT_MOUNT', key '$DDCC_SIGNING_KEY', mediator token written"
