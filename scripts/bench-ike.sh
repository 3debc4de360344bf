#!/usr/bin/env bash
# Measures IKEv2 handshakes per second in one run: `goipsec bench ike` (IKE_SA_INIT + IKE_AUTH with
# PSK, X25519, AES-256-GCM, one Child SA, then an INFORMATIONAL Delete of the IKE SA) against
#   1. a goipsec responder (`goipsec run -c`), floating to NAT-T like charon does (encap = yes),
#   2. the same goipsec responder staying on port 500 (encap = no),
#   3. strongSwan's charon 5.9.8 with kernel-libipsec (which always floats to NAT-T),
# each in the same responder namespace, one after the other, ROUNDS times, with the generator and
# the responder pinned to one CPU each and then sharing both; prints the medians, the ratio to
# strongSwan and the CPU time each side spent per handshake. Needs root. Settings and why: docs/performance.md, "IKE handshakes per
# second". Usage:
#   scripts/bench-ike.sh                          # 20000 handshakes per measurement, 3 rounds
#   COUNT=5000 ROUNDS=1 CONCURRENCY=64 scripts/bench-ike.sh
#   PLACEMENTS=pinned scripts/bench-ike.sh        # only generator on CPU 0, responder on CPU 1
#   MODE=held scripts/bench-ike.sh               # responders that keep every SA: handshakes/s while
#                                                 # holding LEVELS tunnels, and RSS per tunnel
#   MODE=held PPROF_DIR=/tmp/p MEASURE=30000 scripts/bench-ike.sh
#                                                 # plus goipsec's CPU profile during each measurement
#                                                 # (PPROF_SECONDS, 8) and heap profile after it;
#                                                 # RESP_GODEBUG=gctrace=1 adds the collector's trace
#                                                 # to the responder log kept there;
#                                                 # RESP_ENV="GOGC=50" sets more of its environment
#   MODE=held HELD_PLACEMENT=pinned scripts/bench-ike.sh  # generator on CPU 0, responder on CPU 1
#   MODE=held HELD_RUNS=5 RESPONDERS=goipsec LEVELS="0 100000" MEASURE=50000 scripts/bench-ike.sh
#                                                 # five fresh goipsec responders, median ratios
#   AUTHS="ecdsa ed25519" scripts/bench-ike.sh    # certificate authentication (ECDSA P-256 or
#                                                 # Ed25519 certificates from one CA, both ways)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" -eq 0 ] || { echo "bench-ike: needs root (namespaces, TUN)" >&2; exit 1; }
scripts/deps.sh test >/dev/null

COUNT=${COUNT:-20000}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-32}
WARMUP=${WARMUP:-500}
THREADS=${THREADS:-16} # charon.threads; 16 is charon's default
# pinned: generator on CPU 0, responder on CPU 1; shared: both on both CPUs.
PLACEMENTS=${PLACEMENTS:-pinned shared}
# The generator runs on one P in both placements: it sustains about 4,500 handshakes/s so, and with
# two Ps on two shared CPUs its threads cost more CPU per handshake through cross-CPU wakeups.
GEN_PROCS=${GEN_PROCS:-1}
# psk, or certificate authentication both ways with ecdsa (P-256) or ed25519 keys.
AUTHS=${AUTHS:-psk}
PSK=goipsec-bench-psk-not-secret
C=gbike-c R=gbike-r
CLIENT=192.0.2.1 RESP=192.0.2.2
tmp=$(mktemp -d /tmp/gbike.XXXXXX) # short: charon's VICI socket path must fit in sun_path
resp_pid=

