// Package metrics exposes goipsec's state to Prometheus (github.com/prometheus/client_golang). The
// collector reads the daemon's status snapshot at scrape time, so the packet path keeps its own
// counters and pays nothing for metrics; only the handshake latency histogram is fed by events.
//
// Series are per connection and child, never per SPI: an SPI changes at every rekey and would make
// a new series each time. Traffic counters stay monotonic across rekeys because the collector
// remembers the last value it saw of each SA and carries it over when the SA is gone. Label values
// are lower-case, as Prometheus conventions have them. docs/operations.md lists every metric.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goipsec/goipsec/status"
)

// Source is what the collector reads: the daemon.
type Source interface {
	Status() status.Status
}

// BuildInfo labels goipsec_build_info.
type BuildInfo struct {
	Version, Revision string
}

// Collector is a prometheus.Collector over a Source, plus the handshake histogram.
type Collector struct {
	src       Source
	build     BuildInfo
	handshake prometheus.Histogram

	buildInfo, connConfigured, connsUp, connUp, connState *prometheus.Desc
	connChildSAs, connLastReceived, connEstablished       *prometheus.Desc
	ikeSAs, childSAs                                      *prometheus.Desc
	childBytes, childPackets, childDrops                  *prometheus.Desc
	manualBytes, manualPackets                            *prometheus.Desc
	drops, failures, rekeys, retransmits                  *prometheus.Desc
	ikeDrops, halfOpen                                    *prometheus.Desc
	handshakesOK, handshakesFailed, invalid, cookies      *prometheus.Desc
	certExpiry                                            *prometheus.Desc
	poolSize, poolLeased, poolOffline, users              *prometheus.Desc
	l2tpSessions                                          *prometheus.Desc
	xdpInterface, xdpReceived, xdpBatches, xdpDrops       *prometheus.Desc
	txRings, txRingSent, txRingSendtos, txRingRetries     *prometheus.Desc
	txRingBroken, txRingRawSocket                         *prometheus.Desc

	mu      sync.Mutex
	traffic map[trafficKey]*carried // guarded by mu
}

// trafficKey names one counter series of a child: the sum over its Child SAs, past and present.
type trafficKey struct{ conn, child, dir, kind, reason string }

// carried is a series' total of SAs that no longer exist, plus the last value seen of each live SA
// (by inbound SPI), so that a vanished SA's count moves into the total.
type carried struct {
	gone uint64
	live map[string]uint64
}

// ikeStates are the IKE SA states reported by goipsec_ike_sas, in the status schema's words.
var ikeStates = []string{"init_sent", "init_done", "auth_sent", "established", "deleting"}

// connStates are the connection states reported by goipsec_connection_state.
var connStates = []string{status.StateUp, status.StateDegraded, status.StateConnecting, status.StateDown}

