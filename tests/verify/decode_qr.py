#!/usr/bin/env python3
"""Decode QR PNGs back to text with zxing-cpp (independent of our encoder).

Prints one JSON object per image: {"file", "text", "ec_level", "version"}.
usage: decode_qr.py IMAGE...
exit status 1 when any image holds no readable QR code.
"""
import json
import sys

import zxingcpp
from PIL import Image


def main() -> int:
    ok = True
    for path in sys.argv[1:]:
        img = Image.open(path).convert("L")
        found = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
        if not found:
            print(f"FAIL {path}: no QR code found", file=sys.stderr)
            ok = False
            continue
        r = found[0]
        print(json.dumps({
            "file": path,
            "text": r.text,
            "ec_level": getattr(r, "ec_level", ""),
            "version": getattr(r, "symbology_identifier", ""),
        }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
