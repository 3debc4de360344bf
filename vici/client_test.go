package vici

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
)

// pipeClient returns a Client over an in-memory connection and the server end for the test to
// script.
func pipeClient(t *testing.T) (*Client, *rawConn) {
	cli, srv := net.Pipe()
	c := NewClient(cli)
	t.Cleanup(func() {
		srv.Close()
		c.Close()
	})
	return c, &rawConn{t: t, nc: srv, r: bufio.NewReader(srv)}
}

// expectClosed waits until the client has closed its end, which it does on a protocol violation.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	if p, err := ReadPacket(c.r); err != io.EOF {
		c.t.Fatalf("client did not close: %+v, %v", p, err)
	}
}

func TestClientUnsolicitedReply(t *testing.T) {
	c, srv := pipeClient(t)
	srv.send(&Packet{Type: CmdResponse})
	srv.expectClosed()
	if _, err := c.Call(context.Background(), "version", nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrProtocol", err)
	}
}

func TestClientWrongReplyType(t *testing.T) {
	c, srv := pipeClient(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "version", nil)
		errc <- err
	}()
	if p := srv.recv(); p.Type != CmdRequest || p.Name != "version" {
		t.Fatalf("server got %+v", p)
	}
	srv.send(&Packet{Type: EventConfirm})
	if err := <-errc; !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrProtocol", err)
	}
}

func TestClientServerSendsRequest(t *testing.T) {
	c, srv := pipeClient(t)
	srv.send(&Packet{Type: CmdRequest, Name: "version"})
	srv.expectClosed()
	if _, err := c.Call(context.Background(), "version", nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrProtocol", err)
	}
}

func TestClientServerGone(t *testing.T) {
	c, srv := pipeClient(t)
	srv.nc.Close()
	// Whichever notices first: the reader (EOF) or the request's write (closed pipe).
	if _, err := c.Call(context.Background(), "version", nil); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("got %v, want io.EOF or io.ErrClosedPipe", err)
	}
}

func TestClientClosed(t *testing.T) {
	c, _ := pipeClient(t)
	c.Close()
	if _, err := c.Call(context.Background(), "version", nil); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("got %v, want ErrClientClosed", err)
	}
}

// TestListenProtocol scripts the server side of Listen: one registration per event, events passed
// to the callback, and one unregistration per event once the context ends.
func TestListenProtocol(t *testing.T) {
	c, srv := pipeClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(ctx, func(name string, m *Message) { got <- name + " " + m.Get("msg") }, "log", "ike-updown")
	}()
	for _, want := range []string{"log", "ike-updown"} {
		if p := srv.recv(); p.Type != EventRegister || p.Name != want {
			t.Fatalf("got %v %s, want EVENT_REGISTER %s", p.Type, p.Name, want)
		}
		srv.send(&Packet{Type: EventConfirm})
	}
	srv.send(&Packet{Type: Event, Name: "ike-updown", Message: NewMessage().Set("msg", "a")})
	srv.send(&Packet{Type: Event, Name: "unregistered", Message: NewMessage().Set("msg", "dropped")})
	srv.send(&Packet{Type: Event, Name: "log", Message: NewMessage().Set("msg", "b")})
	if g := <-got; g != "ike-updown a" {
		t.Fatalf("first event %q", g)
	}
	if g := <-got; g != "log b" {
		t.Fatalf("second event %q", g)
	}
	cancel()
	for _, want := range []string{"log", "ike-updown"} {
		if p := srv.recv(); p.Type != EventUnregister || p.Name != want {
			t.Fatalf("got %v %s, want EVENT_UNREGISTER %s", p.Type, p.Name, want)
		}
		srv.send(&Packet{Type: EventConfirm})
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen returned %v", err)
	}
}

// TestListenUnknownEventUndoesRegistrations: when a later registration fails, the earlier ones are
// unregistered before Listen returns.
func TestListenUnknownEventUndoesRegistrations(t *testing.T) {
	c, srv := pipeClient(t)
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(context.Background(), func(string, *Message) {}, "log", "bogus")
	}()
	srv.recv()
	srv.send(&Packet{Type: EventConfirm})
	if p := srv.recv(); p.Name != "bogus" {
		t.Fatalf("got %+v", p)
	}
	srv.send(&Packet{Type: EventUnknown})
	if p := srv.recv(); p.Type != EventUnregister || p.Name != "log" {
		t.Fatalf("got %v %s, want EVENT_UNREGISTER log", p.Type, p.Name)
	}
	srv.send(&Packet{Type: EventConfirm})
	if err := <-done; !errors.Is(err, ErrUnknownEvent) || err.Error() != "vici: unknown event: bogus" {
		t.Fatalf("Listen returned %v", err)
	}
}
