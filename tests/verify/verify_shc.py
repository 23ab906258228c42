#!/usr/bin/env python3
"""Independent SMART Health Card verifier (jwcrypto + zlib).

Reads a `shc:/` numeric QR payload (or a compact JWS), verifies it with the issuer
JWKS, checks the header (alg ES256, zip DEF, kid = RFC 7638 thumbprint of the key),
inflates the raw-DEFLATE payload and prints the VC JSON.

usage: verify_shc.py --jwks jwks.json FILE
"""
import argparse
import json
import sys
import zlib

from jwcrypto import jwk, jws


def numeric_to_jws(text: str) -> str:
    if not text.startswith("shc:/"):
        return text
    digits = text[5:]
    if len(digits) % 2:
        raise ValueError("odd number of digits")
    return "".join(chr(int(digits[i:i + 2]) + 45) for i in range(0, len(digits), 2))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jwks", required=True)
    ap.add_argument("file")
    args = ap.parse_args()
    with open(args.jwks) as f:
        keyset = jwk.JWKSet.from_json(f.read())
    with open(args.file) as f:
        compact = numeric_to_jws(f.read().strip())
    token = jws.JWS()
    token.deserialize(compact)
    header = token.jose_header
    if header.get("alg") != "ES256" or header.get("zip") != "DEF":
        print(f"FAIL: bad header {header}", file=sys.stderr)
        return 1
    key = keyset.get_key(header.get("kid"))
    if key is None:
        print(f"FAIL: kid {header.get('kid')} not in JWKS", file=sys.stderr)
        return 1
    if key.thumbprint() != header["kid"]:
        print("FAIL: kid is not the RFC 7638 thumbprint", file=sys.stderr)
        return 1
    try:
        token.verify(key, alg="ES256")
    except Exception as e:
        print(f"FAIL: signature: {e}", file=sys.stderr)
        return 1
    vc = json.loads(zlib.decompress(token.payload, wbits=-15))
    types = vc.get("vc", {}).get("type", [])
    if "https://smarthealth.cards#health-card" not in types:
        print("FAIL: not a health card", file=sys.stderr)
        return 1
    if vc["vc"]["credentialSubject"].get("fhirVersion") != "4.0.1":
        print("FAIL: fhirVersion", file=sys.stderr)
        return 1
    print(json.dumps(vc, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
