package daemon

import (
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// MOBIKE (RFC 4555) on the client: the daemon watches the host's addresses; when one comes or
// goes, every MOBIKE IKE SA we initiated asks the kernel which source address reaches its peer
// now, and moves there (the engine sends UPDATE_SA_ADDRESSES; the ESP SAs follow once the peer
// answers).

// roamSettle lets a burst of address events (an interface going down takes several addresses and
// routes) settle before the routes are asked.
const roamSettle = 200 * time.Millisecond

func (d *Daemon) watchAddresses() {
	ch := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribe(ch, d.stop); err != nil {
		d.log.Warn("cannot watch the host's addresses: MOBIKE will not follow address changes", "err", err)
		return
	}
	go func() {
		var timer *time.Timer
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
				if timer == nil {
					timer = time.AfterFunc(roamSettle, d.roam)
				} else {
					timer.Reset(roamSettle)
				}
			case <-d.stop:
				return
			}
		}
	}()
}

// roam moves MOBIKE IKE SAs whose best source address changed.
func (d *Daemon) roam() {
	if d.ike == nil || d.closing.Load() {
		return
	}
	n := d.ike.Roam(func(local, remote netip.AddrPort) netip.Addr {
		src, err := d.sourceFor(remote.Addr())
		if err != nil {
			return netip.Addr{}
		}
		return src
	})
	if n > 0 {
		d.log.Info("local address changed: moving IKE SAs (MOBIKE)", "ike_sas", n)
	}
}
