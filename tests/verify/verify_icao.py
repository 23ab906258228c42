#!/usr/bin/env python3
"""Independent ICAO VDS-NC check: RFC 8785 canonical `data`, ES256 `sigvl`, key
from `cer` (which must equal the expected DSC).

usage: verify_icao.py --cert dsc.pem vds.json
"""
import argparse
import base64
import json
import sys

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("vds")
    args = ap.parse_args()
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(args.vds, encoding="utf-8") as f:
        vds = json.load(f)
    sig = vds["sig"]
    if sig.get("alg") != "ES256" or vds["data"]["hdr"].get("t") != "icao.vacc":
        print("FAIL: header", file=sys.stderr)
        return 1
    if b64url_decode(sig["cer"]) != cert.public_bytes(serialization.Encoding.DER):
        print("FAIL: cer is not the DSC", file=sys.stderr)
        return 1
    raw = b64url_decode(sig["sigvl"])
    der_sig = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        cert.public_key().verify(der_sig, rfc8785.dumps(vds["data"]), ec.ECDSA(hashes.SHA256()))
    except Exception:
        print("FAIL: signature does not verify", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
