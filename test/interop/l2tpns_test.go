package interop

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/goipsec/goipsec/internal/testnet"
)

// l2tpns (Debian's userspace L2TP server with its own PPP) against goipsec's LAC, without IPsec
// (l2tpns has none): an independent implementation of L2TP and PPP checks goipsec's. l2tpns
// authenticates users with RADIUS; the test answers with a small RADIUS server (layeh.com/radius)
// in l2tpns' namespace that accepts bob's PAP password and nothing else.

const (
	l2tpnsOuter = "192.0.2.1"
	l2tpnsLAC   = "192.0.2.2"
	l2tpnsGW    = "10.4.0.254" // peer_address: the address l2tpns gives itself in IPCP
	radSecret   = "radius-test-secret"
)

func TestL2TPNSAgainstLAC(t *testing.T) {
	testnet.Require(t, "l2tpns", "ping")
	n := testnet.New(t)
	srv, cli := n.Namespace("l2tpns"), n.Namespace("lac")
	srvIf, _ := n.Link(srv, cli, []string{l2tpnsOuter + "/24"}, []string{l2tpnsLAC + "/24"})
	srv.AddAddr("lo", l2tpnsGW+"/32")

	// RADIUS in l2tpns' namespace.
	var accepted, refused atomic.Int32
	var pc net.PacketConn
	if err := srv.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", "127.0.0.1:1812")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rs := &radius.PacketServer{SecretSource: radius.StaticSecretSource([]byte(radSecret)),
		Handler: radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			user := rfc2865.UserName_GetString(r.Packet)
			pass := rfc2865.UserPassword_GetString(r.Packet)
			code := radius.CodeAccessReject
			if user == "bob" && pass == "bobs password" {
				code = radius.CodeAccessAccept
				accepted.Add(1)
			} else {
				refused.Add(1)
			}
			w.Write(r.Response(code))
		})}
	go rs.Serve(pc)
	t.Cleanup(func() { rs.Shutdown(context.Background()) })

	dir := t.TempDir()
	writeFile(t, dir, "ip_pool", []byte("10.4.0.0/24\n"))
	writeFile(t, dir, "users", nil)
	writeFile(t, dir, "startup-config", []byte(fmt.Sprintf(`set debug 3
set pid_file "%s"
set primary_dns 10.4.0.53
set primary_radius 127.0.0.1
set radius_secret "%s"
set radius_authtypes "pap"
set radius_accounting no
set bind_address %s
set peer_address %s
set cli_bind_address 127.0.0.1
set cluster_interface %s
set cluster_hb_interval 2
set cluster_hb_timeout 10
`, filepath.Join(dir, "l2tpns.pid"), radSecret, l2tpnsOuter, l2tpnsGW, srvIf)))
	// l2tpns reads its pool from /etc/l2tpns: a private bind mount (ip netns exec gives the
	// command its own mount namespace) points it at the test's files.
	p := srv.Start(t, "sh", "-c", `mount --bind "$1" /etc/l2tpns && exec l2tpns -c /etc/l2tpns/startup-config`, "sh", dir)
	// l2tpns takes calls once it has elected itself master of its (one-node) cluster:
	// cluster_hb_timeout shortens that from 15 s to 1 s.
	p.WaitOutput(t, "declaring myself the master", 20*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("l2tpns output:\n%s", testnet.Tail(p.Output(), 60))
		}
	})

	g := startGoipsec(t, cli, fmt.Sprintf(`l2tp {
  lac-isp { remote = %s
            user = bob }
}
secrets {
  eap-bob { id = bob
            secret = "bobs password" }
}
daemon {
  log {
    level = debug
  }
}
`, l2tpnsOuter))
	g.waitLog(t, "L2TP session up", 30*time.Second)
	line := g.logLines("L2TP session up")[0]
	local, peer := logAttr(line, "ppp_local"), logAttr(line, "ppp_peer")
	if !strings.HasPrefix(local, "10.4.0.") || peer != l2tpnsGW || accepted.Load() != 1 {
		t.Fatalf("session %s; RADIUS accepted %d, refused %d", line, accepted.Load(), refused.Load())
	}
	if out, err := cli.Output("ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", local, l2tpnsGW); err != nil {
		t.Fatalf("ping %s from %s through l2tpns failed:\n%s", l2tpnsGW, local, out)
	}
	testnet.TCPTransfer(t, srv, cli, l2tpnsGW+":7041", 128<<10)
}
