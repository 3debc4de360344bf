package kernel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/labvm"
)

// L2TP/IPsec the way Linux clients dial it: strongSwan 5.9.8 with the kernel's ESP (IKEv1,
// transport mode) and xl2tpd + pppd in the guest, goipsec's LNS (userspace data plane, PPP in
// userspace) on the host side — with PAP, CHAP and MS-CHAPv2, ping and a byte-checked TCP
// transfer from the client's PPP address.

const (
	lnsPPP    = "10.3.0.254"
	l2tpUser  = "bob"
	l2tpPass  = "bobs password"
	pppClient = "10.3.0.1"
)

func lnsConf(auth string) string {
	return fmt.Sprintf(`daemon {
  dataplane = userspace
}
connections {
  l2tp {
    version = 1
    local_addrs = %s
    remote_addrs = %%any
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = %s }
    remote { auth = psk }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = aes256-sha256 }
    }
  }
}
pools {
  clients { addrs = 10.3.0.0/24 }
}
l2tp {
  lns { pool = clients
        auth = %s }
}
secrets {
  ike-any { secret = "%s" }
  eap-bob { id = %s
            secret = "%s" }
}
`, hostOuter, hostOuter, auth, testPSK, l2tpUser, l2tpPass)
}

// The guest's strongSwan: IKEv1 transport mode for UDP 1701 only, as Linux L2TP/IPsec
// recipes configure it.
func l2tpSwanConf() string {
	return fmt.Sprintf(`connections {
  l2tp {
    version = 1
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = %s }
    remote { auth = psk
             id = %s }
    children {
      l2tp { local_ts = dynamic[17/1701]
             remote_ts = dynamic[17/1701]
             mode = transport
             esp_proposals = aes256-sha256 }
    }
  }
}
secrets {
  ike-l2tp { secret = "%s" }
}
`, guestOuter, hostOuter, guestOuter, hostOuter, testPSK)
}

func xl2tpdConf() string {
	return fmt.Sprintf(`[global]
port = 1701
[lac goipsec]
lns = %s
ppp debug = yes
pppoptfile = /mnt/host/options.l2tp
length bit = yes
`, hostOuter)
}

func pppOptions() string {
	return fmt.Sprintf(`ipcp-accept-local
ipcp-accept-remote
noccp
noauth
nodefaultroute
mtu 1360
mru 1360
debug
name %s
password "%s"
`, l2tpUser, l2tpPass)
}

func TestL2TPIPsecLinuxClient(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	for _, auth := range []string{"pap", "chap", "mschapv2"} {
		t.Run(auth, func(t *testing.T) {
			l.logConsole(t)
			l.logXfrmOnFailure(t)
			start := time.Now()
			h := l.startHostGoipsec(t, lnsConf(auth))
			l.startCharon(t, l2tpSwanConf())
			l.writeShare(t, "xl2tpd.conf", xl2tpdConf())
			l.writeShare(t, "options.l2tp", pppOptions())
			l.guest(t, "mkdir -p /var/run/xl2tpd && rm -f /var/run/xl2tpd/l2tp-control")
			x := l.startGuest(t, "xl2tpd", "exec xl2tpd -D -c /mnt/host/xl2tpd.conf -p /run/xl2tpd.pid -C /var/run/xl2tpd/l2tp-control")
			t.Cleanup(func() { l.guestTry(t, "pkill pppd; sleep 0.5") })
			// IPsec first (as the Linux recipes do), then the call.
			l.guest(t, "swanctl --initiate --child l2tp --timeout 30")
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, code := l.guestTry(t, "test -p /var/run/xl2tpd/l2tp-control"); code == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("xl2tpd has no control pipe:\n%s", x.output(t))
				}
				time.Sleep(200 * time.Millisecond)
			}
			l.guest(t, "echo 'c goipsec' > /var/run/xl2tpd/l2tp-control")
			h.waitLog(t, "L2TP session up", 40*time.Second)
			deadline = time.Now().Add(20 * time.Second)
			for {
				out, _ := l.guestTry(t, "ip -4 addr show ppp0")
				if strings.Contains(out, "inet "+pppClient) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ppp0 did not get %s:\n%s\nxl2tpd/pppd:\n%s", pppClient, out, x.output(t))
				}
				time.Sleep(200 * time.Millisecond)
			}
			setup := time.Since(start)
			var line string
			for _, x := range strings.Split(h.out.String(), "\n") {
				if strings.Contains(x, "L2TP session up") {
					line = x
				}
			}
			if !strings.Contains(line, "auth="+auth) || !strings.Contains(line, "user="+l2tpUser) {
				t.Fatalf("session: %s", line)
			}
			// The L2TP datagrams are in the kernel's transport-mode SA.
			if out := l.guest(t, "ip -s xfrm state"); !strings.Contains(out, "mode transport") {
				t.Fatalf("no transport-mode SA in the guest:\n%s", out)
			}
			l.pingFromGuest(t, pppClient, lnsPPP)
			l.tcpTransfer(t, lnsPPP, pppClient, 256<<10)
			t.Logf("Linux client (strongSwan kernel ESP + xl2tpd + pppd, %s) up in %v", auth, setup.Round(time.Millisecond))
		})
	}
}

