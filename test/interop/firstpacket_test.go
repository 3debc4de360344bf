package interop

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Time from initiate to the first packet through the tunnel, for a strongSwan 5.9.8 road
// warrior at a goipsec gateway: swanctl --initiate, then a ping from the virtual IP until the
// first reply, five times per authentication (PSK, certificate, EAP-MSCHAPv2, EAP-MSCHAPv2
// relayed to FreeRADIUS), median reported (docs/performance.md) and bounded.
func TestRemoteAccessTimeToFirstPacket(t *testing.T) {
	const rounds = 5
	results := map[string]time.Duration{}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T) *strongswan.Charon
	}{
		{"psk", func(t *testing.T) *strongswan.Charon {
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			startGoipsec(t, left, raGoipsecGateway("psk", "")+daemon)
			return strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanClient("psk", "")})
		}},
		{"certificate", func(t *testing.T) *strongswan.Charon {
			cs := newCertSetup(t, "ecdsa", "ecdsa 256")
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			startGoipsecIn(t, left, cs.gdir, raCertGateway("    remote {\n      auth = pubkey\n      id = "+sunID+"\n    }\n")+daemon)
			return strongswan.Start(t, right, strongswan.Config{SwanctlConf: raCertSwanClient("    local {\n      auth = pubkey\n      certs = sun.pem\n      id = " + sunID + "\n    }\n"), Files: cs.swanFiles})
		}},
		{"eap-mschapv2", func(t *testing.T) *strongswan.Charon {
			_, left, right := setup(t)
			daemon, _ := raDaemon(t)
			startGoipsec(t, left, raGoipsecGateway("eap-mschapv2\n      eap_id = %any", eapUserSecret("carol"))+daemon)
			swan := strings.Replace(raSwanClient("eap-mschapv2", "      eap_id = carol\n"), "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			return strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
		}},
		{"eap-mschapv2 via RADIUS", func(t *testing.T) *strongswan.Charon {
			_, left, right := setup(t)
			startFreeRADIUS(t, left, "127.0.0.1")
			daemon, _ := raDaemon(t)
			gw := strings.Replace(raRadiusGateway(""), "    dead {\n      address = 192.0.2.99\n      secret = \""+radiusSecret+"\"\n      preference = 10\n    }\n", "", 1)
			startGoipsec(t, left, gw+daemon)
			swan := strings.Replace(raSwanClient("eap-mschapv2", "      eap_id = carol\n"), "secrets {\n", "secrets {\n"+eapUserSecret("carol"), 1)
			return strongswan.Start(t, right, strongswan.Config{SwanctlConf: swan, Plugins: eapPlugins})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.run(t)
			var times []time.Duration
			for range rounds {
				start := time.Now()
				// One shell in the client's namespace: initiate, then ping every 10 ms until the
				// first reply (the virtual IP is the source: the route's).
				out, err := c.NS().Output("sh", "-c", "STRONGSWAN_CONF="+c.Dir()+"/strongswan.conf swanctl --initiate --child net --timeout 10 >/dev/null && "+
					"ping -n -i 0.01 -c 1 -w 5 "+leftInner4+" >/dev/null")
				took := time.Since(start)
				if err != nil {
					t.Fatalf("initiate and ping: %v\n%s", err, out)
				}
				times = append(times, took)
				c.Swanctl(t, "--terminate", "--ike", "rw")
				time.Sleep(200 * time.Millisecond)
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			med := times[len(times)/2]
			results[tc.name] = med
			t.Logf("%s: median %s (min %s, max %s) from swanctl --initiate to the first ping reply", tc.name, med.Round(time.Millisecond),
				times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
			if med > 2*time.Second {
				t.Fatalf("median %s to the first packet", med)
			}
		})
	}
}
