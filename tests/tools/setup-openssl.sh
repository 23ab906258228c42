#!/usr/bin/env bash
# The gateway double (tests/gateway-double) checks every CMS with the openssl
# command (OpenSSL 3: `cms -certsout`), independent of our own CMS code.
# Idempotent: installs the Debian package only when the command is missing.
set -euo pipefail
if openssl version 2>/dev/null | grep -q '^OpenSSL 3'; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
openssl version | grep -q '^OpenSSL 3' || { echo "OpenSSL 3 command needed" >&2; exit 1; }
