// Package metrics exposes goipsec's state to Prometheus (github.com/prometheus/client_golang). The
// collector reads the daemon's status snapshot at scrape time, so the packet path keeps its own
// counters and pays nothing for metrics; only the handshake latency histogram is fed by events.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/dataplane"
)

// Source is what the collector reads: the daemon.
type Source interface {
	Status() daemon.Status
	FailureCounts() map[string]uint64
}

// Collector is a prometheus.Collector over a Source, plus the handshake histogram.
type Collector struct {
	src       Source
	handshake prometheus.Histogram

	connConfigured, connUp, ikeSAs, childSAs *prometheus.Desc
	childBytes, childPackets, childDrops     *prometheus.Desc
	manualBytes, manualPackets               *prometheus.Desc
	drops, failures, rekeys, retransmits     *prometheus.Desc
	handshakesOK, handshakesFailed, invalid  *prometheus.Desc
	cookies, certExpiry                      *prometheus.Desc
}

// New returns a collector reading src.
func New(src Source) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("goipsec_"+name, help, labels, nil)
	}
	return &Collector{
		src: src,
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "goipsec_ike_handshake_seconds",
			Help:    "Time from the first IKE_SA_INIT message to an authenticated IKE SA.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
		connConfigured:   d("connections_configured", "IKE connections in the configuration."),
		connUp:           d("connections_up", "Connections with an established IKE SA."),
		ikeSAs:           d("ike_sas", "IKE SAs by state.", "state"),
		childSAs:         d("child_sas", "Installed Child SAs (pairs of ESP SAs), IKE-negotiated or manual.", "kind"),
		childBytes:       d("child_sa_bytes_total", "Inner bytes carried by a Child SA.", "conn", "child", "direction", "spi"),
		childPackets:     d("child_sa_packets_total", "Packets carried by a Child SA.", "conn", "child", "direction", "spi"),
		childDrops:       d("child_sa_drops_total", "Inbound packets of a Child SA dropped, by reason.", "conn", "child", "spi", "reason"),
		manualBytes:      d("manual_sa_bytes_total", "Inner bytes carried by a manually keyed SA.", "name", "direction"),
		manualPackets:    d("manual_sa_packets_total", "Packets carried by a manually keyed SA.", "name", "direction"),
		drops:            d("dataplane_drops_total", "Packets dropped by the data plane outside any SA, by reason.", "reason"),
		failures:         d("negotiation_failures_total", "Failed IKE negotiations by reason.", "reason"),
		rekeys:           d("rekeys_total", "Completed rekeys of IKE and Child SAs."),
		retransmits:      d("ike_retransmissions_total", "IKE requests retransmitted."),
		handshakesOK:     d("ike_handshakes_total", "IKE SAs established."),
		handshakesFailed: d("ike_handshakes_failed_total", "IKE SAs that failed before they were established."),
		invalid:          d("ike_invalid_messages_total", "IKE messages dropped as invalid or unauthenticated."),
		cookies:          d("ike_cookies_sent_total", "COOKIE challenges sent (RFC 7296 §2.6)."),
		certExpiry:       d("certificate_expiry_days", "Days until a certificate expires (negative: expired): loaded ones and those peers authenticated with.", "subject", "serial", "kind"),
	}
}

// ObserveHandshake records the duration of a completed IKE handshake.
func (c *Collector) ObserveHandshake(d time.Duration) { c.handshake.Observe(d.Seconds()) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.handshake.Describe(ch)
	for _, d := range []*prometheus.Desc{c.connConfigured, c.connUp, c.ikeSAs, c.childSAs, c.childBytes, c.childPackets, c.childDrops,
		c.manualBytes, c.manualPackets, c.drops, c.failures, c.rekeys, c.retransmits, c.handshakesOK, c.handshakesFailed, c.invalid, c.cookies, c.certExpiry} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.handshake.Collect(ch)
	st := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	up := 0
	states := map[string]int{}
	children := 0
	for _, conn := range st.Connections {
		if conn.State == "up" {
			up++
		}
		for _, sa := range conn.IKESAs {
			states[sa.State]++
			for _, child := range sa.Children {
				children++
				spiIn, spiOut := fmt.Sprintf("%08x", child.SPIIn), fmt.Sprintf("%08x", child.SPIOut)
				counter(c.childBytes, child.BytesIn, conn.Name, child.Name, "in", spiIn)
				counter(c.childBytes, child.BytesOut, conn.Name, child.Name, "out", spiOut)
				counter(c.childPackets, child.PacketsIn, conn.Name, child.Name, "in", spiIn)
				counter(c.childPackets, child.PacketsOut, conn.Name, child.Name, "out", spiOut)
				for reason, n := range child.DropReasons {
					counter(c.childDrops, n, conn.Name, child.Name, spiIn, reason)
				}
			}
		}
	}
	gauge(c.connConfigured, float64(len(st.Connections)))
	gauge(c.connUp, float64(up))
	for _, s := range []string{"INIT_SENT", "INIT_DONE", "AUTH_SENT", "ESTABLISHED", "DELETING"} {
		gauge(c.ikeSAs, float64(states[s]), s)
	}
	gauge(c.childSAs, float64(children), "ike")
	gauge(c.childSAs, float64(len(st.Manual)), "manual")
	for _, m := range st.Manual {
		counter(c.manualBytes, m.BytesIn, m.Name, "in")
		counter(c.manualBytes, m.BytesOut, m.Name, "out")
		counter(c.manualPackets, m.PacketsIn, m.Name, "in")
		counter(c.manualPackets, m.PacketsOut, m.Name, "out")
	}
	for _, r := range dataplane.DropReasons() {
		counter(c.drops, st.DataPlane.Drops[r], r.String())
	}
	for reason, n := range c.src.FailureCounts() {
		counter(c.failures, n, reason)
	}
	counter(c.rekeys, st.IKE.Rekeys)
	counter(c.retransmits, st.IKE.Retransmits)
	counter(c.handshakesOK, st.IKE.HandshakesOK)
	counter(c.handshakesFailed, st.IKE.HandshakesFailed)
	counter(c.invalid, st.IKE.InvalidMessages)
	counter(c.cookies, st.IKE.CookiesSent)
	for _, cert := range st.Certificates {
		gauge(c.certExpiry, cert.DaysLeft, cert.Subject, cert.Serial, cert.Kind)
	}
}

// Serve exposes the collector (and Go runtime metrics) on addr at /metrics until ctx ends.
func Serve(ctx context.Context, addr string, c *Collector) (net.Addr, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr(), nil
}
