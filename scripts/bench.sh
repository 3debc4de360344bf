#!/usr/bin/env bash
# The data plane benchmark (issue 14's "Measure"), in one run between two network namespaces joined
# by a veth:
#
#   tunnels   wireguard-go (ChaCha20-Poly1305 in UDP); goipsec keyed by IKEv2 (two `goipsec run`
#             with a PSK connection, configured through goipsec.conf like any deployment): AES-256-GCM
#             ESP in UDP, ChaCha20-Poly1305 ESP in UDP, AES-256-GCM raw ESP (IP protocol 50) sent
#             through the AF_PACKET TX ring and, for comparison, through the raw socket alone
#             (daemon.raw_esp_ring = no), or with the ring and received through AF_XDP
#             (daemon.raw_esp_xdp = yes; KIND rawxdp, not in the default KINDS); and the plain veth
#             without a tunnel
#   figures   iperf3 TCP throughput with 1 stream, 4 streams, and 1 stream each way at once
#             (--bidir); ping round-trip time idle and under load (during the 1-stream transfer); CPU
#             time of both tunnel daemons per byte carried (user + system, from /proc); the whole
#             machine's idle CPU during the 1-stream transfer (is the tunnel CPU-bound?)
#   CPUs      every tunnel daemon pinned (taskset) to CPUSETS in turn, "0-1" and "0" by default: Go
#             sizes GOMAXPROCS, and goipsec its pipelines, from the CPUs it may use
#
# Each figure is the median of ROUNDS rounds; the tunnels take turns within a round so that load
# from elsewhere on the machine hits all of them alike. Ratios are to wireguard-go in the same run.
# PROFILE=1 adds a `perf record` of both daemons during one transfer (PROFILE_KIND: gcm by default,
# or chacha, raw, wg) and prints where the time goes; PERF_DATA=FILE keeps the recording.
# Needs root. Usage:
#   scripts/bench.sh                                 # 10 s per measurement, 3 rounds
#   SECONDS_PER_RUN=5 ROUNDS=1 CPUSETS=0-1 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/deps.sh bench
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (namespaces, TUN)" >&2; exit 1; }

T=${SECONDS_PER_RUN:-10}
ROUNDS=${ROUNDS:-3}
CPUSETS=${CPUSETS:-"0-1 0"}
KINDS=${KINDS:-"wg gcm chacha raw rawsock"}
PROFILE=${PROFILE:-0}
PROFILE_KIND=${PROFILE_KIND:-gcm}
if [ "$(nproc)" -lt 2 ]; then CPUSETS=0; fi
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
CLK_TCK=$(getconf CLK_TCK)

# --- tunnels: start_tunnel KIND CPUS sets SRC, DST and TPIDS (the two daemons) ---
SRC= DST= TPIDS=()

start_wireguard() { # CPUS
  umask 077
  wg genkey > "$tmp/a.key"; wg pubkey < "$tmp/a.key" > "$tmp/a.pub"
  wg genkey > "$tmp/b.key"; wg pubkey < "$tmp/b.key" > "$tmp/b.pub"
  for side in a b; do
    local ns=$A peer=b self=10.9.0.1 ep=192.0.2.2
    [ $side = b ] && { ns=$B; peer=a; self=10.9.0.2; ep=192.0.2.1; }
    # Distinct names: wireguard-go's control sockets (/var/run/wireguard/NAME.sock) are shared
    # between namespaces.
    local ifc=wg$side
    rm -f /var/run/wireguard/$ifc.sock
    WG_PROCESS_FOREGROUND=1 ip netns exec $ns taskset -c "$1" "$tmp/wireguard-go" -f $ifc >/dev/null 2>&1 &
    TPIDS+=($!)
    for _ in $(seq 50); do [ -S /var/run/wireguard/$ifc.sock ] && break; sleep 0.1; done
    ip netns exec $ns wg set $ifc private-key "$tmp/$side.key" listen-port 51820 \
      peer "$(cat "$tmp/$peer.pub")" allowed-ips 10.9.0.0/24 endpoint "$ep:51820"
    ip -n $ns addr add $self/24 dev $ifc
    ip -n $ns link set $ifc mtu 1420 up
  done
  SRC=10.9.0.1 DST=10.9.0.2
}

