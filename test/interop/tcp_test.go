package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/internal/testnet"
	"github.com/goipsec/goipsec/status"
)

// IKE and ESP in TCP (RFC 9329), goipsec with goipsec, through a firewall that forwards nothing
// but TCP to port 443 (and the packets of connections it let through): no UDP 500/4500, no ESP.
//
//	tl (192.168.1.2, 10.1.0.1) -- fw (only TCP 443) -- tr (198.51.100.2, 10.2.0.1)

const (
	tcpLeft     = "192.168.1.2"
	tcpFwInside = "192.168.1.1"
	tcpFwOut    = "198.51.100.1"
	tcpRight    = "198.51.100.2"
)

// only443 is the firewall's rule set: new connections to TCP 443, nothing else.
const only443 = "tcp dport 443 ct state new accept"

func tcpSetup(t *testing.T) (left, fw, right *testnet.NS) {
	t.Helper()
	testnet.Require(t, "ping", "nft")
	n := testnet.New(t)
	left, fw, right = n.Namespace("tl"), n.Namespace("fw"), n.Namespace("tr")
	n.Link(left, fw, []string{tcpLeft + "/24"}, []string{tcpFwInside + "/24"})
	n.Link(fw, right, []string{tcpFwOut + "/24"}, []string{tcpRight + "/24"})
	left.AddRoute("default", "via", tcpFwInside)
	right.AddRoute("default", "via", tcpFwOut)
	left.AddAddr("lo", leftInner4+"/24")
	right.AddAddr("lo", rightInner4+"/24")
	fw.Firewall(t, only443)
	return left, fw, right
}

// tcpPair starts the responder (tcp_listen = 443) on the right and the initiator on the left with
// extra lines in its connection and daemon sections.
func tcpPair(t *testing.T, left, right *testnet.NS, initiatorExtra, initiatorDaemon string) (l, r *goipsecProc) {
	t.Helper()
	r = startGoipsec(t, right, connConf{local: tcpRight, remote: tcpLeft, localID: tcpRight, remoteID: tcpLeft,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: rightNet4, remoteTS: leftNet4,
		daemonExtra: "  tcp_listen = 4500, 443\n"}.String())
	l = startGoipsec(t, left, connConf{local: tcpLeft, remote: tcpRight, localID: tcpLeft, remoteID: tcpRight,
		ikeProposal: "default", espProposal: "aes256gcm16", localTS: leftNet4, remoteTS: rightNet4, startAction: "start",
		extra: initiatorExtra, daemonExtra: initiatorDaemon}.String())
	return l, r
}

// TestTCPThroughFirewall: with encap = tcp and tcp_port = 443 the tunnel comes up through the
// firewall, carrying IKE (with the hybrid ML-KEM default, whose IKE_INTERMEDIATE needs no
// fragmentation in TCP) and ESP in one TCP connection; pings and byte-checked TCP transfers pass
// both ways.
func TestTCPThroughFirewall(t *testing.T) {
	left, _, right := tcpSetup(t)
	l, r := tcpPair(t, left, right, "    encap = tcp\n    tcp_port = 443\n", "")
	l.waitLog(t, "Child SA established", 20*time.Second)
	r.waitLog(t, "Child SA established", 10*time.Second)
	if lines := l.logLines("IKE SA established", "ke1_mlkem768"); len(lines) != 1 {
		t.Fatalf("the IKE SA is not the ML-KEM hybrid: %q", l.logLines("IKE SA established"))
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping through the TCP tunnel failed:\n%s", out)
	}
	testnet.TCPTransfer(t, right, left, rightInner4+":7003", 2<<20)
	testnet.TCPTransfer(t, left, right, leftInner4+":7004", 2<<20)
	if len(l.logLines("opened TCP connection for IKE and ESP", tcpRight+":443")) != 1 {
		t.Fatalf("goipsec opened %d TCP connections, want 1", len(l.logLines("opened TCP connection")))
	}
	// goipsec status shows the connection, on both sides.
	for name, g := range map[string]*goipsecProc{"initiator": l, "responder": r} {
		out, err := exec.Command(goipsecBinary(t), "status", "--json", "--socket", g.vici).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: goipsec status: %v\n%s", name, err, out)
		}
		var st status.Status
		if err := json.Unmarshal(out, &st); err != nil || len(st.Connections) != 1 || len(st.Connections[0].IKESAs) != 1 {
			t.Fatalf("%s: status %v\n%s", name, err, out)
		}
		sa := st.Connections[0].IKESAs[0]
		if sa.Transport != "tcp" || sa.TCP == nil || !sa.TCP.Connected || sa.TCP.Originator != (name == "initiator") || sa.TCP.ESPOut == 0 || sa.TCP.ESPIn == 0 {
			t.Fatalf("%s: IKE SA %+v, TCP %+v", name, sa, sa.TCP)
		}
		text, _ := exec.Command(goipsecBinary(t), "status", "--socket", g.vici).CombinedOutput()
		if !strings.Contains(string(text), "IKE and ESP in TCP") || !strings.Contains(string(text), "ESP in TCP, spis") {
			t.Fatalf("%s: goipsec status text lacks the TCP lines:\n%s", name, text)
		}
	}
}

