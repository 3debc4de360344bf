#!/usr/bin/env bash
# The kernel lab by hand: Debian 12's own kernel in QEMU (TCG) with a Debian 12 root holding the
# IPsec peers. Images are built once into /var/cache/goipsec-lab (GOIPSEC_LAB_CACHE to move it).
#
#   scripts/lab.sh build [strongswan|libreswan]   build (or find) an image
#   scripts/lab.sh run IMAGE 'CMD'                boot, run CMD in the guest, print its output
#   scripts/lab.sh shell IMAGE                    boot and run each line typed in the guest
#   scripts/lab.sh bench                          kernel vs userspace data plane throughput (emulated)
#   scripts/lab.sh test                           the lab's test suite (go test ./test/kernel)
#
# The repository is shared with the guest at /mnt/host (so ./goipsec is /mnt/host/goipsec there).
# Must run as root (mmdebstrap, tap devices, namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/deps.sh test
cmd=${1:-}
shift || true
case "$cmd" in
build | run | shell)
  CGO_ENABLED=0 go build -trimpath -o goipsec ./cmd/goipsec
  exec go run ./internal/labvm/labctl "$cmd" "$@"
  ;;
bench)
  CGO_ENABLED=0 go build -trimpath -o goipsec ./cmd/goipsec
  exec go run ./internal/labvm/labctl bench strongswan "${1:-2}"
  ;;
test)
  GOIPSEC_INTEGRATION=require exec go test -count=1 -v -timeout 20m ./test/kernel "$@"
  ;;
*)
  sed -n '2,12p' "$0" >&2
  exit 2
  ;;
esac
