package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// benchScript runs in the guest: two network namespaces joined by a veth pair, then one iperf3
// TCP measurement each over the plain veth, through goipsec with the kernel data plane and through
// goipsec with its userspace data plane (manually keyed AES-256-GCM tunnels, so that no IKE time is
// counted). It prints "RESULT name bits_per_second" lines.
const benchScript = `set -e
secs=${SECS:-8}
ip netns add a; ip netns add b
ip link add va type veth peer name vb
ip link set va netns a; ip link set vb netns b
ip -n a addr add 192.0.2.10/24 dev va; ip -n b addr add 192.0.2.20/24 dev vb
for n in a b; do ip -n $n link set lo up; done
ip -n a link set va up; ip -n b link set vb up
ip -n a addr add 198.51.100.1/32 dev lo; ip -n b addr add 203.0.113.1/32 dev lo
ip netns exec b iperf3 -s -D -1 >/dev/null 2>&1 || true
conf() { # dataplane local remote lts rts outspi inspi tun
cat <<EOC
daemon {
  dataplane = $1
  tun_name = $8
  vici_socket = /tmp/$8.sock
}
manual {
  m {
    local_addrs = $2
    remote_addrs = $3
    local_ts = $4
    remote_ts = $5
    proposal = aes256gcm16
    outbound { spi = $6
      enc_key = 0x` + "`printf '%072d' 1`" + ` }
    inbound { spi = $7
      enc_key = 0x` + "`printf '%072d' 1`" + ` }
  }
}
EOC
}
measure() { # name src dst
  sleep 1
  ip netns exec b sh -c 'pkill -x iperf3; iperf3 -s -D -1 >/dev/null 2>&1'
  sleep 0.5
  bps=$(ip netns exec a iperf3 -c $3 -B $2 -t $secs -J | sed -n 's/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | tail -n1)
  echo "RESULT $1 $bps"
}
measure veth 192.0.2.10 192.0.2.20
for dp in kernel userspace; do
  conf $dp 192.0.2.10 192.0.2.20 198.51.100.1/32 203.0.113.1/32 0x1001 0x2002 gta > /tmp/a.conf
  conf $dp 192.0.2.20 192.0.2.10 203.0.113.1/32 198.51.100.1/32 0x2002 0x1001 gtb > /tmp/b.conf
  ip netns exec a /mnt/host/goipsec run -c /tmp/a.conf > /tmp/a.log 2>&1 &
  pa=$!
  ip netns exec b /mnt/host/goipsec run -c /tmp/b.conf > /tmp/b.log 2>&1 &
  pb=$!
  sleep 2
  ip netns exec a ping -c1 -W3 -I 198.51.100.1 203.0.113.1 >/dev/null || { cat /tmp/a.log /tmp/b.log; exit 1; }
  measure goipsec-$dp 198.51.100.1 203.0.113.1
  kill $pa $pb; wait $pa $pb || true
done
`

// bench boots the lab VM and measures the kernel and userspace data planes side by side.
func bench(ctx context.Context, img *labvm.Image, share string, cpus int) error {
	bootStart := time.Now()
	vm, err := labvm.Boot(ctx, labvm.Options{Image: img, Share: share, Modules: labvm.DefaultModules, CPUs: cpus, MemoryMB: 1024})
	if err != nil {
		return err
	}
	defer vm.Close()
	fmt.Printf("VM boot (TCG, %d vCPU): %v\n", cpus, time.Since(bootStart).Round(time.Millisecond))
	secs := os.Getenv("SECS")
	if secs == "" {
		secs = "8"
	}
	res, err := vm.RunStdin(ctx, 10*time.Minute, "SECS="+secs+" sh -s", []byte(benchScript))
	if err != nil || res.Exit != 0 {
		return fmt.Errorf("bench in the guest: %v (exit %d)\n%s%s", err, res.Exit, res.Stdout, res.Stderr)
	}
	results := map[string]float64{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "RESULT" {
			v, _ := strconv.ParseFloat(f[2], 64)
			results[f[1]] = v
			order = append(order, f[1])
		}
	}
	fmt.Printf("TCP throughput inside the VM, one iperf3 stream, %s s each (EMULATED: QEMU TCG on a shared 2-core host; compare ratios only)\n", secs)
	for _, name := range order {
		ratio := ""
		if k := results["goipsec-kernel"]; k > 0 && name != "goipsec-kernel" {
			ratio = fmt.Sprintf("  (%.2f x kernel)", results[name]/k)
		}
		fmt.Printf("  %-18s %8.1f Mbit/s%s\n", name, results[name]/1e6, ratio)
	}
	return nil
}