// New returns a collector reading src.
func New(src Source, build BuildInfo) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("goipsec_"+name, help, labels, nil)
	}
	return &Collector{
		src: src, build: build, traffic: map[trafficKey]*carried{},
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "goipsec_ike_handshake_seconds",
			Help:    "Time from the first IKE_SA_INIT message to an authenticated IKE SA.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
		buildInfo:        d("build_info", "Always 1; the labels say which goipsec runs.", "version", "revision", "goversion"),
		connConfigured:   d("connections_configured", "IKE connections in the configuration."),
		connsUp:          d("connections_up", "Connections in state up (IKE SA and every Child SA it should have)."),
		connUp:           d("connection_up", "1 when the connection is up (its tunnels carry traffic as configured), else 0.", "conn"),
		connState:        d("connection_state", "1 for the connection's current state (up, degraded, connecting, down), 0 for the others.", "conn", "state"),
		connChildSAs:     d("connection_child_sas", "Installed Child SAs of the connection.", "conn"),
		connLastReceived: d("connection_last_received_timestamp_seconds", "When the last authenticated IKE message from the peer arrived (Unix time); absent without an IKE SA.", "conn"),
		connEstablished:  d("connection_established_timestamp_seconds", "When the connection's current IKE SA was established (Unix time); absent without one.", "conn"),
		ikeSAs:           d("ike_sas", "IKE SAs by state.", "state"),
		childSAs:         d("child_sas", "Installed Child SAs (pairs of ESP SAs), IKE-negotiated or manual.", "kind"),
		childBytes:       d("child_sa_bytes_total", "Inner bytes carried by a connection's child, summed over its Child SAs across rekeys.", "conn", "child", "direction"),
		childPackets:     d("child_sa_packets_total", "Packets carried by a connection's child, summed over its Child SAs across rekeys.", "conn", "child", "direction"),
		childDrops:       d("child_sa_drops_total", "Inbound packets of a connection's child dropped, by reason, across rekeys.", "conn", "child", "reason"),
		manualBytes:      d("manual_sa_bytes_total", "Inner bytes carried by a manually keyed SA.", "name", "direction"),
		manualPackets:    d("manual_sa_packets_total", "Packets carried by a manually keyed SA.", "name", "direction"),
		drops:            d("dataplane_drops_total", "Packets dropped by the data plane outside any SA, by reason.", "reason"),
		failures:         d("negotiation_failures_total", "Failed IKE negotiations by reason.", "reason"),
		rekeys:           d("rekeys_total", "Completed rekeys of IKE and Child SAs."),
		retransmits:      d("ike_retransmissions_total", "IKE requests retransmitted."),
		handshakesOK:     d("ike_handshakes_total", "IKE SAs established."),
		handshakesFailed: d("ike_handshakes_failed_total", "IKE SAs that failed before they were established."),
		invalid:          d("ike_invalid_messages_total", "IKE messages dropped as invalid or unauthenticated."),
		ikeDrops:         d("ike_drops_total", "IKE messages dropped, by reason.", "reason"),
		halfOpen:         d("ike_half_open_sas", "Responder IKE SAs waiting for IKE_AUTH."),
		cookies:          d("ike_cookies_sent_total", "COOKIE challenges sent (RFC 7296 §2.6)."),
		l2tpSessions:     d("l2tp_sessions", "PPP sessions over L2TP: role lns (clients of goipsec's L2TP server) or lac (goipsec's own client connections).", "role"),
		certExpiry:       d("certificate_expiry_days", "Days until a certificate expires (negative: expired): loaded ones and those peers authenticated with.", "subject", "serial", "kind"),
		poolSize:         d("pool_size", "Addresses in a virtual IP pool.", "pool"),
		poolLeased:       d("pool_leased", "Addresses of a pool held by clients now.", "pool"),
		poolOffline:      d("pool_offline", "Released addresses of a pool still reserved for their last client.", "pool"),
		xdpInterface:     d("dataplane_xdp_interface", "1 for each interface where raw ESP is received through AF_XDP (daemon.raw_esp_xdp), with the XDP mode: native or generic.", "interface", "mode"),
		xdpReceived:      d("dataplane_xdp_received_packets_total", "Raw ESP frames read from the AF_XDP receive rings."),
		xdpBatches:       d("dataplane_xdp_batches_total", "Reads of the AF_XDP receive rings (received packets / batches is the mean batch)."),
		xdpDrops:         d("dataplane_xdp_drops_total", "Raw ESP frames of the AF_XDP path dropped before the SA lookup, by reason; reasons starting with kernel_ are the AF_XDP sockets' own counters.", "reason"),
		txRings:          d("dataplane_tx_rings", "AF_PACKET TX rings raw ESP is sent through (one per pipeline; daemon.raw_esp_ring); the goipsec_dataplane_tx_ring_* series exist only while there are any."),
		txRingSent:       d("dataplane_tx_ring_sent_packets_total", "Raw ESP packets the kernel took from the TX rings."),
		txRingSendtos:    d("dataplane_tx_ring_sendto_calls_total", "sendto calls on the TX rings (sent packets / sendto calls is the mean batch)."),
		txRingRetries:    d("dataplane_tx_ring_retries_total", "sendto calls on the TX rings that found the send buffer or the device queue full (EAGAIN, ENOBUFS) and were retried."),
		txRingBroken:     d("dataplane_tx_ring_broken_total", "Times a TX ring was given up after a sendto failed for good (interface down or gone) or was retried too often; its packets went through the raw socket."),
		txRingRawSocket:  d("dataplane_tx_ring_raw_socket_packets_total", "Raw ESP packets of pipelines with a TX ring sent through the raw socket instead: reason recovered (taken back from a broken ring) or not_taken (no usable link-layer path, larger than the MTU, ring full).", "reason"),
		users:            d("remote_users", "Remote-access clients (EAP or virtual IP) connected, by connection.", "conn"),
	}
}

