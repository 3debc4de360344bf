package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/netlab"
)

// scrape fetches the metrics page from inside a namespace.
func scrape(t *testing.T, ns *netlab.NS, url string) string {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = net.Dial(network, addr)
				return err
			})
			return c, err
		}}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// metricValue sums the samples of a metric whose label set matches labelRe.
func metricValue(t *testing.T, page, name, labelRe string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	lre := regexp.MustCompile(labelRe)
	sum, found := 0.0, false
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		if !lre.MatchString(m[1]) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("metric %s%s not on the page:\n%s", name, labelRe, page)
	}
	return sum
}

// TestMetrics scrapes the Prometheus endpoint of a daemon with a live tunnel and checks that the
// counters follow the traffic.
func TestMetrics(t *testing.T) {
	requireRoot(t)
	var id [3]byte
	copy(id[:], randBytes(3))
	a, err := netlab.NewNS(fmt.Sprintf("gm%xa", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := netlab.NewNS(fmt.Sprintf("gm%xb", id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	if err := netlab.Link(a, "veth0", []string{"192.0.2.1/24"}, b, "veth0", []string{"192.0.2.2/24"}); err != nil {
		t.Fatal(err)
	}
	a.AddAddr("lo", "10.1.0.1/24")
	b.AddAddr("lo", "10.2.0.1/24")
	dir := t.TempDir()
	confA, confB := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	writeFile(t, confA, connConf("gt", "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "start")+
		"daemon {\n  vici_socket = "+filepath.Join(dir, "a.sock")+"\n  metrics_listen = 127.0.0.1:9477\n"+
		"  log {\n    enc = debug\n    dataplane = error\n  }\n}\n")
	writeFile(t, confB, connConf("gt", "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "none")+
		"daemon {\n  vici_socket = "+filepath.Join(dir, "b.sock")+"\n}\n")
	startDaemon(t, b, confB)
	da := startDaemon(t, a, confA)
	da.waitLog(t, "Child SA established", 10*time.Second)
	// Per-subsystem levels: enc at debug shows the payloads of each message, dataplane at error
	// hides its info lines.
	da.waitLog(t, "payloads=\"IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr\"", 5*time.Second)
	if strings.Contains(da.Log(), "subsys=dataplane") {
		t.Fatalf("dataplane info lines despite dataplane = error:\n%s", da.Log())
	}
	url := "http://127.0.0.1:9477/metrics"

	before := scrape(t, a, url)
	if v := metricValue(t, before, "goipsec_connections_up", ""); v != 1 {
		t.Fatalf("connections_up = %v", v)
	}
	// One series per tunnel, none per SPI; build and process information.
	if v := metricValue(t, before, "goipsec_connection_up", `conn="gt"`); v != 1 {
		t.Fatalf("connection_up{conn=gt} = %v", v)
	}
	if strings.Contains(before, "spi=") {
		t.Fatalf("SPI labels on the page:\n%s", before)
	}
	metricValue(t, before, "goipsec_build_info", `version=`)
	if v := metricValue(t, before, "process_resident_memory_bytes", ""); v < 1<<20 {
		t.Fatalf("process_resident_memory_bytes = %v", v)
	}
	// The Go collector: the daemon runs goroutines and has a heap.
	if v := metricValue(t, before, "go_goroutines", ""); v < 2 {
		t.Fatalf("go_goroutines = %v", v)
	}
	if v := metricValue(t, before, "go_memstats_heap_alloc_bytes", ""); v <= 0 {
		t.Fatalf("go_memstats_heap_alloc_bytes = %v", v)
	}
	if v := metricValue(t, before, "goipsec_ike_handshake_seconds_count", ""); v != 1 {
		t.Fatalf("handshake histogram count = %v", v)
	}
	out0 := metricValue(t, before, "goipsec_child_sa_bytes_total", `direction="out"`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := netlab.Echo(ctx, a, netip.MustParseAddr("10.1.0.1"), b, netip.AddrPortFrom(netip.MustParseAddr("10.2.0.1"), 7101), 1<<20); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, a, url)
	out1 := metricValue(t, after, "goipsec_child_sa_bytes_total", `direction="out"`)
	in1 := metricValue(t, after, "goipsec_child_sa_bytes_total", `direction="in"`)
	if out1-out0 < 1<<20 || in1 < 1<<20 {
		t.Fatalf("byte counters did not follow 1 MiB each way: out %v -> %v, in %v", out0, out1, in1)
	}
	if v := metricValue(t, after, "goipsec_dataplane_drops_total", `reason="auth_failed"`); v != 0 {
		t.Fatalf("auth drops %v", v)
	}
}
