#!/usr/bin/env bash
# Installs what goipsec's tests and tools need on Debian 12, only when missing.
# Usage: scripts/deps.sh [test|demo|bench]   (default: test)
set -euo pipefail
what=${1:-test}

need_pkgs=()
# want PACKAGE...: install each package that dpkg does not know as installed. Packages are named
# explicitly (and installed without recommends), so nothing depends on what a machine happens to have.
want() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
  done
}

want iproute2 nftables
case "$what" in
test)
  want tshark tcpdump iperf3 iputils-ping procps conntrack
  # strongSwan 5.9.8 as the reference peer: charon, swanctl, kernel-libipsec (libcharon-extra-plugins),
  # the openssl plugin (libstrongswan-standard-plugins: X25519/ECP/MODP, AES-GCM, SHA-2) and
  # curve25519/chapoly (libstrongswan-extra-plugins).
  want strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins
  # strongSwan 6.0.1 (RFC 9242/9370) runs from a Debian 13 root that the tests build with mmdebstrap
  # and cache in /var/cache/goipsec-strongswan6 (internal/testnet/strongswan.Trixie).
  want mmdebstrap
  # strongSwan's pki tool makes certificates for the certificate interop tests.
  want strongswan-pki
  # Remote access: strongSwan's EAP-MSCHAPv2 (libcharon-extauth-plugins; EAP-MD5, -TLS, -TTLS,
  # -identity and -dynamic are in libcharon-extra-plugins) and FreeRADIUS 3.2 with radclient.
  want libcharon-extauth-plugins freeradius freeradius-utils
  # l2tpns (a userspace L2TP server) is the independent peer of goipsec's L2TP client.
  want l2tpns
  # man(1) renders the generated manual pages in a test (cmd/goipsec TestManPagesRender).
  want man-db groff-base
  # buildah builds packaging/Containerfile (FROM scratch) in scripts/image-test.sh.
  want buildah
  # The kernel lab (internal/labvm, test/kernel): QEMU runs Debian's kernel (TCG), mmdebstrap builds
  # its root trees, mkfs.ext4 (e2fsprogs) turns them into images.
  want qemu-system-x86 mmdebstrap e2fsprogs
  ;;
bench)
  want iperf3 wireguard-tools procps util-linux iputils-ping python3
  if [ "${PROFILE:-0}" = 1 ]; then want linux-perf; fi
  ;;
demo) ;;
esac

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "deps: installing ${need_pkgs[*]}" >&2
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Go: use the one on PATH or /usr/local/go; otherwise fetch the toolchain from the Go module proxy.
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "deps: add /usr/local/go/bin to PATH" >&2
  else
    ver=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$(dirname "$0")/../go.mod")
    echo "deps: installing Go $ver from proxy.golang.org" >&2
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    command -v curl >/dev/null && command -v unzip >/dev/null || \
      { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends curl unzip ca-certificates >/dev/null; }
    tmp=$(mktemp -d)
    curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${ver}.linux-amd64.zip"
    (cd "$tmp" && unzip -q go.zip)
    $SUDO rm -rf /usr/local/go && $SUDO mv "$tmp/golang.org/toolchain@v0.0.1-go${ver}.linux-amd64" /usr/local/go
    chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
  fi
fi
