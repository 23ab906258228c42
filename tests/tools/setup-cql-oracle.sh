#!/usr/bin/env bash
# Installs the CQL reference tools into tests/.tools/cql-oracle: the CQL-to-ELM
# translator (npm @cqframework/cql, the Kotlin/JS build of the cqframework translator)
# for tools/gen-cql-libraries.py, and the reference engine (cql-execution +
# cql-exec-fhir) that crates/cql's oracle test compares against. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="$ROOT/tests/.tools/cql-oracle"
PKGS=("@cqframework/cql@5.3.0" "cql-execution@3.3.2" "cql-exec-fhir@2.2.0")
mkdir -p "$DIR"
have() { # <package dir> <version>
  [ -f "$DIR/node_modules/$1/package.json" ] && grep -q "\"version\": \"$2\"" "$DIR/node_modules/$1/package.json"
}
if have "@cqframework/cql" 5.3.0 && have cql-execution 3.3.2 && have cql-exec-fhir 2.2.0; then
  echo "CQL tools already installed in $DIR"
  exit 0
fi
cd "$DIR"
[ -f package.json ] || echo '{"name":"cql-oracle","private":true}' > package.json
npm install --no-audit --no-fund --save-exact "${PKGS[@]}"
echo "CQL tools installed in $DIR"
