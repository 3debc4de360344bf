#!/usr/bin/env bash
# Re-records the strongSwan 5.9.8 IKEv2 golden data in ike/wire/testdata/strongswan/ (see the README
# there). Needs root, strongSwan, tcpdump: scripts/deps.sh test installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
if [ "$(id -u)" -ne 0 ]; then
  echo "record-strongswan: must run as root (network namespaces, charon)" >&2
  exit 1
fi
GOIPSEC_RECORD=1 go test -count=1 -run '^TestRecordGolden$' -v ./internal/testnet/strongswan/
du -sb ike/wire/testdata/strongswan