// TestTCPFallback: without encap = tcp the initiator tries UDP first; the firewall drops it, and
// after two unanswered retransmissions the initiator falls back to TCP 443 by itself.
func TestTCPFallback(t *testing.T) {
	left, _, right := tcpSetup(t)
	start := time.Now()
	l, _ := tcpPair(t, left, right, "    tcp_port = 443\n", "  retransmit_timeout = 1s\n")
	l.waitLog(t, "Child SA established", 30*time.Second)
	t.Logf("up over TCP after %s", time.Since(start).Round(100*time.Millisecond))
	if len(l.logLines("no answer over UDP: trying IKE in TCP")) != 1 {
		t.Fatal("goipsec did not log the fallback")
	}
	if ok, out := left.Ping(t, rightInner4, 3); !ok {
		t.Fatalf("ping after the fallback failed:\n%s", out)
	}
}

// TestTCPReset: the firewall resets the TCP connection in the middle of a transfer through the
// tunnel (a paced, byte-checked TCP stream each way); the initiator reconnects at once and the same
// IKE and Child SAs carry on in the new connection (RFC 9329 §6.1): no new IKE SA, and both
// streams complete with every byte intact (the tunnelled TCP retransmits what the reset lost).
func TestTCPReset(t *testing.T) {
	left, fw, right := tcpSetup(t)
	l, r := tcpPair(t, left, right, "    encap = tcp\n    tcp_port = 443\n", "")
	l.waitLog(t, "Child SA established", 20*time.Second)
	r.waitLog(t, "Child SA established", 10*time.Second)

	// 6 MiB each way at about 4 MiB/s: the reset comes when a quarter has been sent.
	const size = 6 << 20
	midway := make(chan struct{})
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- pacedExchange(right, left, rightInner4+":7005", size, midway) }()
	select {
	case <-midway:
		t.Logf("a quarter sent after %s: resetting", time.Since(start).Round(time.Millisecond))
	case err := <-done:
		t.Fatalf("the transfer ended before the reset: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the transfer made no progress")
	}
	// The next packet of this connection — the transfer keeps sending — meets a TCP reset, as when
	// a middlebox drops its state; the new connection (another source port) passes.
	opened := l.logLines("opened TCP connection for IKE and ESP")
	port := regexp.MustCompile(`local=` + regexp.QuoteMeta(tcpLeft) + `:(\d+)`).FindStringSubmatch(strings.Join(opened, "\n"))
	if len(opened) != 1 || port == nil {
		t.Fatalf("cannot tell the TCP connection: %q", opened)
	}
	fw.Firewall(t, "tcp sport "+port[1]+" reject with tcp reset\n"+only443)
	l.waitLog(t, "TCP connection closed: reconnecting", 10*time.Second)
	t.Logf("reset noticed after %s", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the transfer across the reset: %v\n%s", err, testnet.Tail(l.p.Output(), 40))
		}
		t.Logf("both streams complete after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		t.Fatalf("the transfer did not finish within 60s of the reset:\n%s", testnet.Tail(l.p.Output(), 40))
	}
	for name, g := range map[string]*goipsecProc{"initiator": l, "responder": r} {
		if n := len(g.logLines("IKE SA established")); n != 1 {
			t.Fatalf("%s established %d IKE SAs, want the one it had", name, n)
		}
	}
	if n := len(l.logLines("opened TCP connection for IKE and ESP")); n < 2 {
		t.Fatalf("the initiator opened %d TCP connections, want a second one", n)
	}
	if strings.Contains(r.p.Output(), "negotiation failed") {
		t.Fatal("the responder reported a failure")
	}
}

// pacedExchange sends size random bytes each way over one TCP connection from client to a
// listener at addr in server, in 32 KiB writes 8 ms apart, so that the transfer lasts a few
// seconds; it closes midway once both sides have sent a quarter. Each side hashes what it
// receives: the result is an error unless both streams arrived complete and unchanged.
func pacedExchange(server, client *testnet.NS, addr string, size int, midway chan<- struct{}) error {
	var ln net.Listener
	if err := server.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return err
	}
	defer ln.Close()
	deadline := time.Now().Add(90 * time.Second)
	up, down := make([]byte, size), make([]byte, size)
	rand.Read(up)
	rand.Read(down)
	var quarter sync.WaitGroup
	quarter.Add(2)
	go func() { quarter.Wait(); close(midway) }()
	// run writes its data paced (then half-closes) while it hashes what it reads.
	run := func(c *net.TCPConn, send, want []byte) error {
		c.SetDeadline(deadline)
		werr := make(chan error, 1)
		go func() {
			const chunk = 32 << 10
			for off := 0; off < len(send); off += chunk {
				if off == len(send)/4 {
					quarter.Done()
				}
				if _, err := c.Write(send[off:min(off+chunk, len(send))]); err != nil {
					werr <- err
					return
				}
				time.Sleep(8 * time.Millisecond)
			}
			werr <- c.CloseWrite()
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			c.Close()
			<-werr
			return fmt.Errorf("read after %d bytes: %w", n, err)
		}
		if err := <-werr; err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if sum := sha256.Sum256(want); n != int64(len(want)) || !bytes.Equal(h.Sum(nil), sum[:]) {
			return fmt.Errorf("received %d bytes with SHA-256 %x, sent %d with %x", n, h.Sum(nil), len(want), sum)
		}
		return nil
	}
	serr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		serr <- run(c.(*net.TCPConn), down, up)
	}()
	var c net.Conn
	if err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 10*time.Second); return err }); err != nil {
		ln.Close()
		<-serr
		return err
	}
	defer c.Close()
	cerr := run(c.(*net.TCPConn), up, down)
	if cerr != nil {
		c.Close()
		ln.Close()
	}
	if err := <-serr; err != nil {
		return fmt.Errorf("at the server: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("at the client: %w", cerr)
	}
	return nil
}