// ObserveHandshake records the duration of a completed IKE handshake.
func (c *Collector) ObserveHandshake(d time.Duration) { c.handshake.Observe(d.Seconds()) }

func (c *Collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.buildInfo, c.connConfigured, c.connsUp, c.connUp, c.connState, c.connChildSAs, c.connLastReceived,
		c.connEstablished, c.ikeSAs, c.childSAs, c.childBytes, c.childPackets, c.childDrops, c.manualBytes, c.manualPackets, c.drops,
		c.failures, c.rekeys, c.retransmits, c.handshakesOK, c.handshakesFailed, c.invalid, c.ikeDrops, c.halfOpen, c.cookies, c.certExpiry,
		c.poolSize, c.poolLeased, c.poolOffline, c.users, c.l2tpSessions, c.xdpInterface, c.xdpReceived, c.xdpBatches, c.xdpDrops,
		c.txRings, c.txRingSent, c.txRingSendtos, c.txRingRetries, c.txRingBroken, c.txRingRawSocket}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.handshake.Describe(ch)
	for _, d := range c.descs() {
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
	gauge(c.buildInfo, 1, c.build.Version, c.build.Revision, runtime.Version())
	up := 0
	states := map[string]int{}
	children := 0
	seen := map[trafficKey]map[string]uint64{}
	note := func(k trafficKey, spi string, v uint64) {
		if seen[k] == nil {
			seen[k] = map[string]uint64{}
		}
		seen[k][spi] = v
	}
	for _, conn := range st.Connections {
		if conn.State == status.StateUp {
			up++
		}
		gauge(c.connUp, b2f(conn.State == status.StateUp), conn.Name)
		for _, s := range connStates {
			gauge(c.connState, b2f(conn.State == s), conn.Name, s)
		}
		n := 0
		var lastRecv, established time.Time
		for _, sa := range conn.IKESAs {
			states[sa.State]++
			if sa.LastReceivedAt.After(lastRecv) {
				lastRecv = sa.LastReceivedAt
			}
			if sa.State == "established" && sa.EstablishedAt.After(established) {
				established = sa.EstablishedAt
			}
			for _, child := range sa.Children {
				n++
				// Every configured child has series from its first SA on; a child's series are
				// keyed without SPI, each SA's share by its inbound SPI.
				note(trafficKey{conn.Name, child.Name, "in", "bytes", ""}, child.SPIIn, child.In.Bytes)
				note(trafficKey{conn.Name, child.Name, "out", "bytes", ""}, child.SPIIn, child.Out.Bytes)
				note(trafficKey{conn.Name, child.Name, "in", "packets", ""}, child.SPIIn, child.In.Packets)
				note(trafficKey{conn.Name, child.Name, "out", "packets", ""}, child.SPIIn, child.Out.Packets)
				for reason, v := range child.In.DropsByReason {
					note(trafficKey{conn.Name, child.Name, "in", "drops", reason}, child.SPIIn, v)
				}
			}
		}
		children += n
		gauge(c.connChildSAs, float64(n), conn.Name)
		if !lastRecv.IsZero() {
			gauge(c.connLastReceived, float64(lastRecv.UnixMilli())/1000, conn.Name)
		}
		if !established.IsZero() {
			gauge(c.connEstablished, float64(established.UnixMilli())/1000, conn.Name)
		}
	}
	for k, v := range c.carry(seen, st.Connections) {
		switch k.kind {
		case "bytes":
			counter(c.childBytes, v, k.conn, k.child, k.dir)
		case "packets":
			counter(c.childPackets, v, k.conn, k.child, k.dir)
		case "drops":
			counter(c.childDrops, v, k.conn, k.child, k.reason)
		}
	}
	gauge(c.connConfigured, float64(len(st.Connections)))
	gauge(c.connsUp, float64(up))
	for _, s := range ikeStates {
		gauge(c.ikeSAs, float64(states[s]), s)
	}
	gauge(c.childSAs, float64(children), "ike")
	gauge(c.childSAs, float64(len(st.Manual)), "manual")
	for _, m := range st.Manual {
		counter(c.manualBytes, m.In.Bytes, m.Name, "in")
		counter(c.manualBytes, m.Out.Bytes, m.Name, "out")
		counter(c.manualPackets, m.In.Packets, m.Name, "in")
		counter(c.manualPackets, m.Out.Packets, m.Name, "out")
	}
	for reason, n := range st.DataPlane.Drops {
		counter(c.drops, n, reason)
	}
	if x := st.DataPlane.XDP; x != nil {
		for ifc, mode := range x.Interfaces {
			gauge(c.xdpInterface, 1, ifc, mode)
		}
		counter(c.xdpReceived, x.Received)
		counter(c.xdpBatches, x.Batches)
		for reason, n := range x.Drops {
			counter(c.xdpDrops, n, reason)
		}
		for reason, n := range x.KernelDrops {
			counter(c.xdpDrops, n, "kernel_"+reason)
		}
	}
	if r := st.DataPlane.TXRing; r != nil {
		gauge(c.txRings, float64(r.Rings))
		counter(c.txRingSent, r.Sent)
		counter(c.txRingSendtos, r.Sendtos)
		counter(c.txRingRetries, r.Retries)
		counter(c.txRingBroken, r.Broken)
		counter(c.txRingRawSocket, r.Recovered, "recovered")
		counter(c.txRingRawSocket, r.RawSocket, "not_taken")
	}
	for reason, n := range st.IKE.Failures {
		counter(c.failures, n, reason)
	}
	counter(c.rekeys, st.IKE.Rekeys)
	counter(c.retransmits, st.IKE.Retransmits)
	counter(c.handshakesOK, st.IKE.HandshakesOK)
	counter(c.handshakesFailed, st.IKE.HandshakesFailed)
	counter(c.invalid, st.IKE.InvalidMessages)
	for reason, n := range st.IKE.Drops {
		counter(c.ikeDrops, n, reason)
	}
	gauge(c.halfOpen, float64(st.IKE.HalfOpen))
	counter(c.cookies, st.IKE.CookiesSent)
	for _, p := range st.Pools {
		ch <- prometheus.MustNewConstMetric(c.poolSize, prometheus.GaugeValue, float64(p.Size), p.Name)
		ch <- prometheus.MustNewConstMetric(c.poolLeased, prometheus.GaugeValue, float64(p.Online), p.Name)
		ch <- prometheus.MustNewConstMetric(c.poolOffline, prometheus.GaugeValue, float64(p.Offline), p.Name)
	}
	users := map[string]int{}
	for _, cs := range st.Connections {
		users[cs.Name] = 0
	}
	for _, u := range st.Users {
		users[u.Connection]++
	}
	for conn, n := range users {
		ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(n), conn)
	}
	l2tp := map[string]int{"lns": 0, "lac": 0}
	for _, l := range st.L2TP {
		if l.Role == "lns" {
			l2tp["lns"]++
		} else {
			l2tp["lac"]++
		}
	}
	for role, n := range l2tp {
		gauge(c.l2tpSessions, float64(n), role)
	}
	for _, cert := range st.Certificates {
		gauge(c.certExpiry, float64(cert.ExpiresInSeconds)/86400, cert.Subject, cert.Serial, cert.Kind)
	}
}

