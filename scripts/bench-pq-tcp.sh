#!/usr/bin/env bash
# Measures, in one run: (1) IKEv2 handshakes with the post-quantum hybrid default (X25519, then
# ML-KEM-768 in IKE_INTERMEDIATE) against classical X25519 alone, `goipsec bench ike` against a
# goipsec responder that accepts both, alternating ROUNDS times; (2) iperf3 TCP throughput through
# a goipsec<->goipsec tunnel with ESP in UDP (encap = yes) against ESP in TCP (encap = tcp, RFC
# 9329), alternating ROUNDS times. Prints the medians and the ratios. Needs root. Figures and
# method: docs/performance.md. Usage:
#   scripts/bench-pq-tcp.sh                  # COUNT=3000 handshakes, 10 s iperf3, 3 rounds
#   COUNT=1000 SECONDS_=5 ROUNDS=1 scripts/bench-pq-tcp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" -eq 0 ] || { echo "bench-pq-tcp: needs root (namespaces, TUN)" >&2; exit 1; }
scripts/deps.sh bench >/dev/null

COUNT=${COUNT:-3000}
CONCURRENCY=${CONCURRENCY:-16}
ROUNDS=${ROUNDS:-3}
SECONDS_=${SECONDS_:-10}
PSK=goipsec-bench-psk-not-secret
L=gbpq-l R=gbpq-r
LEFT=192.0.2.1 RIGHT=192.0.2.2
tmp=$(mktemp -d /tmp/gbpq.XXXXXX)
pids=()

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() { stop_all; ip netns del $L 2>/dev/null || true; ip netns del $R 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

go build -o "$tmp/goipsec" ./cmd/goipsec
ip netns del $L 2>/dev/null || true; ip netns del $R 2>/dev/null || true
ip netns add $L; ip netns add $R
ip -n $L link set lo up; ip -n $R link set lo up
ip link add veth0 netns $L type veth peer name veth0 netns $R
ip -n $L addr add $LEFT/24 dev veth0; ip -n $R addr add $RIGHT/24 dev veth0
ip -n $L link set veth0 up; ip -n $R link set veth0 up
ip -n $L addr add 10.1.0.1/24 dev lo; ip -n $R addr add 10.2.0.1/24 dev lo

# conf NAME LOCAL REMOTE LOCALNET REMOTENET PROPOSALS EXTRA START
conf() {
  cat <<CONF
connections {
    bench {
        local_addrs = $2
        remote_addrs = $3
        proposals = $6
$7
        local { auth = psk
                id = $2 }
        remote { auth = psk
                 id = %any }
        children {
            net {
                local_ts = $4
                remote_ts = $5
                esp_proposals = aes256gcm16
                start_action = $8
            }
        }
    }
}
secrets {
    ike-bench { secret = "$PSK" }
}
daemon {
    vici_socket = $tmp/$1.vici
    tcp_listen = 4500
    log { level = warn }
}
CONF
}

start() { # start NS NAME CONFFILE
  ip netns exec "$1" "$tmp/goipsec" run -c "$3" 2>"$tmp/$2.log" &
  pids+=($!)
  for _ in $(seq 100); do ip -n "$1" link show goipsec0 >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "goipsec $2 did not start:" >&2; cat "$tmp/$2.log" >&2; return 1
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) printf "%.2f\n", a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p" "$tmp/last.json" | head -1; }

echo "start: $(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
echo "== handshakes: COUNT=$COUNT CONCURRENCY=$CONCURRENCY ROUNDS=$ROUNDS"
conf resp $RIGHT %any 10.2.0.0/24 10.1.0.0/24 "aes256gcm16-prfsha256-x25519-ke1_mlkem768, aes256gcm16-prfsha256-x25519" "" none > "$tmp/resp.conf"
start $R resp "$tmp/resp.conf"
declare -A rate p50 p99
for round in $(seq "$ROUNDS"); do
  for kind in x25519 hybrid; do
    prop=aes256gcm16-prfsha256-x25519
    [ $kind = hybrid ] && prop=aes256gcm16-prfsha256-x25519-ke1_mlkem768
    timeout 600 ip netns exec $L "$tmp/goipsec" bench ike --peer $RIGHT --psk "$PSK" --proposal "$prop" --count "$COUNT" \
      --concurrency "$CONCURRENCY" --local-ts 10.1.0.0/24 --remote-ts 10.2.0.0/24 --delete --json > "$tmp/last.json"
    rate[$kind]+="$(field handshakes_per_second) "; p50[$kind]+="$(field p50) "; p99[$kind]+="$(field p99) "
    printf '  round %d %-7s %8.1f handshakes/s  failed %s  p50 %6.2f ms  p99 %6.2f ms\n' "$round" $kind \
      "$(field handshakes_per_second)" "$(field failed)" "$(field p50)" "$(field p99)"
  done
done
stop_all
for kind in x25519 hybrid; do
  printf 'median %-7s %8s handshakes/s  p50 %s ms  p99 %s ms\n' $kind "$(echo "${rate[$kind]}" | median)" "$(echo "${p50[$kind]}" | median)" "$(echo "${p99[$kind]}" | median)"
done
awk -v h="$(echo "${rate[hybrid]}" | median)" -v x="$(echo "${rate[x25519]}" | median)" \
  -v hl="$(echo "${p50[hybrid]}" | median)" -v xl="$(echo "${p50[x25519]}" | median)" \
  'BEGIN {printf "hybrid / x25519: rate %.2f, p50 latency %.2f\n", h / x, hl / xl}'

echo "== tunnel throughput: iperf3 ${SECONDS_}s, ROUNDS=$ROUNDS"
declare -A gbps
ip netns exec $R iperf3 -s -B 10.2.0.1 -D --logfile "$tmp/iperf.log"
for round in $(seq "$ROUNDS"); do
  for encap in yes tcp; do
    conf right $RIGHT $LEFT 10.2.0.0/24 10.1.0.0/24 aes256gcm16-prfsha256-x25519 "        encap = $encap" none > "$tmp/right.conf"
    conf left $LEFT $RIGHT 10.1.0.0/24 10.2.0.0/24 aes256gcm16-prfsha256-x25519 "        encap = $encap
        tcp_port = 4500" start > "$tmp/left.conf"
    start $R right "$tmp/right.conf"
    start $L left "$tmp/left.conf"
    for _ in $(seq 100); do ip netns exec $L ping -c1 -W1 -I 10.1.0.1 10.2.0.1 >/dev/null 2>&1 && break; sleep 0.2; done
    ip netns exec $L iperf3 -c 10.2.0.1 -B 10.1.0.1 -t "$SECONDS_" -J > "$tmp/iperf.json" || { cat "$tmp/iperf.json" "$tmp/left.log" >&2; exit 1; }
    # The receiver's total (end.sum_received).
    g=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$tmp/iperf.json")
    g=$(awk -v b="$g" 'BEGIN {printf "%.2f", b / 1e9}')
    name=udp; [ $encap = tcp ] && name=tcp
    gbps[$name]+="$g "
    printf '  round %d ESP in %s  %6s Gbit/s\n' "$round" "${name^^}" "$g"
    stop_all
  done
done
for name in udp tcp; do printf 'median ESP in %s %s Gbit/s\n' "${name^^}" "$(echo "${gbps[$name]}" | median)"; done
awk -v t="$(echo "${gbps[tcp]}" | median)" -v u="$(echo "${gbps[udp]}" | median)" 'BEGIN {printf "TCP / UDP: %.2f\n", t / u}'
