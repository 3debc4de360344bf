#!/usr/bin/env bash
# Measures TCP throughput (iperf3, one stream) between two network namespaces in one run:
#   plain veth, wireguard-go, and goipsec (manually keyed AES-256-GCM ESP in UDP, and raw ESP),
# and prints each figure with its ratio to wireguard-go. Needs root. Usage:
#   scripts/bench.sh            # 10 s per measurement, 3 rounds, medians
#   SECONDS_PER_RUN=5 ROUNDS=1 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/deps.sh bench
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (namespaces, TUN)" >&2; exit 1; }

T=${SECONDS_PER_RUN:-10}
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
A=gbench-a B=gbench-b
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $A 2>/dev/null || true
  ip netns del $B 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

WIREGUARD_VERSION=${WIREGUARD_VERSION:-v0.0.0-20260522210424-ecfc5a8d5446}
echo "building goipsec and wireguard-go $WIREGUARD_VERSION (from the Go module proxy) ..."
go build -o "$tmp/goipsec" ./cmd/goipsec
GOBIN="$tmp" go install "golang.zx2c4.com/wireguard@$WIREGUARD_VERSION"
mv "$tmp/wireguard" "$tmp/wireguard-go"

ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
ip netns add $A; ip netns add $B
ip -n $A link set lo up; ip -n $B link set lo up
ip link add veth0 netns $A type veth peer name veth0 netns $B
ip -n $A addr add 192.0.2.1/24 dev veth0; ip -n $B addr add 192.0.2.2/24 dev veth0
ip -n $A link set veth0 up; ip -n $B link set veth0 up
ip -n $A addr add 10.1.0.1/24 dev lo; ip -n $B addr add 10.2.0.1/24 dev lo

# iperf3 TCP, one stream, A -> B; prints Gbit/s as measured by the receiver.
measure() { # measure SERVER_ADDR CLIENT_BIND
  ip netns exec $B iperf3 -s -1 -B "$1" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.3
  local out
  out=$(ip netns exec $A iperf3 -c "$1" -B "$2" -t "$T" -f g 2>&1) || { echo "$out" >&2; kill $srv 2>/dev/null; return 1; }
  wait $srv 2>/dev/null || true
  echo "$out" | awk '/receiver/ {for (i=1;i<=NF;i++) if ($i ~ /bits\/sec/) print $(i-1)}'
}

# --- wireguard-go ---
start_wireguard() {
  umask 077
  wg genkey > "$tmp/a.key"; wg pubkey < "$tmp/a.key" > "$tmp/a.pub"
  wg genkey > "$tmp/b.key"; wg pubkey < "$tmp/b.key" > "$tmp/b.pub"
  for side in a b; do
    ns=$A; peer=b; self=10.9.0.1; ep=192.0.2.2
    [ $side = b ] && { ns=$B; peer=a; self=10.9.0.2; ep=192.0.2.1; }
    # Distinct names: wireguard-go's control sockets (/var/run/wireguard/NAME.sock) are shared
    # between namespaces.
    local ifc=wg$side
    WG_PROCESS_FOREGROUND=1 ip netns exec $ns "$tmp/wireguard-go" -f $ifc >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S /var/run/wireguard/$ifc.sock ] && break; sleep 0.1; done
    ip netns exec $ns wg set $ifc private-key "$tmp/$side.key" listen-port 51820 \
      peer "$(cat "$tmp/$peer.pub")" allowed-ips 10.9.0.0/24 endpoint "$ep:51820"
    ip -n $ns addr add $self/24 dev $ifc
    ip -n $ns link set $ifc mtu 1420 up
  done
}

# --- goipsec: manual keys, the same configuration format `goipsec run` always reads ---
start_goipsec() { # start_goipsec ENCAP(yes|no)
  local k1 k2
  k1=$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n')
  k2=$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for side in a b; do
    local l=192.0.2.1 r=192.0.2.2 lts=10.1.0.0/24 rts=10.2.0.0/24 o=0x1001 i=0x2001 ko=$k1 ki=$k2 ns=$A
    [ $side = b ] && { l=192.0.2.2; r=192.0.2.1; lts=10.2.0.0/24; rts=10.1.0.0/24; o=0x2001; i=0x1001; ko=$k2; ki=$k1; ns=$B; }
    cat > "$tmp/$side.conf" <<CONF
manual {
    bench {
        local_addrs = $l
        remote_addrs = $r
        encap = $1
        local_ts = $lts
        remote_ts = $rts
        proposal = aes256gcm16
        outbound { spi = $o
                   enc_key = 0x$ko }
        inbound { spi = $i
                  enc_key = 0x$ki }
    }
}
daemon {
    vici_socket = $tmp/$side.sock
    log { level = warn }
}
CONF
    ip netns exec $ns "$tmp/goipsec" run -c "$tmp/$side.conf" &
    pids+=($!)
  done
  for ns in $A $B; do
    for _ in $(seq 50); do ip -n $ns link show goipsec0 >/dev/null 2>&1 && break; sleep 0.1; done
  done
  sleep 0.3
}
stop_goipsec() {
  kill "${pids[@]: -2}" 2>/dev/null || true
  wait "${pids[@]: -2}" 2>/dev/null || true
  pids=("${pids[@]:0:${#pids[@]}-2}")
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

start_wireguard
declare -A results
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS ($T s each) ..."
  results[plain]+="$(measure 192.0.2.2 192.0.2.1) "
  results[wireguard]+="$(measure 10.9.0.2 10.9.0.1) "
  start_goipsec yes
  results[goipsec_udp]+="$(measure 10.2.0.1 10.1.0.1) "
  stop_goipsec
  start_goipsec no
  results[goipsec_raw]+="$(measure 10.2.0.1 10.1.0.1) "
  stop_goipsec
done

wg=$(echo ${results[wireguard]} | tr ' ' '\n' | median)
printf '\n%-44s %10s %14s   %s\n' "path (iperf3 TCP, 1 stream, median of $ROUNDS)" "Gbit/s" "vs wireguard-go" "all rounds"
for k in plain wireguard goipsec_udp goipsec_raw; do
  m=$(echo ${results[$k]} | tr ' ' '\n' | median)
  label=$k
  case $k in
    plain) label="plain veth, no tunnel";;
    wireguard) label="wireguard-go (ChaCha20-Poly1305, UDP)";;
    goipsec_udp) label="goipsec AES-256-GCM ESP in UDP (manual keys)";;
    goipsec_raw) label="goipsec AES-256-GCM raw ESP (manual keys)";;
  esac
  printf '%-44s %10s %14s   %s\n' "$label" "$m" "$(awk -v a="$m" -v b="$wg" 'BEGIN {printf "%.2fx", a/b}')" "${results[$k]}"
done