// carry folds this scrape's per-SA values into the remembered series and returns each series'
// total: SAs gone since the last scrape add their last value to the carried part. Series of
// connections that are no longer configured are forgotten; series of configured children stay
// (at their total) while no SA exists, so a rekey gap never resets them.
func (c *Collector) carry(seen map[trafficKey]map[string]uint64, conns []status.Connection) map[trafficKey]uint64 {
	configured := map[string]bool{}
	for _, conn := range conns {
		configured[conn.Name] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.traffic {
		if !configured[k.conn] {
			delete(c.traffic, k)
			continue
		}
		now := seen[k]
		for spi, v := range t.live {
			if _, ok := now[spi]; !ok {
				t.gone += v
			}
		}
		t.live = now
	}
	for k, now := range seen {
		if c.traffic[k] == nil {
			c.traffic[k] = &carried{live: now}
		}
	}
	out := make(map[trafficKey]uint64, len(c.traffic))
	for k, t := range c.traffic {
		v := t.gone
		for _, n := range t.live {
			v += n
		}
		out[k] = v
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Registry returns a registry with the collector and the Go runtime and process collectors.
func Registry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve exposes the collector (and Go runtime and process metrics) on addr at /metrics until ctx
// ends.
func Serve(ctx context.Context, addr string, c *Collector) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry(c), promhttp.HandlerOpts{}))
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
