package main

import (
	"net/netip"
	"sync/atomic"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/daemon"
	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/dataplane/userspace"
	"github.com/goipsec/goipsec/dataplane/xfrm"
	"github.com/goipsec/goipsec/internal/logging"
)

// dataPlane is the data plane chosen by daemon.dataplane, with the NAT-T socket IKE shares.
type dataPlane struct {
	backend dataplane.Backend
	natt    daemon.NATT
	tcp     daemon.TCPCarrier // IKE and ESP in TCP; nil with the kernel data plane (no espintcp)
	desc    string            // for the start-up log line
	close   func()
}

// newDataPlane creates the data plane daemon.dataplane names. The daemon does not exist yet when
// it is created; dptr reaches it once it does (IKE on the NAT-T port, acquires, expiries).
func newDataPlane(cfg *config.Config, logs *logging.Hub, dptr *atomic.Pointer[daemon.Daemon]) (*dataPlane, error) {
	events := dataplane.Events{
		Acquire: func(a dataplane.Acquire) {
			if d := dptr.Load(); d != nil {
				d.OnAcquire(a)
			}
		},
		Expire: func(x dataplane.Expire) {
			if d := dptr.Load(); d != nil {
				d.OnExpire(x)
			}
		},
		FirstInbound: func(k dataplane.SAKey, name string) {
			if d := dptr.Load(); d != nil {
				d.OnFirstInbound(k, name)
			}
		},
	}
	ike := func(pkt []byte, local netip.Addr, remote netip.AddrPort) {
		if d := dptr.Load(); d != nil {
			d.ReceiveNATT(pkt, local, remote)
		}
	}
	if cfg.Daemon.Dataplane == "kernel" {
		b, err := xfrm.New(xfrm.Config{Logger: logs.Logger("dataplane"), Events: events,
			IKEPort: cfg.Daemon.IKEPort, NATTPort: cfg.Daemon.NATTPort,
			RouteTable: cfg.Daemon.RouteTable, RulePriority: cfg.Daemon.RulePriority})
		if err != nil {
			return nil, err
		}
		n, err := xfrm.ListenNATT(xfrm.NATTConfig{Port: cfg.Daemon.NATTPort, FwMark: cfg.Daemon.FwMark, IKE: ike, Logger: logs.Logger("net")})
		if err != nil {
			b.Close()
			return nil, err
		}
		return &dataPlane{backend: b, natt: n, desc: "kernel (XFRM)", close: func() { n.Close(); b.Close() }}, nil
	}
	engine, err := userspace.New(userspace.Config{
		TunName:      cfg.Daemon.TunName,
		MTU:          cfg.Daemon.MTU,
		NATTPort:     int(cfg.Daemon.NATTPort),
		NoPacketRing: cfg.Daemon.NoRawESPRing,
		RawESPXDP:    cfg.Daemon.RawESPXDP,
		Logger:       logs.Logger("dataplane"),
		ESPLogger:    logs.Logger("esp"),
		IKE:          ike,
		Events:       events,
	})
	if err != nil {
		return nil, err
	}
	return &dataPlane{backend: engine, natt: engine, tcp: engine, desc: "userspace (TUN " + engine.Name() + ")", close: func() { engine.Close() }}, nil
}
