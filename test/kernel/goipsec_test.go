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
// its userspace data plane on the host side, tunnel and transport mode, each side initiating;
// ESP, and AH negotiated by IKEv2 (ah_proposals).
func TestKernelVsUserspace(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	for _, tc := range []struct {
		mode, initiator, ah string
	}{
		{"transport", "host", ""}, {"tunnel", "guest", ""}, {"transport", "guest", ""}, {"tunnel", "host", ""},
		{"tunnel", "guest", "sha384"}, {"transport", "host", "sha256-esn"},
	} {
		name := tc.mode + "/" + tc.initiator + "-initiates"
		if tc.ah != "" {
			name = "ah/" + name
		}
		t.Run(name, func(t *testing.T) {
			l.logConsole(t)
			guest, host := pair(tc.mode, "aes256gcm16")
			guest.ah, host.ah = tc.ah, tc.ah
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
			c := l.trafficCheck(t, tc.mode)
			if tc.ah != "" {
				assertXfrmProto(t, c, "ah")
			}
			res := g.stop(t)
			if res.Exit != 0 {
				t.Errorf("guest goipsec exited with %d after SIGTERM", res.Exit)
			}
			l.assertNoXfrm(t)
		})
	}
}
