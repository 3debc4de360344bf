package interop

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet/strongswan"
)

// Redirect (RFC 5685) against strongSwan 5.9.8, both roles. A gateway sends a client elsewhere;
// redirecting it to the same gateway's address makes the client come back with a new IKE SA
// (announcing REDIRECTED_FROM), which shows it followed without a second gateway.

func TestRedirectGoipsecGateway(t *testing.T) {
	t.Run("established, swanctl --redirect", func(t *testing.T) {
		_, left, right := setup(t)
		daemon, _ := raDaemon(t)
		g := startGoipsec(t, left, raGoipsecGateway("psk", "")+daemon)
		c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanClient("psk", "")})
		c.Initiate(t, "net")
		c.WaitEstablished(t, "rw", 30*time.Second)
		out := swanctlAt(t, g.vici, "--redirect", "--ike", "rw", "--gateway", leftOuter)
		if !strings.Contains(out, "redirect completed successfully") {
			t.Fatalf("swanctl --redirect:\n%s", out)
		}
		c.WaitLog(t, regexp.MustCompile(`redirected to `+regexp.QuoteMeta(leftOuter)), 10*time.Second)
		g.waitLogCount(t, 2, 20*time.Second, "IKE SA established")
		if ok, out := right.Ping(t, leftInner4, 3); !ok {
			t.Fatalf("ping after the redirect:\n%s", out)
		}
	})
	t.Run("IKE_SA_INIT, redirect_to", func(t *testing.T) {
		_, left, right := setup(t)
		daemon, _ := raDaemon(t)
		gw := strings.Replace(raGoipsecGateway("psk", ""), "    pools = rw\n", "    pools = rw\n    redirect_to = 192.0.2.9\n", 1)
		startGoipsec(t, left, gw+daemon)
		c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanClient("psk", "")})
		c.SwanctlOutput("--initiate", "--child", "net", "--timeout", "3")
		c.WaitLog(t, regexp.MustCompile(`redirected to 192\.0\.2\.9`), 10*time.Second)
	})
}

func TestRedirectGoipsecClientFollows(t *testing.T) {
	_, left, right := setup(t)
	c := strongswan.Start(t, right, strongswan.Config{SwanctlConf: raSwanGateway("psk", "")})
	daemon, _ := raDaemon(t)
	g := startGoipsec(t, left, raGoipsecClient("psk", "", "")+daemon)
	g.waitLog(t, "Child SA established", 30*time.Second)
	c.Swanctl(t, "--redirect", "--ike", "rw", "--gateway", rightOuter)
	g.waitLog(t, "gateway redirects us", 10*time.Second)
	g.waitLogCount(t, 2, 20*time.Second, "Child SA established")
	c.WaitLog(t, regexp.MustCompile(`N\(REDIR_FROM\)`), 10*time.Second)
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping after following the redirect:\n%s", out)
	}
}
