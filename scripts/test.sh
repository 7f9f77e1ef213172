#!/usr/bin/env bash
# Installs everything the test suite needs (oracles and real TLS peers), then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
for tool in tshark:tshark tcpdump:tcpdump openssl:openssl nginx:nginx curl:curl gnutls-cli:gnutls-bin; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test,notebooks]'
python3 -m pytest -q "$@"
