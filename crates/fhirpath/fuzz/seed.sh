#!/usr/bin/env bash
# Seeds the fuzz corpora with every expression of the oracle corpus.
set -euo pipefail
cd "$(dirname "$0")"
for t in parse parse_eval; do
  mkdir -p "corpus/$t"
  python3 - "$t" <<'PY'
import json, hashlib, os, sys
for e in json.load(open("../tests/corpus/expressions.json")):
    x = e["expression"]
    open(os.path.join("corpus", sys.argv[1], hashlib.sha1(x.encode()).hexdigest()[:16]), "w").write(x)
PY
done
echo "seeded corpus/parse and corpus/parse_eval"
