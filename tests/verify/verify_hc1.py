#!/usr/bin/env python3
"""Independent HC1 verifier: base45 + zlib + pycose + cbor2 + cryptography.

Given only the DSC certificate (PEM), decode each HC1 string, check the COSE_Sign1
protected header (alg ES256, kid = first 8 bytes of SHA-256 of the DSC DER), verify
the signature, and print the CWT as JSON: {"iss", "iat", "exp", "payload"}.
Shares no code with the product.

usage: verify_hc1.py --cert dsc.pem FILE...   (each FILE holds one HC1 string)
exit status: 0 when every input verifies, 1 otherwise.
"""
import argparse
import base64
import hashlib
import json
import sys
import zlib

import base45
import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.headers import KID, Algorithm
from pycose.algorithms import Es256
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import CoseMessage, Sign1Message


def to_json(value):
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def verify(hc1: str, cert: x509.Certificate) -> dict:
    if not hc1.startswith("HC1:"):
        raise ValueError("missing HC1: prefix")
    compressed = base45.b45decode(hc1[4:])
    cose = zlib.decompress(compressed) if compressed[:1] == b"\x78" else compressed
    if cbor2.loads(cose).tag != 18:
        raise ValueError("not a tagged COSE_Sign1")
    msg = CoseMessage.decode(cose)
    if not isinstance(msg, Sign1Message):
        raise ValueError("not a COSE_Sign1")
    der = cert.public_bytes(serialization.Encoding.DER)
    want_kid = hashlib.sha256(der).digest()[:8]
    if msg.phdr.get(Algorithm) is not Es256 and msg.phdr.get(Algorithm) != Es256:
        raise ValueError(f"alg is not ES256: {msg.phdr.get(Algorithm)}")
    if msg.phdr.get(KID) != want_kid:
        raise ValueError("protected kid does not match the DSC")
    numbers = cert.public_key().public_numbers()
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        raise ValueError("DSC key is not EC")
    msg.key = EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))
    if not msg.verify_signature():
        raise ValueError("signature does not verify")
    claims = cbor2.loads(msg.payload)
    hcert = claims[-260]
    return {"iss": claims.get(1), "iat": claims.get(6), "exp": claims.get(4), "payload": to_json(hcert[1])}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    ok = True
    out = []
    for path in args.files:
        with open(path) as f:
            hc1 = f.read().strip()
        try:
            out.append(verify(hc1, cert))
        except Exception as e:  # report every input, then fail
            print(f"FAIL {path}: {e}", file=sys.stderr)
            ok = False
    print(json.dumps(out if len(out) != 1 else out[0], ensure_ascii=False, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
