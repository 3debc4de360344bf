package kernel

import (
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// startGuestGoipsec writes conf to the share and runs goipsec with it in the guest.
func (l *lab) startGuestGoipsec(t *testing.T, name string, conf goipsecConf) *guestDaemon {
	t.Helper()
	path := l.writeShare(t, name+".conf", conf.String())
	g := l.startGuest(t, name, "exec /mnt/host/goipsec run -c "+path)
	g.waitOutput(t, "goipsec running", 30*time.Second)
	return g
}

// TestKernelVsUserspace: goipsec with the kernel data plane in the guest against goipsec with
// its userspace data plane on the host side, tunnel and transport mode, each side initiating.
func TestKernelVsUserspace(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	for _, tc := range []struct {
		mode, initiator string
	}{
		{"transport", "host"}, {"tunnel", "guest"}, {"transport", "guest"}, {"tunnel", "host"},
	} {
		t.Run(tc.mode+"/"+tc.initiator+"-initiates", func(t *testing.T) {
			l.logConsole(t)
			guest, host := pair(tc.mode, "aes256gcm16")
			guest.dataplane, host.dataplane = "kernel", "userspace"
			if tc.initiator == "guest" {
				guest.startAction = "start"
			} else {
				host.startAction = "start"
			}
			var g *guestDaemon
			if tc.initiator == "host" {
				g = l.startGuestGoipsec(t, "goipsec", guest)
				l.startHostGoipsec(t, host.String())
			} else {
				l.startHostGoipsec(t, host.String())
				g = l.startGuestGoipsec(t, "goipsec", guest)
			}
			g.waitOutput(t, "Child SA established", 60*time.Second)
			l.trafficCheck(t, tc.mode)
			res := g.stop(t)
			if res.Exit != 0 {
				t.Errorf("guest goipsec exited with %d after SIGTERM", res.Exit)
			}
			l.assertNoXfrm(t)
		})
	}
}
