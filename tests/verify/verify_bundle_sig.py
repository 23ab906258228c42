#!/usr/bin/env python3
"""Independent check of a DDCC document's Bundle.signature (rfc8785 + cryptography).

The signature is a JWS with detached payload in `Bundle.signature.data` (base64):
`header..signature`, ES256, over the RFC 8785 canonical JSON of the Bundle without
`signature`. Verified with the DSC certificate alone.

usage: verify_bundle_sig.py --cert dsc.pem bundle.json
"""
import argparse
import base64
import hashlib
import json
import sys

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("bundle")
    args = ap.parse_args()
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(args.bundle, encoding="utf-8") as f:
        bundle = json.load(f)
    sig = bundle.pop("signature")
    problems = []
    if sig.get("sigFormat") != "application/jose":
        problems.append("sigFormat")
    codes = [(c.get("system"), c.get("code")) for c in sig.get("type", [])]
    if ("urn:iso-astm:E1762-95:2013", "1.2.840.10065.1.12.1.5") not in codes:
        problems.append("type")
    if not sig.get("who", {}).get("reference"):
        problems.append("who")
    compact = base64.b64decode(sig["data"]).decode()
    head, empty, signature = compact.split(".")
    if empty != "":
        problems.append("payload is not detached")
    header = json.loads(b64url_decode(head))
    der = cert.public_bytes(serialization.Encoding.DER)
    if header.get("alg") != "ES256":
        problems.append("alg")
    if header.get("kid") != base64.b64encode(hashlib.sha256(der).digest()[:8]).decode():
        problems.append("kid")
    if "x5c" in header and base64.b64decode(header["x5c"][0]) != der:
        problems.append("x5c")
    raw = b64url_decode(signature)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    signing_input = f"{head}.{b64url(rfc8785.dumps(bundle))}".encode()
    try:
        cert.public_key().verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except Exception:
        problems.append("signature does not verify")
    if problems:
        print("FAIL: " + ", ".join(problems), file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