// TestGoipsecLACToXl2tpd: goipsec's L2TP client (host) dials xl2tpd + pppd as the server (guest),
// over IKEv1 transport mode with strongSwan and the kernel's ESP in the guest; pppd demands
// MS-CHAPv2 and assigns the address.
func TestGoipsecLACToXl2tpd(t *testing.T) {
	l := needLab(t, labvm.StrongSwan())
	l.logConsole(t)
	l.logXfrmOnFailure(t)
	const lnsLocal, lacRange = "10.6.0.1", "10.6.0.10-10.6.0.20"
	// The guest's strongSwan answers: the same transport-mode connection as for the client test.
	l.startCharon(t, l2tpSwanConf())
	l.writeShare(t, "xl2tpd-lns.conf", fmt.Sprintf(`[global]
port = 1701
[lns default]
ip range = %s
local ip = %s
require authentication = yes
name = lns
pppoptfile = /mnt/host/options.lns
length bit = yes
`, lacRange, lnsLocal))
	l.writeShare(t, "options.lns", "require-mschap-v2\nrefuse-pap\nrefuse-chap\nms-dns 10.6.0.53\nnoccp\nauth\nmtu 1360\nmru 1360\ndebug\n")
	l.guest(t, fmt.Sprintf(`mkdir -p /var/run/xl2tpd && printf '%%s * "%%s" *\n' %s '%s' > /etc/ppp/chap-secrets`, l2tpUser, l2tpPass))
	x := l.startGuest(t, "xl2tpd-lns", "exec xl2tpd -D -c /mnt/host/xl2tpd-lns.conf -p /run/xl2tpd-lns.pid -C /var/run/xl2tpd/lns-control")
	t.Cleanup(func() { l.guestTry(t, "pkill pppd; sleep 0.5") })
	start := time.Now()
	h := l.startHostGoipsec(t, fmt.Sprintf(`daemon {
  dataplane = userspace
}
connections {
  office {
    version = 1
    local_addrs = %s
    remote_addrs = %s
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = %s }
    remote { auth = psk
             id = %s }
    children {
      l2tp { local_ts = dynamic
             remote_ts = dynamic
             mode = transport
             esp_proposals = aes256-sha256
             start_action = trap }
    }
  }
}
l2tp {
  lac-office { remote = %s
               user = %s }
}
secrets {
  ike-any { secret = "%s" }
  eap-bob { id = %s
            secret = "%s" }
}
`, hostOuter, guestOuter, hostOuter, guestOuter, guestOuter, l2tpUser, testPSK, l2tpUser, l2tpPass))
	h.waitLog(t, "L2TP session up", 40*time.Second)
	setup := time.Since(start)
	var line string
	for _, x := range strings.Split(h.out.String(), "\n") {
		if strings.Contains(x, "L2TP session up") {
			line = x
		}
	}
	i := strings.Index(line, "ppp_local=")
	if i < 0 || !strings.Contains(line, "ppp_peer="+lnsLocal) {
		t.Fatalf("session: %s\nxl2tpd:\n%s", line, x.output(t))
	}
	local := strings.Fields(line[i+len("ppp_local="):])[0]
	l.pingFromHost(t, local, lnsLocal)
	l.tcpTransfer(t, local, lnsLocal, 256<<10)
	t.Logf("goipsec LAC to xl2tpd + pppd (MS-CHAPv2) up in %v, PPP address %s", setup.Round(time.Millisecond), local)
}
