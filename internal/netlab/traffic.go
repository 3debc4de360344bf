package netlab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingResult summarises a ping run.
type PingResult struct {
	Sent, Received int
	Min, Avg, Max  time.Duration
}

func (r PingResult) String() string {
	if r.Received == 0 {
		return fmt.Sprintf("%d sent, 0 received", r.Sent)
	}
	return fmt.Sprintf("%d sent, %d received, rtt min/avg/max %s/%s/%s", r.Sent, r.Received,
		r.Min.Round(time.Microsecond), r.Avg.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

// Ping sends count ICMP echo requests from src to dst inside the namespace, one every interval,
// waiting up to timeout for each reply.
func (ns *NS) Ping(src, dst netip.Addr, count int, interval, timeout time.Duration) (PingResult, error) {
	var c *icmp.PacketConn
	network, proto := "ip4:icmp", 1
	var reqType icmp.Type = ipv4.ICMPTypeEcho
	if dst.Is6() {
		network, proto, reqType = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest
	}
	err := ns.Do(func() error {
		var err error
		c, err = icmp.ListenPacket(network, src.String())
		return err
	})
	if err != nil {
		return PingResult{}, fmt.Errorf("ping socket in %s: %w", ns.Name, err)
	}
	defer c.Close()
	res := PingResult{}
	var rtts []time.Duration
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("goipsec ping")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return res, err
		}
		start := time.Now()
		if _, err := c.WriteTo(wb, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return res, fmt.Errorf("ping %s: %w", dst, err)
		}
		res.Sent++
		deadline := start.Add(timeout)
		for {
			c.SetReadDeadline(deadline)
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: lost
			}
			rm, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil {
				continue
			}
			if echo, ok := rm.Body.(*icmp.Echo); ok && (rm.Type == ipv4.ICMPTypeEchoReply || rm.Type == ipv6.ICMPTypeEchoReply) && echo.Seq == seq {
				rtts = append(rtts, time.Since(start))
				res.Received++
				break
			}
		}
		if seq < count {
			time.Sleep(interval)
		}
	}
	if len(rtts) > 0 {
		sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
		var sum time.Duration
		for _, d := range rtts {
			sum += d
		}
		res.Min, res.Max, res.Avg = rtts[0], rtts[len(rtts)-1], sum/time.Duration(len(rtts))
	}
	return res, nil
}

// ThroughputResult is the outcome of a TCP bulk transfer.
type ThroughputResult struct {
	Bytes    int64
	Duration time.Duration
}

// Gbps is the goodput in Gbit/s.
func (r ThroughputResult) Gbps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Duration.Seconds() / 1e9
}

// Throughput runs one TCP stream from client (namespace, source address) to a listener on dst in
// server for the given duration and measures what the server received.
func Throughput(ctx context.Context, client *NS, src netip.Addr, server *NS, dst netip.AddrPort, d time.Duration) (ThroughputResult, error) {
	var ln net.Listener
	if err := server.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		return ThroughputResult{}, fmt.Errorf("listen in %s: %w", server.Name, err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		dur time.Duration
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		got <- result{n, time.Since(start), err}
	}()
	var conn net.Conn
	if err := client.Do(func() error {
		var err error
		dialer := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = dialer.DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		return ThroughputResult{}, fmt.Errorf("connect from %s to %s: %w", client.Name, dst, err)
	}
	chunk := make([]byte, 128<<10)
	rand.Read(chunk)
	deadline := time.Now().Add(d)
	conn.SetWriteDeadline(deadline.Add(5 * time.Second))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := conn.Write(chunk); err != nil {
			conn.Close()
			return ThroughputResult{}, fmt.Errorf("send: %w", err)
		}
	}
	conn.Close()
	select {
	case r := <-got:
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return ThroughputResult{}, r.err
		}
		return ThroughputResult{Bytes: r.n, Duration: r.dur}, nil
	case <-time.After(10 * time.Second):
		return ThroughputResult{}, errors.New("receiver did not finish")
	}
}

// Echo sends size random bytes over TCP from client (bound to src) to an echo server on dst in
// server, reads them back and checks they came back unchanged — a byte-checked transfer in both
// directions.
func Echo(ctx context.Context, client *NS, src netip.Addr, server *NS, dst netip.AddrPort, size int) error {
	var ln net.Listener
	if err := server.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		return fmt.Errorf("listen in %s: %w", server.Name, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var conn net.Conn
	if err := client.Do(func() error {
		var err error
		dialer := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = dialer.DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		return fmt.Errorf("connect from %s to %s: %w", client.Name, dst, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	sent := make([]byte, size)
	rand.Read(sent)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(sent)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("read echo: %w (got %d of %d bytes)", err, len(got), size)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if len(got) != size {
		return fmt.Errorf("echo returned %d bytes, sent %d", len(got), size)
	}
	for i := range got {
		if got[i] != sent[i] {
			return fmt.Errorf("echo differs from what was sent at byte %d", i)
		}
	}
	return nil
}
