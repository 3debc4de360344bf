package userspace

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/esp"
)

// envInt reads a benchmark setting from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// cpuTime is the CPU time (user and system) this process has used: both engines of a test run
// in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// iperfResult is one iperf3 run: the receiver's goodput and the engines' CPU time per byte.
type iperfResult struct {
	gbps      float64
	nsPerByte float64
}

// iperf runs one iperf3 TCP measurement from a (bound to src) to dst in b.
func iperf(tb testing.TB, a, b *side, src, dst netip.Addr, seconds int) iperfResult {
	tb.Helper()
	srv := b.ns.Command("iperf3", "-s", "-1", "-B", dst.String())
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	defer srv.Wait()
	// Collect the garbage of earlier installs now, as a gateway whose SAs come and go over time
	// would have long since; both measurements of a round start alike.
	runtime.GC()
	time.Sleep(300 * time.Millisecond)
	cpu := cpuTime()
	out, err := a.ns.Exec("iperf3", "-c", dst.String(), "-B", src.String(), "-t", strconv.Itoa(seconds), "-J")
	cpu = cpuTime() - cpu
	if err != nil {
		srv.Process.Kill()
		tb.Fatalf("iperf3: %v: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.Bytes == 0 {
		tb.Fatalf("iperf3 output: %v: %s", err, out)
	}
	r := res.End.SumReceived
	return iperfResult{gbps: r.BitsPerSecond / 1e9, nsPerByte: float64(cpu.Nanoseconds()) / r.Bytes}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkTunnelScale measures TCP throughput (iperf3, one stream) through one AES-256-GCM ESP in
// UDP tunnel between two engines, alternately with only that tunnel installed and with
// SCALE_HELD (default 100,000) more Child SAs installed in both engines the way the IKE daemon
// installs them (an inbound and an outbound SA and a policy with its route, to a /32 remote per
// road warrior). Each of SCALE_ROUNDS (default 3) rounds measures SCALE_SECONDS (default 5)
// without, installs the others, measures with them, and deletes them again, so that both figures
// of a round share the machine's conditions. It reports the medians, the ratio loaded/empty, and
// the time to install and delete. Needs root; scripts/bench-scale.sh runs it:
//
//	go test -run '^$' -bench TunnelScale -benchtime 1x ./dataplane/userspace
func BenchmarkTunnelScale(b *testing.B) {
	held, seconds, rounds := envInt("SCALE_HELD", 100000), envInt("SCALE_SECONDS", 5), envInt("SCALE_ROUNDS", 3)
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Fatal("iperf3 is missing: scripts/deps.sh bench installs it")
	}
	sc := scenario{name: "scale", proto: dataplane.ESP, encap: true, enc: esp.EncrAESGCM16, encKeyLen: 36}
	a, z := newPair(b)
	inst := install(b, sc, a, z)
	children := make([]child, held)
	ids := make([][2]dataplane.PolicyID, held)
	for i := range children {
		children[i] = newChild(i)
	}
	for range b.N {
		var empty, loaded, ratios, cpuEmpty, cpuLoaded []float64
		var installTime, deleteTime time.Duration
		for round := range rounds {
			e := iperf(b, a, z, inst.src, inst.dst, seconds)
			start := time.Now()
			for i := range children {
				for j, s := range []*side{a, z} {
					id, err := children[i].install(s.eng)
					if err != nil {
						b.Fatalf("install child %d: %v", i, err)
					}
					ids[i][j] = id
				}
			}
			installTime += time.Since(start)
			l := iperf(b, a, z, inst.src, inst.dst, seconds)
			start = time.Now()
			for i := range children {
				for j, s := range []*side{a, z} {
					if err := children[i].remove(s.eng, ids[i][j]); err != nil {
						b.Fatalf("remove child %d: %v", i, err)
					}
				}
			}
			deleteTime += time.Since(start)
			b.Logf("round %d: %.2f Gbit/s (%.2f ns CPU/byte) with 1 SA pair, %.2f (%.2f ns/byte) with %d more: %.2f×",
				round+1, e.gbps, e.nsPerByte, l.gbps, l.nsPerByte, held, l.gbps/e.gbps)
			empty, loaded, ratios = append(empty, e.gbps), append(loaded, l.gbps), append(ratios, l.gbps/e.gbps)
			cpuEmpty, cpuLoaded = append(cpuEmpty, e.nsPerByte), append(cpuLoaded, l.nsPerByte)
		}
		perInstall := float64(installTime.Microseconds()) / float64(2*max(held, 1)*rounds)
		perDelete := float64(deleteTime.Microseconds()) / float64(2*max(held, 1)*rounds)
		b.Logf("median: %.2f Gbit/s with 1 SA pair, %.2f with %d more; median ratio %.2f×; CPU per byte %.2f and %.2f ns (%.2f×); %.1f µs to install and %.1f µs to delete a pair (per engine)",
			median(empty), median(loaded), held, median(ratios), median(cpuEmpty), median(cpuLoaded),
			median(cpuLoaded)/median(cpuEmpty), perInstall, perDelete)
		b.ReportMetric(median(cpuLoaded)/median(cpuEmpty), "cpu-ratio")
		b.ReportMetric(median(empty), "Gbit/s-1SA")
		b.ReportMetric(median(loaded), "Gbit/s-held")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(perInstall, "µs/install")
	}
}