# goipsec keyed by IKEv2: A initiates, B answers; the same configuration file a deployment uses.
# B starts first, so that A's first IKE_SA_INIT finds it configured.
start_goipsec() { # CPUS ESP_PROPOSAL ENCAP(yes|no) [RAW_ESP_RING(yes|no) [RAW_ESP_XDP(yes|no)]]
  for side in b a; do
    local l=192.0.2.1 r=192.0.2.2 lts=10.1.0.0/24 rts=10.2.0.0/24 start=start ns=$A
    [ $side = b ] && { l=192.0.2.2; r=192.0.2.1; lts=10.2.0.0/24; rts=10.1.0.0/24; start=none; ns=$B; }
    cat > "$tmp/$side.conf" <<CONF
connections {
    bench {
        local_addrs = $l
        remote_addrs = $r
        proposals = aes256gcm16-prfsha256-x25519
        encap = $3
        local { auth = psk
                id = $l }
        remote { auth = psk
                 id = $r }
        children {
            net {
                local_ts = $lts
                remote_ts = $rts
                esp_proposals = $2
                start_action = $start
            }
        }
    }
}
secrets {
    ike-bench { secret = "benchmark pre-shared key, not secret" }
}
daemon {
    vici_socket = $tmp/$side.sock
    state_dir = $tmp/$side-state
    raw_esp_ring = ${4:-yes}
    raw_esp_xdp = ${5:-no}
    log { level = warn }
}
CONF
    rm -f "$tmp/$side.sock"
    ip netns exec $ns taskset -c "$1" "$tmp/goipsec" run -c "$tmp/$side.conf" &
    TPIDS+=($!)
    for _ in $(seq 100); do [ -S "$tmp/$side.sock" ] && break; sleep 0.05; done
  done
  SRC=10.1.0.1 DST=10.2.0.1
}

start_tunnel() { # KIND CPUS
  TPIDS=()
  case $1 in
    wg) start_wireguard "$2";;
    gcm) start_goipsec "$2" aes256gcm16 yes;;
    chacha) start_goipsec "$2" chacha20poly1305 yes;;
    raw) start_goipsec "$2" aes256gcm16 no;;
    rawsock) start_goipsec "$2" aes256gcm16 no no;;
    rawxdp) start_goipsec "$2" aes256gcm16 no yes yes;;
    plain) SRC=192.0.2.1 DST=192.0.2.2;;
  esac
  pids+=("${TPIDS[@]}")
  for _ in $(seq 100); do
    ip netns exec $A ping -c 1 -W 1 -I $SRC $DST >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: the $1 tunnel did not come up" >&2
  return 1
}

stop_tunnel() {
  [ ${#TPIDS[@]} -gt 0 ] || return 0
  kill "${TPIDS[@]}" 2>/dev/null || true
  wait "${TPIDS[@]}" 2>/dev/null || true
  for ns in $A $B; do
    for _ in $(seq 50); do
      ip -n $ns link show goipsec0 >/dev/null 2>&1 || ip -n $ns link show wga >/dev/null 2>&1 ||
        ip -n $ns link show wgb >/dev/null 2>&1 || break
      sleep 0.1
    done
  done
  TPIDS=()
}

# cpu_ticks: user + system clock ticks of the tunnel daemons so far.
cpu_ticks() {
  local sum=0 p f
  for p in "${TPIDS[@]:-}"; do
    [ -n "$p" ] && [ -r /proc/$p/stat ] || continue
    f=$(sed 's/^.*) //' /proc/$p/stat)
    sum=$((sum + $(echo "$f" | awk '{print $12 + $13}')))
  done
  echo $sum
}

# idle_ticks: idle clock ticks of all CPUs so far (/proc/stat: idle and iowait).
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }

# iperf ARGS...: iperf3 TCP from A (SRC) to B (DST) for T seconds; prints the received Gbit/s (for
# --bidir the sum of both directions) and the bytes received.
iperf() {
  ip netns exec $B iperf3 -s -1 -B $DST >/dev/null 2>&1 &
  local srv=$! out
  sleep 0.3
  out=$(ip netns exec $A iperf3 -c $DST -B $SRC -t "$T" -J "$@" 2>&1) || { echo "$out" >&2; kill $srv 2>/dev/null; return 1; }
  wait $srv 2>/dev/null || true
  echo "$out" | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]
bps, n = e["sum_received"]["bits_per_second"], e["sum_received"]["bytes"]
r = e.get("sum_received_bidir_reverse")
if r:
    bps, n = bps + r["bits_per_second"], n + r["bytes"]
print("%.3f %d" % (bps / 1e9, n))'
}

