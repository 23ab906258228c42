#!/usr/bin/env bash
# The issuing hot path, ours and the reference Node stack's, in one run on the same
# EU DCC payload: sign (CWT + COSE ES256 + zlib + base45) and a level-Q QR PNG.
# usage: bench/run-hot-path.sh [iterations]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n="${1:-500}"
cd "$here/.."
cargo run -q --release -p ddcc-cert --example hot_path -- "$n" "$here/eu-dcc-payload.json"
"$here/run-node-reference.sh" "$n"