cleanup() {
  stop_responder
  ip netns del $C 2>/dev/null || true
  ip netns del $R 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

client_cpu=() resp_cpu=()

echo "building goipsec ..."
go build -o "$tmp/goipsec" ./cmd/goipsec

ip netns del $C 2>/dev/null || true; ip netns del $R 2>/dev/null || true
ip netns add $C; ip netns add $R
ip -n $C link set lo up; ip -n $R link set lo up
ip link add veth0 netns $C type veth peer name veth0 netns $R
ip -n $C addr add $CLIENT/24 dev veth0; ip -n $R addr add $RESP/24 dev veth0
ip -n $C link set veth0 up; ip -n $R link set veth0 up
# The responder's inner prefix sits on lo: kernel-libipsec installs a CHILD_SA only when a local
# address lies inside local_ts (and routes for remote_ts only then).
ip -n $R addr add 10.2.0.1/24 dev lo

stop_responder() {
  if [ -n "$resp_pid" ]; then
    kill "$resp_pid" 2>/dev/null || true
    # A responder that does not stop within 10 s is killed: the next one needs its ports.
    for _ in $(seq 100); do kill -0 "$resp_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$resp_pid" 2>/dev/null || true
    wait "$resp_pid" 2>/dev/null || true
    [ -n "${PPROF_DIR:-}" ] && [ -s "$tmp/goipsec.log" ] && cp "$tmp/goipsec.log" "$PPROF_DIR/goipsec-$resp_pid.log"
    resp_pid=
  fi
}

# make_certs AUTH: a CA, the responder's certificate (identity $RESP) and the generator's, made by
# goipsec pki into $tmp/certs-AUTH.
make_certs() {
  local c=$tmp/certs-$1 g=$tmp/goipsec
  [ -d "$c" ] && return 0
  mkdir -p "$c"
  local kt=ecdsa; [ "$1" = ed25519 ] && kt=ed25519
  $g pki key --type ecdsa --out "$c/ca.key"
  $g pki ca --key "$c/ca.key" --dn "O=bench, CN=bench CA" --out "$c/ca.pem"
  for who in server client; do
    $g pki key --type $kt --out "$c/$who.key"
  done
  $g pki issue --cacert "$c/ca.pem" --cakey "$c/ca.key" --key "$c/server.key" --san $RESP --out "$c/server.pem"
  $g pki issue --cacert "$c/ca.pem" --cakey "$c/ca.key" --key "$c/client.key" --san client.bench --flag clientAuth --out "$c/client.pem"
}

# auth_sections AUTH: the local and remote sections of a responder connection.
auth_sections() {
  if [ "$1" = psk ]; then
    printf '        local {\n            auth = psk\n            id = %s\n        }\n        remote {\n            auth = psk\n            id = %%any\n        }\n' $RESP
  else
    printf '        local {\n            auth = pubkey\n            certs = server.pem\n            id = %s\n        }\n        remote {\n            auth = pubkey\n            id = %%any\n        }\n' $RESP
  fi
}

# creds_into DIR AUTH: the responder's credentials in swanctl's folders under DIR.
creds_into() {
  [ "$2" = psk ] && return 0
  local c=$tmp/certs-$2
  mkdir -p "$1/x509ca" "$1/x509" "$1/private"
  cp "$c/ca.pem" "$1/x509ca/"; cp "$c/server.pem" "$1/x509/"; cp "$c/server.key" "$1/private/"
}

# --- goipsec responder: the same swanctl.conf syntax goipsec always reads ---
start_goipsec() { # start_goipsec ENCAP(yes|no) AUTH
  local gd=$tmp/g-$2
  rm -rf "$gd"; mkdir -p "$gd"; creds_into "$gd" "$2"
  cat > "$gd/goipsec.conf" <<CONF
connections {
    bench {
        local_addrs = $RESP
        remote_addrs = %any
        proposals = aes256gcm16-prfsha256-x25519
        encap = $1
$(auth_sections "$2")
        children {
            net {
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = aes256gcm16
            }
        }
    }
}
secrets {
    ike-bench {
        secret = "$PSK"
    }
}
daemon {
    # Its own control socket: the default /run/goipsec/vici.sock is shared with the host.
    vici_socket = $tmp/goipsec.vici
    log {
        level = warn
    }
}
CONF
  : > "$tmp/goipsec.log"
  local pprof=()
  [ -n "${PPROF_DIR:-}" ] && pprof=(--debug-pprof 127.0.0.1:6060)
  # RESP_GODEBUG (e.g. gctrace=1) goes to the goipsec responder only; its log is kept in PPROF_DIR.
  ip netns exec $R env ${RESP_GODEBUG:+GODEBUG=$RESP_GODEBUG} ${RESP_ENV:-} "${resp_cpu[@]}" "$tmp/goipsec" run -c "$gd/goipsec.conf" "${pprof[@]}" 2>"$tmp/goipsec.log" &
  resp_pid=$!
  for _ in $(seq 100); do
    ip -n $R link show goipsec0 >/dev/null 2>&1 && ip netns exec $R ss -Hulpn 2>/dev/null | grep -q ':500 ' && return 0
    sleep 0.1
  done
  echo "goipsec did not start:" >&2; cat "$tmp/goipsec.log" >&2; return 1
}

# --- charon 5.9.8 responder, run the way internal/testnet/strongswan runs it ---
start_charon() { # start_charon AUTH
  local d=$tmp/sw
  rm -rf "$d"; mkdir -p "$d/run" "$d/swanctl"
  for sub in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$d/swanctl/$sub"
  done
  cat > "$d/strongswan.conf" <<CONF
charon {
    load_modular = yes
    plugins {
        # kernel-libipsec must be registered before kernel-netlink: only the first kernel-ipsec
        # backend is used. openssl does X25519, AES-GCM and HMAC-SHA-256; kdf is needed for prf+
        # in 5.9.8. No curve25519 plugin, so that OpenSSL's X25519 (the faster one) is used.
        kernel-libipsec { load = 3 }
        kernel-netlink { load = 2 }
        random { load = 1 }
        nonce { load = 1 }
        openssl { load = 1 }
        kdf { load = 1 }
        # Certificates and keys in PEM (for AUTHS other than psk).
        pem { load = 1 }
        pkcs1 { load = 1 }
        pkcs8 { load = 1 }
        x509 { load = 1 }
        pubkey { load = 1 }
        constraints { load = 1 }
        socket-default { load = 1 }
        vici {
            load = 1
            socket = unix://$d/charon.vici
        }
    }
    threads = $THREADS
    # DoS protection is tuned for the internet: cookies after 30 half-open SAs (3 per peer IP) and
    # a block after 5 per IP. The load generator is one IP with CONCURRENCY handshakes in flight;
    # these match goipsec's engine (cookies above 100 half-open SAs, no per-IP limit).
    cookie_threshold = 100
    cookie_threshold_ip = 100
    block_threshold = 100000
    init_limit_half_open = 0
    init_limit_job_load = 0
    # The IKE SA table defaults to one bucket and one lock segment.
    ikesa_table_size = 1024
    ikesa_table_segments = 16
    filelog {
        log {
            path = $d/charon.log
            default = -1
            append = no
        }
    }
    syslog {
    }
}
swanctl {
    socket = unix://$d/charon.vici
}
CONF
  cat > "$d/swanctl/swanctl.conf" <<CONF
connections {
    bench {
        local_addrs = $RESP
        remote_addrs = %any
        proposals = aes256gcm16-prfsha256-x25519
        # The generator sends INITIAL_CONTACT under one identity: with the default unique = no,
        # charon would delete every other IKE SA of that identity at each new one.
        unique = never
        mobike = no
$(auth_sections "$1")
        children {
            net {
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = aes256gcm16
            }
        }
    }
}
secrets {
    ike-bench {
        secret = "$PSK"
    }
}
CONF
  creds_into "$d/swanctl" "$1"
  ip netns exec $R env STRONGSWAN_CONF="$d/strongswan.conf" "${resp_cpu[@]}" \
    sh -c 'mount --bind "$1" /run && exec "$2"' sh "$d/run" /usr/lib/ipsec/charon >"$tmp/charon.out" 2>&1 &
  resp_pid=$!
  for _ in $(seq 100); do
    kill -0 "$resp_pid" 2>/dev/null || { echo "charon did not start:" >&2; cat "$tmp/charon.out" >&2; return 1; }
    STRONGSWAN_CONF="$d/strongswan.conf" timeout 5 swanctl --stats >/dev/null 2>&1 && break
    sleep 0.1
  done
  STRONGSWAN_CONF="$d/strongswan.conf" timeout 20 swanctl --load-all --file "$d/swanctl/swanctl.conf" >/dev/null
}

# bench runs the load generator once and keeps its JSON in $tmp/last.json. DELETE=no keeps the SAs
# at the responder (as gateways do); FILL_TIMEOUT bounds a run (a responder that slows down as it
# holds more SAs may not reach a level).
DELETE=${DELETE:-yes}
bench() { # bench COUNT AUTH
  local certs=()
  if [ "$2" != psk ]; then
    certs=(--cert "$tmp/certs-$2/client.pem" --key "$tmp/certs-$2/client.key" --cacert "$tmp/certs-$2/ca.pem")
  fi
  # The timeout only guards against a responder that stops answering altogether.
  local del=--delete
  [ "$DELETE" = no ] && del=--delete=false
  GOMAXPROCS=$GEN_PROCS timeout "${FILL_TIMEOUT:-600}" ip netns exec $C "${client_cpu[@]}" "$tmp/goipsec" bench ike --peer $RESP --psk "$PSK" "${certs[@]}" \
    --count "$1" --concurrency "$CONCURRENCY" --local-ts 10.1.0.0/24 --remote-ts 10.2.0.0/24 \
    $del --json > "$tmp/last.json"
}

field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p" "$tmp/last.json" | head -1; }

# cpu_ticks is the user + system CPU time of a process and all its threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# measure runs a warm-up, then the measurement, and records the rate, failures, retransmissions,
# latencies and the CPU time per handshake of the responder and of the generator under KEY.
declare -A rate failed retr p50 p99 rcpu gcpu
measure() { # measure KEY AUTH
  bench "$WARMUP" "$2"
  local t0 t1 r
  t0=$(cpu_ticks "$resp_pid")
  bench "$COUNT" "$2"
  t1=$(cpu_ticks "$resp_pid")
  r=$(field handshakes_per_second)
  rate[$1]+="$r "
  failed[$1]+="$(field failed) "
  retr[$1]+="$(field retransmits) "
  p50[$1]+="$(field p50) "
  p99[$1]+="$(field p99) "
  local rc
  rc=$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="$COUNT" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')
  rcpu[$1]+="$rc "
  gcpu[$1]+="$(field generator_cpu_us_per_handshake) "
  printf '  %-22s %8.1f handshakes/s  failed %s  retransmits %s  p50 %5.1f ms  p99 %5.1f ms  CPU/handshake: responder %s µs, generator %.0f µs\n' \
    "$1" "$r" "$(field failed)" "$(field retransmits)" "$(field p50)" "$(field p99)" "$rc" "$(field generator_cpu_us_per_handshake)"
  if [ "$(field failed)" != 0 ]; then
    sed -n '/"failures"/,/}/p' "$tmp/last.json" >&2
  fi
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) printf "%.1f\n", a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# held_run KEY: with a fresh responder running, brings it to each of LEVELS held tunnels and
# measures MEASURE handshakes there (which it keeps as well), and the RSS per tunnel held.
declare -A hrate hrss hcores hcpu
held_run() {
  local key=$1 held=0 base r
  sleep 1
  base=$(rss_kb "$resp_pid")
  for level in $LEVELS; do
    if [ "$level" -gt "$held" ]; then
      if ! bench $((level - held)) psk || [ "$(field completed)" != $((level - held)) ]; then
        echo "  $key: did not reach $level held tunnels within ${FILL_TIMEOUT}s (at about $((held + $(field completed 2>/dev/null || echo 0))))"
        break
      fi
      held=$level
    fi
    local prof=
    if [ -n "${PPROF_DIR:-}" ] && [ "$key" = goipsec ]; then
      # A CPU profile of the responder across the measurement (make MEASURE last ~10 s).
      ip netns exec $R curl -s -o "$PPROF_DIR/cpu-$level.pprof" "http://127.0.0.1:6060/debug/pprof/profile?seconds=${PPROF_SECONDS:-8}" &
      prof=$!
    fi
    local c0 w0 cores
    c0=$(cpu_ticks "$resp_pid") w0=$(date +%s.%N)
    bench "$MEASURE" psk || { echo "  $key: the measurement at $held held failed"; break; }
    # Cores the responder kept busy during the measurement: CPU time over wall time.
    cores=$(awk -v c="$(( $(cpu_ticks "$resp_pid") - c0 ))" -v hz="$HZ" -v w0="$w0" -v w1="$(date +%s.%N)" 'BEGIN {printf "%.2f", c / hz / (w1 - w0)}')
    hcores[$key/$level]=$cores
    r=$(field handshakes_per_second)
    # Responder CPU per handshake: what holding tunnels costs, independent of how much of the
    # machine other work took during the measurement (the rate is not).
    hcpu[$key/$level]=$(awk -v c="$cores" -v r="$r" 'BEGIN {if (r > 0) printf "%.3f", c / r * 1000; else print "n/a"}')
    if [ -n "$prof" ]; then
      wait "$prof" || true
      ip netns exec $R curl -s -o "$PPROF_DIR/heap-$level.pprof" "http://127.0.0.1:6060/debug/pprof/heap"
    fi
    r=$(field handshakes_per_second)
    held=$((held + $(field completed)))
    local rss per
    rss=$(rss_kb "$resp_pid")
    per=$(awk -v r="$rss" -v b="$base" -v n="$held" 'BEGIN {printf "%.1f", (r - b) / n * 1024 / 1000}')
    hrate[$key/$level]=$r
    hrss[$key/$level]=$per
    printf '  %-12s %7d held  %8.1f handshakes/s  failed %s  RSS %7d kB  %s kB/tunnel  responder busy %s cores, %s ms CPU/handshake\n' "$key" "$held" "$r" "$(field failed)" "$rss" "$per" "$cores" "${hcpu[$key/$level]}"
  done
  # Settled: what a gateway holds once the handshakes are over (goipsec drops each IKE SA's
  # cached IKE_AUTH response when no retransmission can come any more, ~3 minutes on).
  if [ "${SETTLE:-0}" -gt 0 ] && [ "$held" -gt 0 ]; then
    sleep "$SETTLE"
    rss=$(rss_kb "$resp_pid")
    per=$(awk -v r="$rss" -v b="$base" -v n="$held" 'BEGIN {printf "%.1f", (r - b) / n * 1024 / 1000}')
    hrss[$key/settled]=$per
    printf '  %-12s %7d held, %ss later: RSS %7d kB  %s kB/tunnel\n' "$key" "$held" "$SETTLE" "$rss" "$per"
  fi
}

if [ "${MODE:-}" = held ]; then
  LEVELS=${LEVELS:-0 10000 50000 100000}
  MEASURE=${MEASURE:-2000}
  FILL_TIMEOUT=${FILL_TIMEOUT:-600}
  SETTLE=${SETTLE:-200}
  DELETE=no
  CONCURRENCY=${CONCURRENCY:-64}
  echo "start: $(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  # HELD_PLACEMENT=pinned: generator on CPU 0, responder on CPU 1, so that what the responder does
  # with CPU time it finds idle (the collector's idle-priority mark workers) cannot take the
  # generator's; shared (default): both on both CPUs.
  HELD_PLACEMENT=${HELD_PLACEMENT:-shared}
  client_cpu=() resp_cpu=()
  where="responder and generator share both CPUs"
  if [ "$HELD_PLACEMENT" = pinned ]; then
    client_cpu=(taskset -c 0) resp_cpu=(taskset -c 1)
    where="generator pinned to CPU 0, responder to CPU 1"
  fi
  echo "held mode: LEVELS=\"$LEVELS\" MEASURE=$MEASURE CONCURRENCY=$CONCURRENCY, $where, $(nproc) CPUs"
  WARMUP_HELD=${WARMUP_HELD:-500}
  # RESPONDERS="goipsec" skips strongSwan (profiling runs).
  # HELD_RUNS=N repeats goipsec's measurement with a fresh responder N times and reports the
  # median of the per-run ratios: on a shared 2-CPU machine one run's ratio scatters by ±25%.
  HELD_RUNS=${HELD_RUNS:-1}
  rate_ratios= cpu_ratios=
  first=${LEVELS%% *} last=${LEVELS##* }
  if [[ " ${RESPONDERS:-goipsec strongswan} " = *" goipsec "* ]]; then
    for run in $(seq "$HELD_RUNS"); do
      [ "$HELD_RUNS" -gt 1 ] && echo "goipsec run $run/$HELD_RUNS"
      for level in $LEVELS; do unset "hrate[goipsec/$level]" "hcpu[goipsec/$level]"; done
      start_goipsec yes psk; bench "$WARMUP_HELD" psk; held_run goipsec; stop_responder
      g0=${hrate[goipsec/$first]:-} glast=${hrate[goipsec/$last]:-} c0=${hcpu[goipsec/$first]:-} clast=${hcpu[goipsec/$last]:-}
      [ -n "$g0" ] && [ -n "$glast" ] && rate_ratios+="$(awk -v a="$glast" -v b="$g0" 'BEGIN {printf "%.0f", a/b*100}') "
      [ -n "$c0" ] && [ -n "$clast" ] && cpu_ratios+="$(awk -v a="$clast" -v b="$c0" 'BEGIN {printf "%.0f", a/b*100}') "
    done
  fi
  if [[ " ${RESPONDERS:-goipsec strongswan} " = *" strongswan "* ]]; then
    start_charon psk; bench "$WARMUP_HELD" psk; held_run strongswan; stop_responder
  fi
  echo
  printf '%-10s %22s %22s %10s %24s %16s %22s\n' "held" "goipsec handshakes/s" "strongSwan handshakes/s" "ratio" "kB/tunnel goipsec / sw" "cores goipsec / sw" "CPU ms/hs goipsec / sw"
  for level in $LEVELS; do
    g=${hrate[goipsec/$level]:-n/a} s=${hrate[strongswan/$level]:-n/a}
    ratio=n/a; [ "$g" != n/a ] && [ "$s" != n/a ] && ratio=$(awk -v a="$g" -v b="$s" 'BEGIN {printf "%.2fx", a/b}')
    printf '%-10s %22s %22s %10s %24s %16s %22s\n' "$level" "$g" "$s" "$ratio" "${hrss[goipsec/$level]:-n/a} / ${hrss[strongswan/$level]:-n/a}" \
      "${hcores[goipsec/$level]:-n/a} / ${hcores[strongswan/$level]:-n/a}" "${hcpu[goipsec/$level]:-n/a} / ${hcpu[strongswan/$level]:-n/a}"
  done
  echo "RSS per tunnel ${SETTLE}s after the last level: goipsec ${hrss[goipsec/settled]:-n/a} kB, strongSwan ${hrss[strongswan/settled]:-n/a} kB"
  g0=${hrate[goipsec/${LEVELS%% *}]:-}; glast=${hrate[goipsec/${LEVELS##* }]:-}
  [ -n "$g0" ] && [ -n "$glast" ] && echo "goipsec: rate with ${LEVELS##* } held is $(awk -v a="$glast" -v b="$g0" 'BEGIN {printf "%.0f%%", a/b*100}') of the rate with ${LEVELS%% *}"
  c0=${hcpu[goipsec/${LEVELS%% *}]:-}; clast=${hcpu[goipsec/${LEVELS##* }]:-}
  [ -n "$c0" ] && [ -n "$clast" ] && echo "goipsec: CPU per handshake with ${LEVELS##* } held is $(awk -v a="$clast" -v b="$c0" 'BEGIN {printf "%.0f%%", a/b*100}') of that with ${LEVELS%% *} (the rate it allows: $(awk -v a="$clast" -v b="$c0" 'BEGIN {printf "%.0f%%", b/a*100}'))"
  if [ "$HELD_RUNS" -gt 1 ] && [ -n "$rate_ratios" ]; then
    echo "goipsec over $HELD_RUNS runs (the table shows the last): rate with $last held in % of the rate with $first: $rate_ratios-> median $(echo "$rate_ratios" | median)%"
    echo "goipsec over $HELD_RUNS runs: CPU per handshake with $last held in % of that with $first: $cpu_ratios-> median $(echo "$cpu_ratios" | median)%"
  fi
  echo "end: $(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

# Other work on the machine shows in the figures; the load average says how much there was.
echo "start: $(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "COUNT=$COUNT CONCURRENCY=$CONCURRENCY ROUNDS=$ROUNDS THREADS=$THREADS GEN_PROCS=$GEN_PROCS PLACEMENTS=\"$PLACEMENTS\" AUTHS=\"$AUTHS\", $(nproc) CPUs"
for auth in $AUTHS; do [ "$auth" = psk ] || make_certs "$auth"; done
for round in $(seq "$ROUNDS"); do
  for placement in $PLACEMENTS; do
    client_cpu=() resp_cpu=()
    if [ "$placement" = pinned ]; then
      client_cpu=(taskset -c 0) resp_cpu=(taskset -c 1)
    fi
    for auth in $AUTHS; do
      echo "round $round/$ROUNDS, $placement, auth $auth"
      start_goipsec yes "$auth"; measure "$placement/$auth/goipsec_natt" "$auth"; stop_responder
      start_goipsec no "$auth"; measure "$placement/$auth/goipsec_500" "$auth"; stop_responder
      start_charon "$auth"; measure "$placement/$auth/strongswan" "$auth"; stop_responder
    done
  done
done

for placement in $PLACEMENTS; do
 for auth in $AUTHS; do
  case $placement in
    pinned) echo; echo "pinned, auth $auth: generator on CPU 0, responder on CPU 1 (median of $ROUNDS)";;
    shared) echo; echo "shared, auth $auth: generator and responder on both CPUs (median of $ROUNDS)";;
  esac
  sw=$(echo "${rate[$placement/$auth/strongswan]}" | median)
  printf '%-46s %12s %7s %7s %7s %9s %9s   %s\n' "responder" "handshakes/s" "vs sw" "p50 ms" "p99 ms" "resp µs" "gen µs" "all rounds"
  for k in goipsec_natt goipsec_500 strongswan; do
    key=$placement/$auth/$k
    m=$(echo "${rate[$key]}" | median)
    case $k in
      goipsec_natt) label="goipsec run, encap = yes (NAT-T, like charon)";;
      goipsec_500) label="goipsec run, encap = no (port 500)";;
      strongswan) label="strongSwan 5.9.8 charon, kernel-libipsec";;
    esac
    printf '%-46s %12s %7s %7s %7s %9s %9s   %s\n' "$label" "$m" "$(awk -v a="$m" -v b="$sw" 'BEGIN {printf "%.2fx", a/b}')" \
      "$(echo "${p50[$key]}" | median)" "$(echo "${p99[$key]}" | median)" \
      "$(echo "${rcpu[$key]}" | median)" "$(echo "${gcpu[$key]}" | median)" "${rate[$key]}"
  done
 done
done
total_failed=$(echo "${failed[*]}" | tr ' ' '\n' | awk '{s+=$1} END {print s+0}')
total_retr=$(echo "${retr[*]}" | tr ' ' '\n' | awk '{s+=$1} END {print s+0}')
echo
echo "end: $(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "failed handshakes in all measurements: $total_failed, retransmissions: $total_retr"
echo "resp µs / gen µs: CPU time (user + system, all threads) per handshake of the responder process and of the generator"
