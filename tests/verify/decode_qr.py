#!/usr/bin/env python3
"""Decode QR PNGs back to text with zxing-cpp (independent of our encoder).

Prints one JSON object per image: {"file", "texts": [...], "ec_levels": [...]}
(every QR symbol found in the image, e.g. all codes on a rendered PDF page).
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
        print(json.dumps({
            "file": path,
            "texts": [r.text for r in found],
            "ec_levels": [getattr(r, "ec_level", "") for r in found],
        }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
