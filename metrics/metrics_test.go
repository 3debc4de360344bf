package metrics

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/goipsec/goipsec/status"
)

type fakeSource struct{ st status.Status }

func (f *fakeSource) Status() status.Status { return f.st }

func snapshot(spiIn string, in, out uint64, state string) status.Status {
	st := status.Status{Connections: []status.Connection{
		{Name: "site", State: state, IKESAs: []status.IKESA{{State: "established", EstablishedAt: time.Unix(1000, 0), LastReceivedAt: time.Unix(2000, 0),
			Children: []status.ChildSA{{Name: "net", SPIIn: spiIn, In: status.Traffic{Bytes: in, Packets: in / 100, DropsByReason: map[string]uint64{"replay": 1}},
				Out: status.Traffic{Bytes: out, Packets: out / 100}}}}}},
		{Name: "office", State: status.StateDown},
	}, DataPlane: status.DataPlane{Drops: map[string]uint64{"no_sa": 4}}, IKE: status.IKECounters{Failures: map[string]uint64{"timeout": 2}}}
	st.Normalize()
	return st
}

// scrape returns the collector's metrics in Prometheus' text format.
func scrape(t *testing.T, c *Collector) string {
	t.Helper()
	// The pedantic registry also checks that every metric matches its description.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// sample reads one sample of the text format.
func sample(t *testing.T, page, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", series, page)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSeriesArePerConnectionNotPerSPI(t *testing.T) {
	src := &fakeSource{st: snapshot("c0000001", 1000, 5000, status.StateUp)}
	c := New(src, BuildInfo{Version: "1.2.3", Revision: "abc"})
	page := scrape(t, c)
	for _, want := range []string{
		`goipsec_child_sa_bytes_total{child="net",conn="site",direction="in"} 1000`,
		`goipsec_child_sa_bytes_total{child="net",conn="site",direction="out"} 5000`,
		`goipsec_child_sa_drops_total{child="net",conn="site",reason="replay"} 1`,
		`goipsec_connection_up{conn="site"} 1`,
		`goipsec_connection_up{conn="office"} 0`,
		`goipsec_connection_state{conn="office",state="down"} 1`,
		`goipsec_connection_state{conn="site",state="up"} 1`,
		`goipsec_connection_last_received_timestamp_seconds{conn="site"} 2000`,
		`goipsec_ike_sas{state="established"} 1`,
		`goipsec_build_info{goversion="go`,
		`revision="abc",version="1.2.3"} 1`,
		`goipsec_dataplane_drops_total{reason="no_sa"} 4`,
		`goipsec_negotiation_failures_total{reason="timeout"} 2`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("scrape lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "spi=") || regexp.MustCompile(`state="[A-Z]`).MatchString(page) {
		t.Errorf("SPI labels or upper-case states:\n%s", page)
	}
}

// TestCountersSurviveRekeys: a rekey replaces the Child SA (new SPI, counters from zero); the
// series goes on from where it was instead of dropping back.
func TestCountersSurviveRekeys(t *testing.T) {
	src := &fakeSource{st: snapshot("c0000001", 1000, 5000, status.StateUp)}
	c := New(src, BuildInfo{})
	value := func() float64 {
		return sample(t, scrape(t, c), `goipsec_child_sa_bytes_total{child="net",conn="site",direction="in"}`)
	}
	if v := value(); v != 1000 {
		t.Fatalf("first scrape %v", v)
	}
	src.st = snapshot("c0000001", 1500, 6000, status.StateUp)
	if v := value(); v != 1500 {
		t.Fatalf("second scrape %v", v)
	}
	// Rekeyed: the old SA is gone, the new one carried 200 bytes so far.
	src.st = snapshot("c0000002", 200, 100, status.StateUp)
	if v := value(); v != 1700 {
		t.Fatalf("after the rekey %v, want 1500+200", v)
	}
	// A moment without any Child SA keeps the total.
	src.st = snapshot("c0000002", 200, 100, status.StateDegraded)
	src.st.Connections[0].IKESAs[0].Children = nil
	if v := value(); v != 1700 {
		t.Fatalf("without a Child SA %v, want 1700", v)
	}
}

// TestL2TPSessions: the L2TP sessions of the status snapshot become one gauge per role.
func TestL2TPSessions(t *testing.T) {
	st := snapshot("c0000001", 1, 1, status.StateUp)
	st.L2TP = []status.L2TPSession{{Role: "lns", User: "a"}, {Role: "lns", User: "b"}, {Role: "lac:office"}}
	page := scrape(t, New(&fakeSource{st: st}, BuildInfo{}))
	for _, want := range []string{`goipsec_l2tp_sessions{role="lns"} 2`, `goipsec_l2tp_sessions{role="lac"} 1`} {
		if !strings.Contains(page, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// TestXDPSeries: the AF_XDP counters of the status snapshot (daemon.raw_esp_xdp) become the
// goipsec_dataplane_xdp_* series, the kernel's drop counters as reasons prefixed kernel_; without
// the AF_XDP path there are none.
func TestXDPSeries(t *testing.T) {
	st := snapshot("c0000001", 1, 1, status.StateUp)
	page := scrape(t, New(&fakeSource{st: st}, BuildInfo{}))
	if strings.Contains(page, "goipsec_dataplane_xdp") {
		t.Fatalf("XDP series without the AF_XDP path:\n%s", page)
	}
	st.DataPlane.XDP = &status.XDP{Interfaces: map[string]string{"eth0": "native"}, Received: 9000, Batches: 300,
		Drops:       map[string]uint64{"malformed": 2, "other_host": 0, "bad_descriptor": 0},
		KernelDrops: map[string]uint64{"dropped": 0, "rx_ring_full": 5, "fill_ring_empty": 1}}
	page = scrape(t, New(&fakeSource{st: st}, BuildInfo{}))
	for series, want := range map[string]float64{
		`goipsec_dataplane_xdp_interface{interface="eth0",mode="native"}`:    1,
		`goipsec_dataplane_xdp_received_packets_total`:                       9000,
		`goipsec_dataplane_xdp_batches_total`:                                300,
		`goipsec_dataplane_xdp_drops_total{reason="malformed"}`:              2,
		`goipsec_dataplane_xdp_drops_total{reason="other_host"}`:             0,
		`goipsec_dataplane_xdp_drops_total{reason="kernel_rx_ring_full"}`:    5,
		`goipsec_dataplane_xdp_drops_total{reason="kernel_fill_ring_empty"}`: 1,
		`goipsec_dataplane_xdp_drops_total{reason="kernel_dropped"}`:         0,
	} {
		if v := sample(t, page, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestTXRingSeries: the AF_PACKET TX ring counters of the status snapshot become the
// goipsec_dataplane_tx_ring* series, the raw socket's share split by reason; without a ring
// there are none.
func TestTXRingSeries(t *testing.T) {
	st := snapshot("c0000001", 1, 1, status.StateUp)
	page := scrape(t, New(&fakeSource{st: st}, BuildInfo{}))
	if strings.Contains(page, "goipsec_dataplane_tx_ring") {
		t.Fatalf("TX ring series without a ring:\n%s", page)
	}
	st.DataPlane.TXRing = &status.TXRing{Rings: 2, Sent: 123456, Sendtos: 4321, Retries: 17, Broken: 1, Recovered: 30, RawSocket: 12}
	page = scrape(t, New(&fakeSource{st: st}, BuildInfo{}))
	for series, want := range map[string]float64{
		`goipsec_dataplane_tx_rings`:                                             2,
		`goipsec_dataplane_tx_ring_sent_packets_total`:                           123456,
		`goipsec_dataplane_tx_ring_sendto_calls_total`:                           4321,
		`goipsec_dataplane_tx_ring_retries_total`:                                17,
		`goipsec_dataplane_tx_ring_broken_total`:                                 1,
		`goipsec_dataplane_tx_ring_raw_socket_packets_total{reason="recovered"}`: 30,
		`goipsec_dataplane_tx_ring_raw_socket_packets_total{reason="not_taken"}`: 12,
	} {
		if v := sample(t, page, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}