# rtt_median: the median of the round-trip times (ms) in ping's output on stdin. The median, not
# the mean: on a shared machine a few pings wait for a CPU for milliseconds and would dominate a mean.
rtt_median() {
  sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' | median
}

# rtt COUNT INTERVAL: the median ping round-trip time in ms through the tunnel.
rtt() {
  ip netns exec $A ping -c "$1" -i "$2" -I $SRC $DST | rtt_median
}

median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit; if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
declare -A R
add() { R[$1]+="$2 "; }

measure_kind() { # KIND CPUS
  local k=$1 c=$2
  start_tunnel "$k" "$c"
  sleep 0.5
  if [ "$c" = "${CPUSETS%% *}" ]; then
    add "$k/rtt_idle" "$(rtt 50 0.02)"
  fi
  # 1 stream, with ping under load alongside and the daemons' CPU time around it.
  local t0 res
  t0=$(cpu_ticks)
  local idle0; idle0=$(idle_ticks)
  ip netns exec $A ping -c $((T * 5 - 5)) -i 0.2 -I $SRC $DST > "$tmp/ping" 2>&1 &
  local pp=$!
  res=$(iperf)
  wait $pp 2>/dev/null || true
  add "$k/$c/1" "${res% *}"
  add "$k/$c/idle" "$(awk -v i="$(( $(idle_ticks) - idle0 ))" -v hz=$CLK_TCK -v t="$T" -v n="$(nproc)" 'BEGIN {printf "%.0f", 100 * i / hz / (t * n)}')"
  if [ "$k" != plain ]; then
    awk -v t="$(( $(cpu_ticks) - t0 ))" -v hz=$CLK_TCK -v n="${res#* }" 'BEGIN {printf "%.3f", t / hz / (n / 1e9)}' > "$tmp/cpu"
    add "$k/$c/cpu" "$(cat "$tmp/cpu")"
  fi
  if [ "$k" = rawxdp ]; then
    # The receiver's mean AF_XDP batch (frames per ring read) so far: nearly all of it the
    # 1-stream transfer.
    add "$k/$c/xdpbatch" "$("$tmp/goipsec" --socket "$tmp/b.sock" status --json | python3 -c '
import json, sys
x = json.load(sys.stdin)["dataplane"].get("xdp") or {}
print("%.1f" % (x.get("received_packets", 0) / max(x.get("batches", 0), 1)))')"
  fi
  if [ "$c" = "${CPUSETS%% *}" ]; then
    add "$k/rtt_load" "$(rtt_median < "$tmp/ping")"
    res=$(iperf -P 4); add "$k/$c/4" "${res% *}"
    res=$(iperf --bidir); add "$k/$c/bidir" "${res% *}"
  fi
  stop_tunnel
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS ($T s per measurement) ..."
  for c in $CPUSETS; do
    for k in $KINDS; do
      measure_kind "$k" "$c"
    done
  done
  measure_kind plain "${CPUSETS%% *}"
done


med() { echo "${R[$1]:-}" | median; }
label() {
  case $1 in
    wg) echo "wireguard-go ChaCha20-Poly1305";;
    gcm) echo "goipsec AES-256-GCM ESP in UDP";;
    chacha) echo "goipsec ChaCha20-Poly1305 ESP/UDP";;
    raw) echo "goipsec AES-256-GCM raw ESP";;
    rawsock) echo "  same, raw socket only (no ring)";;
    rawxdp) echo "  same, received through AF_XDP";;
    plain) echo "plain veth, no tunnel";;
  esac
}
# pairmed A B: the median of the per-round ratios A_i/B_i of two lists of rounds. Each tunnel is
# measured minutes after wireguard-go in the same round, while the rounds of a run span a quarter
# of an hour on a shared host whose speed drifts, so this ratio is the steadier one.
pairmed() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); k = 0
    for (i = 1; i <= n; i++) if (y[i] > 0) r[++k] = x[i] / y[i]
    if (k == 0) { print "-"; exit }
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
    printf "%.2fx", (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2 }'
}
# table TITLE UNIT KEYSUFFIX [plain]: one line per tunnel with the median, its ratio to
# wireguard-go's median, the median of the per-round ratios, and all rounds.
table() {
  local title=$1 unit=$2 suffix=$3 wgm m
  wgm=$(med "wg/$suffix")
  printf '\n%s (median of %s)\n' "$title" "$ROUNDS"
  printf '  %-36s %10s %9s %9s   %s\n' "" "$unit" "vs wg-go" "per round" "rounds"
  for k in $KINDS ${4:-}; do
    m=$(med "$k/$suffix")
    [ -n "$m" ] || continue
    printf '  %-36s %10s %9s %9s   %s\n' "$(label "$k")" "$m" \
      "$(awk -v a="$m" -v b="${wgm:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a/b; else print "-"}')" \
      "$(pairmed "${R[$k/$suffix]}" "${R[wg/$suffix]:-}")" "${R[$k/$suffix]}"
  done
}
first=${CPUSETS%% *}
echo
echo "== goipsec $(git describe --always --dirty 2>/dev/null || echo '?') vs wireguard-go $WIREGUARD_VERSION; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end =="
for c in $CPUSETS; do
  table "TCP, 1 stream, A->B; daemons on CPUs $c" Gbit/s "$c/1" plain
