#!/usr/bin/env bash
# Measures whether the data plane's tables scale: TCP throughput (iperf3, one stream) through one
# AES-256-GCM ESP-in-UDP tunnel between two userspace engines, alternately with only that tunnel
# installed and with SCALE_HELD more Child SAs installed in both engines (an inbound and an
# outbound SA and a policy with its route each, as the IKE daemon installs a road warrior's
# Child SA), and the engines' CPU time per byte; then the table lookups and the heap per Child SA
# pair without devices. Needs root. Usage:
#   scripts/bench-scale.sh                                   # 100,000 held, 3 rounds of 5 s
#   SCALE_HELD=10000 SCALE_ROUNDS=5 SCALE_SECONDS=8 scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/deps.sh bench
[ "$(id -u)" -eq 0 ] || { echo "bench-scale: needs root (namespaces, TUN)" >&2; exit 1; }
export SCALE_HELD=${SCALE_HELD:-100000} SCALE_ROUNDS=${SCALE_ROUNDS:-3} SCALE_SECONDS=${SCALE_SECONDS:-5}
echo "tunnel throughput with 1 and with $SCALE_HELD more Child SA pairs ($SCALE_ROUNDS rounds of $SCALE_SECONDS s) ..."
go test -count=1 -run '^$' -bench 'TunnelScale' -benchtime 1x ./dataplane/userspace | grep -E 'round|median|^ok|FAIL'
echo
echo "table lookups and install/delete cost (no devices) ..."
go test -count=1 -run '^$' -bench 'Lookup|Install' -benchtime 2s ./dataplane/userspace | grep -E '^Benchmark|^ok|FAIL'
