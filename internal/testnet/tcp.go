package testnet

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// transferTimeout bounds a whole TCPTransfer so a broken tunnel fails the test instead of hanging it.
// It is a hang guard sized for slow userspace data planes under the race detector, not a speed check.
const transferTimeout = 3 * time.Minute

// transferResult is what one side of a TCPTransfer received.
type transferResult struct {
	n   int64
	sum [sha256.Size]byte
	err error
}

// TCPTransfer listens on addr inside server, connects from client, and sends size random bytes in each
// direction at the same time; each side hashes what it receives and the test fails, naming the
// direction, unless both hashes and lengths match what was sent. addr is "host:port" or just a host
// (then the port is picked by the kernel); the host must be an address of server.
func TCPTransfer(t testing.TB, server, client *NS, addr string, size int) {
	t.Helper()
	listenAddr, err := normalizeHostPort(addr)
	if err != nil {
		t.Fatalf("testnet: TCPTransfer: %v", err)
	}
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp", listenAddr)
		return err
	}); err != nil {
		t.Fatalf("testnet: TCPTransfer: listen in %s: %v", server, err)
	}
	defer ln.Close()
	target := ln.Addr().String()

	fromClient := make([]byte, size)
	fromServer := make([]byte, size)
	rand.Read(fromClient)
	rand.Read(fromServer)
	deadline := time.Now().Add(transferTimeout)

	serverDone := make(chan transferResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverDone <- transferResult{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		serverDone <- exchange(c.(*net.TCPConn), fromServer)
	}()

	var conn net.Conn
	if err := client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", target, 30*time.Second)
		return err
	}); err != nil {
		ln.Close()
		t.Fatalf("testnet: TCPTransfer: dial %s from %s: %v", target, client, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	clientGot := exchange(conn.(*net.TCPConn), fromClient)
	if clientGot.err != nil {
		// Unblock the server side so its goroutine ends.
		conn.Close()
		ln.Close()
	}
	serverGot := <-serverDone

	check := func(dir string, got transferResult, sent []byte) {
		t.Helper()
		want := sha256.Sum256(sent)
		switch {
		case got.err != nil:
			t.Errorf("testnet: TCPTransfer %s via %s: %v (after %d of %d bytes)", dir, target, got.err, got.n, len(sent))
		case got.n != int64(len(sent)) || !bytes.Equal(got.sum[:], want[:]):
			t.Errorf("testnet: TCPTransfer %s via %s: received %d bytes with SHA-256 %x, sent %d bytes with SHA-256 %x",
				dir, target, got.n, got.sum, len(sent), want)
		}
	}
	check(client.short+"->"+server.short, serverGot, fromClient)
	check(server.short+"->"+client.short, clientGot, fromServer)
	if t.Failed() {
		t.FailNow()
	}
}

// exchange writes send (then half-closes) while reading and hashing everything the peer sends.
func exchange(c *net.TCPConn, send []byte) transferResult {
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(send)
		if err == nil {
			err = c.CloseWrite()
		}
		writeErr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	var res transferResult
	res.n = n
	copy(res.sum[:], h.Sum(nil))
	if err != nil {
		res.err = fmt.Errorf("read: %w", err)
		c.Close() // unblocks the writer
	}
	if werr := <-writeErr; werr != nil && res.err == nil {
		res.err = fmt.Errorf("write: %w", werr)
	}
	return res
}

// normalizeHostPort accepts "host", "host:port", "[v6]:port" and a bare IPv6 address.
func normalizeHostPort(addr string) (string, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return netip.AddrPortFrom(a, 0).String(), nil
	}
	return "", fmt.Errorf("address %q: want an IP address with optional port", addr)
}
