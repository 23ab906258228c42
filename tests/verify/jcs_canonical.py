#!/usr/bin/env python3
"""Print the RFC 8785 canonical form of a JSON file (Trail of Bits' rfc8785), for
differential testing of our JCS implementation.

usage: jcs_canonical.py FILE
"""
import json
import sys

import rfc8785

with open(sys.argv[1], encoding="utf-8") as f:
    sys.stdout.buffer.write(rfc8785.dumps(json.load(f)))
