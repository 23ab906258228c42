#!/usr/bin/env bash
# Installs HL7's FHIRPath.js (npm `fhirpath`) as the oracle for the FHIRPath corpus
# test. Idempotent: re-running with the pinned version already present does nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="$ROOT/tests/.tools/fhirpath-oracle"
VERSION="4.9.3"
mkdir -p "$DIR"
if [ -f "$DIR/node_modules/fhirpath/package.json" ] && \
   grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/fhirpath/package.json"; then
  echo "fhirpath $VERSION already installed in $DIR"
  exit 0
fi
cd "$DIR"
[ -f package.json ] || echo '{"name":"fhirpath-oracle","private":true}' > package.json
npm install --no-audit --no-fund "fhirpath@$VERSION"
echo "fhirpath $VERSION installed in $DIR"