done
table "TCP, 4 streams, A->B; daemons on CPUs $first" Gbit/s "$first/4" plain
table "TCP, 1 stream each way at once (sum); daemons on CPUs $first" Gbit/s "$first/bidir" plain
for c in $CPUSETS; do
  table "CPU time of both daemons per GB carried (1 stream; lower is better); CPUs $c" s/GB "$c/cpu"
done
for c in $CPUSETS; do
  [ -n "${R[rawxdp/$c/xdpbatch]:-}" ] && printf '\nAF_XDP frames per receive ring read, 1 stream, CPUs %s: median %s, rounds %s\n' "$c" "$(med "rawxdp/$c/xdpbatch")" "${R[rawxdp/$c/xdpbatch]}"
done
for c in $CPUSETS; do
  table "CPU idle on the machine (all $(nproc) CPUs) during the 1-stream transfer, %; CPUs $c" "% idle" "$c/idle" plain
done
table "ping RTT through the tunnel, idle: median of 50 (lower is better)" ms rtt_idle plain
table "ping RTT during the 1-stream transfer: median of $((T * 5 - 5)) (lower is better)" ms rtt_load plain

if [ "$PROFILE" = 1 ]; then
  echo
  echo "== where the time goes: perf record of both daemons during one $(label "$PROFILE_KIND") transfer, CPUs ${CPUSETS%% *} =="
  start_tunnel "$PROFILE_KIND" "${CPUSETS%% *}"
  ( sleep 1; perf record -g -p "$(IFS=,; echo "${TPIDS[*]}")" -o "$tmp/perf.data" -- sleep $((T - 2)) >/dev/null 2>&1 ) &
  perfpid=$!
  iperf >/dev/null
  wait $perfpid || true
  stop_tunnel
  if [ -n "${PERF_DATA:-}" ]; then cp "$tmp/perf.data" "$PERF_DATA"; fi
  echo "-- user space (goipsec) and kernel"
  { perf report -i "$tmp/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null || true; } |
    grep -v '^#' | grep -v '^$' | head -12 || true
  echo "-- goipsec's hottest symbols"
  { perf report -i "$tmp/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null || true; } |
    grep -v '^#' | grep -v '^$' | head -25 || true
fi
