#!/usr/bin/env python3
"""Validate EU DCC payload JSON against the vendored EU DCC 1.3.0 JSON schema.

usage: validate_dcc.py --schema tests/data/eu-dcc-schema/DCC.combined-schema.json payload.json...
"""
import argparse
import json
import sys

import jsonschema


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", required=True)
    ap.add_argument("payloads", nargs="+")
    args = ap.parse_args()
    with open(args.schema) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    bad = 0
    for path in args.payloads:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
        for e in errors:
            print(f"FAIL {path}: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
        bad += bool(errors)
    print(f"{len(args.payloads) - bad} valid, {bad} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
