package vici

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	govici "github.com/strongswan/govici/vici"
)

// socketDir returns a fresh directory for a unix socket. Not t.TempDir: socket paths must fit in
// sun_path (108 bytes) and test names are long.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vici")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testLogger sends server logs to the test log, so failures show what the server saw.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// startServer serves h on a fresh unix socket and returns the server and the socket path. Cleanup
// closes the server and checks that Serve returned ErrServerClosed.
func startServer(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	path := filepath.Join(socketDir(t), "vici.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, testLogger(t))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, path
}

// rawConn is a client speaking the packet layer directly, for what no well-behaved client sends.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(p *Packet) {
	c.t.Helper()
	if err := WritePacket(c.nc, p); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) recv() *Packet {
	c.t.Helper()
	p, err := ReadPacket(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *rawConn) register(event string) {
	c.t.Helper()
	c.send(&Packet{Type: EventRegister, Name: event})
	if p := c.recv(); p.Type != EventConfirm {
		c.t.Fatalf("registering %s: got %v", event, p.Type)
	}
}

// stream registers for event, sends cmd and returns the events that came before the response
// (and the response). Unlike govici 0.8.0, which picks at random between an event and the
// response that are both waiting, the packet layer keeps their order.
func (c *rawConn) stream(cmd, event string, req *Message) ([]*Message, *Message) {
	c.t.Helper()
	c.register(event)
	c.send(&Packet{Type: CmdRequest, Name: cmd, Message: req})
	var events []*Message
	for {
		p := c.recv()
		switch p.Type {
		case Event:
			events = append(events, p.Message)
			continue
		case CmdResponse:
		default:
			c.t.Fatalf("%s: got %v", cmd, p.Type)
		}
		c.send(&Packet{Type: EventUnregister, Name: event})
		if p := c.recv(); p.Type != EventConfirm {
			c.t.Fatalf("unregistering %s: got %v", event, p.Type)
		}
		return events, p.Message
	}
}

func versionHandler(context.Context, *Message, EventStreamer) (*Message, error) {
	return NewMessage().Set("daemon", "goipsec").Set("version", "0.1.0"), nil
}

func TestCall(t *testing.T) {
	reg := NewRegistry()
	reg.Handle("version", versionHandler)
	reg.Handle("echo-args", func(_ context.Context, req *Message, _ EventStreamer) (*Message, error) {
		return NewMessage().SetSection("got", req), nil
	})
	_, path := startServer(t, reg)
	c := dial(t, path)
	ctx := context.Background()

	resp, err := c.Call(ctx, "version", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get("daemon") != "goipsec" || resp.Get("version") != "0.1.0" {
		t.Fatalf("version: %s", resp)
	}
	req := readmeExampleMessage()
	resp, err = c.Call(ctx, "echo-args", req)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Section("got").Equal(req) {
		t.Fatalf("request arrived as %s", resp)
	}
}

func TestUnknownAndUnimplementedCommands(t *testing.T) {
	_, path := startServer(t, NewRegistry())
	c := dial(t, path)
	ctx := context.Background()

	_, err := c.Call(ctx, "no-such-command", nil)
	if !errors.Is(err, ErrUnknownCommand) || err.Error() != "vici: unknown command: no-such-command" {
		t.Fatalf("unknown command: %v", err)
	}
	// A strongSwan command whose errmsg swanctl prints gets a normal failure response.
	resp, err := c.Call(ctx, "initiate", NewMessage().Set("child", "net"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get("success") != "no" || resp.Get("errmsg") != "goipsec does not implement initiate yet" {
		t.Fatalf("initiate: %s", resp)
	}
	if !errors.Is(resp.Err(), ErrCommandFailed) {
		t.Fatalf("Err: %v", resp.Err())
	}
	// One whose errmsg swanctl ignores gets CMD_UNKNOWN, so swanctl at least names it and fails.
	if _, err := c.Call(ctx, "list-sas", nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("list-sas: %v", err)
	}
	// The connection is still usable after both.
	if _, err := c.Call(ctx, "no-such-command", nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("after errors: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	reg.Handle("version", versionHandler)
	reg.Handle("list-sas", versionHandler)
	if got := reg.Implemented(); !slices.Equal(got, []string{"list-sas", "version"}) {
		t.Fatalf("Implemented = %q", got)
	}
	for _, name := range StrongSwanCommands() {
		f := reg.Command(name)
		switch {
		case name == "version" || name == "list-sas":
			if f == nil {
				t.Errorf("%s: registered handler not returned", name)
			}
		case SwanctlShowsErrmsg(name):
			if f == nil {
				t.Errorf("%s: want NotImplemented", name)
				continue
			}
			resp, err := f(context.Background(), NewMessage(), nil)
			if resp != nil || err == nil || err.Error() != "goipsec does not implement "+name+" yet" {
				t.Errorf("%s: %v, %v", name, resp, err)
			}
		default:
			if f != nil {
				t.Errorf("%s: want nil (CMD_UNKNOWN)", name)
			}
		}
	}
	if reg.Command("not-strongswan") != nil {
		t.Error("unknown name must have no handler")
	}
}

func TestNames(t *testing.T) {
	if got := len(StrongSwanCommands()); got != 36 {
		t.Errorf("%d commands, strongSwan 5.9.8 has 36", got)
	}
	if got := len(StrongSwanEvents()); got != 12 {
		t.Errorf("%d events, strongSwan 5.9.8 has 12", got)
	}
	if !IsStrongSwanCommand("list-conns") || IsStrongSwanCommand("list-conn") {
		t.Error("IsStrongSwanCommand")
	}
	if !IsStrongSwanEvent("list-conn") || IsStrongSwanEvent("list-conns") {
		t.Error("IsStrongSwanEvent")
	}
	if !SwanctlShowsErrmsg("load-conn") || SwanctlShowsErrmsg("list-conns") || SwanctlShowsErrmsg("x") {
		t.Error("SwanctlShowsErrmsg")
	}
	names := StrongSwanCommands()
	names[0] = "changed"
	if StrongSwanCommands()[0] == "changed" {
		t.Error("StrongSwanCommands exposes the table")
	}
}

func TestHandlerErrorBecomesErrmsg(t *testing.T) {
	reg := NewRegistry()
	reg.Handle("load-conn", func(context.Context, *Message, EventStreamer) (*Message, error) {
		return NewMessage().Set("ignored", "yes"), errors.New("invalid proposal 'aes999'")
	})
	reg.Handle("long-error", func(context.Context, *Message, EventStreamer) (*Message, error) {
		return nil, errors.New(strings.Repeat("e", 100000))
	})
	_, path := startServer(t, reg)
	c := dial(t, path)
	resp, err := c.Call(context.Background(), "load-conn", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := NewMessage().Set("success", "no").Set("errmsg", "invalid proposal 'aes999'")
	if !resp.Equal(want) {
		t.Fatalf("response %s, want %s", resp, want)
	}
	resp, err = c.Call(context.Background(), "long-error", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Get("errmsg")) != maxErrmsgLen {
		t.Fatalf("errmsg of %d bytes", len(resp.Get("errmsg")))
	}
}

func TestOversizedResponse(t *testing.T) {
	reg := NewRegistry()
	reg.Handle("huge", func(context.Context, *Message, EventStreamer) (*Message, error) {
		m := NewMessage()
		for i := range 10 {
			m.Set(fmt.Sprint(i), strings.Repeat("x", MaxValueLen))
		}
		return m, nil
	})
	_, path := startServer(t, reg)
	resp, err := dial(t, path).Call(context.Background(), "huge", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get("success") != "no" || !strings.Contains(resp.Get("errmsg"), "exceeds 524288") {
		t.Fatalf("response %s", resp)
	}
}

// listSAs streams n list-sa events, as charon does for list-sas, then answers with an empty
// response. It records whether the client had registered.
type listSAs struct {
	n          int
	registered chan bool
}

func (h *listSAs) serve(ctx context.Context, req *Message, st EventStreamer) (*Message, error) {
	h.registered <- st.Registered("list-sa")
	for i := range h.n {
		ev := NewMessage()
		ev.AddSection(fmt.Sprintf("conn%d", i)).Set("uniqueid", fmt.Sprint(i+1)).SetSection("child-sas", nil)
		if err := st.Stream("list-sa", ev); err != nil {
			return nil, err
		}
	}
	return NewMessage(), nil
}

func TestCallStreaming(t *testing.T) {
	h := &listSAs{n: 50, registered: make(chan bool, 2)}
	reg := NewRegistry()
	reg.Handle("list-sas", h.serve)
	_, path := startServer(t, reg)
	// The packet layer, not govici: govici v0.8.0 waits for streamed events and the command's
	// response on two channels in one select, so events still queued when the response arrives
	// can be dropped; this test checks that the server sends all of them, in order, before the
	// response, and needs a client that reads the stream as it is.
	raw := dialRaw(t, path)
	raw.register("list-sa")
	raw.send(&Packet{Type: CmdRequest, Name: "list-sas", Message: NewMessage()})
	var got []string
	for {
		p := raw.recv()
		if p.Type == CmdResponse {
			if p.Message.Len() != 0 {
				t.Fatalf("response %s", p.Message)
			}
			break
		}
		if p.Type != Event || p.Name != "list-sa" {
			t.Fatalf("unexpected %v %s", p.Type, p.Name)
		}
		got = append(got, p.Message.Keys()...)
	}
	raw.send(&Packet{Type: EventUnregister, Name: "list-sa"})
	if p := raw.recv(); p.Type != EventConfirm {
		t.Fatalf("unregistering: %v", p.Type)
	}
	c := dial(t, path)
	if !<-h.registered {
		t.Fatal("handler did not see the registration")
	}
	// Every event arrived, in order, before the response (the callback ran before Call returned).
	if len(got) != h.n || got[0] != "conn0" || got[h.n-1] != fmt.Sprintf("conn%d", h.n-1) {
		t.Fatalf("events %q", got)
	}

	// Without registration the handler streams into the void, as strongSwan does.
	if _, err := c.Call(context.Background(), "list-sas", nil); err != nil {
		t.Fatal(err)
	}
	if <-h.registered {
		t.Fatal("registration survived CallStreaming")
	}
}

func TestRegisterUnknownEvent(t *testing.T) {
	_, path := startServer(t, NewRegistry())
	c := dial(t, path)
	err := c.CallStreaming(context.Background(), "list-sas", "no-such-event", nil, func(*Message) {})
	if !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("got %v", err)
	}
	raw := dialRaw(t, path)
	raw.send(&Packet{Type: EventRegister, Name: "no-such-event"})
	if p := raw.recv(); p.Type != EventUnknown {
		t.Fatalf("register: %v", p.Type)
	}
	raw.send(&Packet{Type: EventUnregister, Name: "no-such-event"})
	if p := raw.recv(); p.Type != EventUnknown {
		t.Fatalf("unregister: %v", p.Type)
	}
	// Unregistering a known event one never registered is confirmed, as by charon.
	raw.send(&Packet{Type: EventUnregister, Name: "log"})
	if p := raw.recv(); p.Type != EventConfirm {
		t.Fatalf("unregister log: %v", p.Type)
	}
}

// TestRegisterDeclaredEvent: an event the handler declares (goipsec's own) can be registered; an
// undeclared one still cannot.
func TestRegisterDeclaredEvent(t *testing.T) {
	reg := NewRegistry()
	reg.Event("goipsec-own")
	_, path := startServer(t, reg)
	raw := dialRaw(t, path)
	raw.send(&Packet{Type: EventRegister, Name: "goipsec-own"})
	if p := raw.recv(); p.Type != EventConfirm {
		t.Fatalf("register goipsec-own: %v", p.Type)
	}
	raw.send(&Packet{Type: EventRegister, Name: "goipsec-other"})
	if p := raw.recv(); p.Type != EventUnknown {
		t.Fatalf("register goipsec-other: %v", p.Type)
	}
}

func TestPublish(t *testing.T) {
	srv, path := startServer(t, NewRegistry())
	logs, updown, none := dialRaw(t, path), dialRaw(t, path), dialRaw(t, path)
	logs.register("log")
	updown.register("ike-updown")
	updown.register("child-updown")
	_ = none

	n, err := srv.Publish("log", NewMessage().Set("group", "IKE").Set("msg", "hello"))
	if err != nil || n != 1 {
		t.Fatalf("Publish log: %d, %v", n, err)
	}
	n, err = srv.Publish("ike-updown", NewMessage().Set("up", "yes"))
	if err != nil || n != 1 {
		t.Fatalf("Publish ike-updown: %d, %v", n, err)
	}
	if n, _ := srv.Publish("ike-rekey", NewMessage()); n != 0 {
		t.Fatalf("Publish without listeners reached %d", n)
	}
	if p := logs.recv(); p.Type != Event || p.Name != "log" || p.Message.Get("msg") != "hello" {
		t.Fatalf("log client got %+v", p)
	}
	if p := updown.recv(); p.Type != Event || p.Name != "ike-updown" || p.Message.Get("up") != "yes" {
		t.Fatalf("updown client got %+v", p)
	}

	// After unregistering, nothing more arrives; the next packet is the confirm.
	logs.send(&Packet{Type: EventUnregister, Name: "log"})
	if p := logs.recv(); p.Type != EventConfirm {
		t.Fatalf("unregister: %v", p.Type)
	}
	if n, _ := srv.Publish("log", NewMessage()); n != 0 {
		t.Fatalf("Publish after unregister reached %d", n)
	}

	if _, err := srv.Publish("log", NewMessage().Set(strings.Repeat("k", 300), "")); !errors.Is(err, ErrNameTooLong) {
		t.Fatalf("unencodable event: %v", err)
	}
}

func TestListen(t *testing.T) {
	srv, path := startServer(t, NewRegistry())
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	type event struct{ name, msg string }
	got := make(chan event, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(ctx, func(name string, m *Message) {
			got <- event{name, m.Get("msg")}
		}, "log", "ike-updown")
	}()
	// Publish only reaches registered clients, so publishing until one is reached tells when
	// Listen's registrations are in place; nothing published before that is delivered.
	for {
		n, err := srv.Publish("ike-updown", NewMessage().Set("msg", "first"))
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	if _, err := srv.Publish("log", NewMessage().Set("msg", "second")); err != nil {
		t.Fatal(err)
	}
	if e := <-got; e != (event{"ike-updown", "first"}) {
		t.Fatalf("first event %+v", e)
	}
	if e := <-got; e != (event{"log", "second"}) {
		t.Fatalf("second event %+v", e)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen returned %v", err)
	}
	// Listen unregistered before returning: nothing reaches the client any more, and the client
	// still works.
	if n, _ := srv.Publish("log", NewMessage()); n != 0 {
		t.Fatalf("Publish after Listen reached %d", n)
	}
	if _, err := c.Call(context.Background(), "no-such", nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("Call after Listen: %v", err)
	}
}

// TestStreamAndPublishDoNotInterleave runs a streaming command while other goroutines publish to
// the same connection, and checks every packet arrives whole and the response comes last.
func TestStreamAndPublishDoNotInterleave(t *testing.T) {
	const events, publishers, perPublisher = 200, 4, 100
	h := &listSAs{n: events, registered: make(chan bool, 1)}
	reg := NewRegistry()
	reg.Handle("list-sas", h.serve)
	srv, path := startServer(t, reg)
	raw := dialRaw(t, path)
	raw.register("list-sa")
	raw.register("log")

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				srv.Publish("log", NewMessage().Set("msg", fmt.Sprintf("%d/%d", p, i)).Set("pad", strings.Repeat("p", 1000)))
			}
		}()
	}
	raw.send(&Packet{Type: CmdRequest, Name: "list-sas"})
	listSA, logs := 0, 0
	for {
		p := raw.recv()
		if p.Type == CmdResponse {
			break
		}
		if p.Type != Event {
			t.Fatalf("unexpected %v", p.Type)
		}
		switch p.Name {
		case "list-sa":
			if want := fmt.Sprintf("conn%d", listSA); p.Message.Keys()[0] != want {
				t.Fatalf("list-sa out of order: %s, want %s", p.Message.Keys()[0], want)
			}
			listSA++
		case "log":
			logs++
		}
	}
	wg.Wait()
	if listSA != events {
		t.Fatalf("%d list-sa events before the response, want %d", listSA, events)
	}
	for logs < publishers*perPublisher {
		if p := raw.recv(); p.Name != "log" {
			t.Fatalf("unexpected %v %s", p.Type, p.Name)
		}
		logs++
	}
}

func TestProtocolViolationsCloseConnection(t *testing.T) {
	cases := map[string][]byte{
		"response from client": {0, 0, 0, 1, byte(CmdResponse)},
		"event from client":    {0, 0, 0, 3, byte(Event), 1, 'x'},
		"confirm from client":  {0, 0, 0, 1, byte(EventConfirm)},
		"bad packet type":      {0, 0, 0, 1, 42},
		"oversized segment":    {0xff, 0, 0, 0},
		"malformed message":    {0, 0, 0, 4, byte(CmdRequest), 1, 'x', 6},
	}
	reg := NewRegistry()
	reg.Handle("version", versionHandler)
	_, path := startServer(t, reg)
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			raw := dialRaw(t, path)
			if _, err := raw.nc.Write(in); err != nil {
				t.Fatal(err)
			}
			if p, err := ReadPacket(raw.r); err != io.EOF {
				t.Fatalf("connection not closed: %+v, %v", p, err)
			}
		})
	}
	// The server still serves others.
	if _, err := dial(t, path).Call(context.Background(), "version", nil); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	reg := NewRegistry()
	reg.Handle("boom", func(context.Context, *Message, EventStreamer) (*Message, error) {
		panic("handler bug")
	})
	reg.Handle("version", versionHandler)
	_, path := startServer(t, reg)
	c := dial(t, path)
	if _, err := c.Call(context.Background(), "boom", nil); err == nil {
		t.Fatal("Call survived a panicking handler")
	}
	if _, err := dial(t, path).Call(context.Background(), "version", nil); err != nil {
		t.Fatal(err)
	}
}

// TestClientDisconnectCancelsCommand: a command's context ends when its client goes away, even
// while the command is still running.
func TestClientDisconnectCancelsCommand(t *testing.T) {
	started, canceled := make(chan struct{}), make(chan struct{})
	reg := NewRegistry()
	reg.Handle("initiate", func(ctx context.Context, _ *Message, _ EventStreamer) (*Message, error) {
		close(started)
		<-ctx.Done()
		close(canceled)
		return nil, ctx.Err()
	})
	_, path := startServer(t, reg)
	raw := dialRaw(t, path)
	raw.send(&Packet{Type: CmdRequest, Name: "initiate"})
	<-started
	raw.nc.Close()
	<-canceled
}

// TestCallContextCanceled: a Call whose context ends gives up and closes the client, since the
// late response would otherwise answer the next request.
func TestCallContextCanceled(t *testing.T) {
	release := make(chan struct{})
	reg := NewRegistry()
	reg.Handle("initiate", func(ctx context.Context, _ *Message, _ EventStreamer) (*Message, error) {
		<-release
		return NewMessage(), nil
	})
	_, path := startServer(t, reg)
	defer close(release)
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "initiate", nil)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call returned %v", err)
	}
	if _, err := c.Call(context.Background(), "version", nil); err == nil {
		t.Fatal("client still usable after an abandoned call")
	}
}

func TestServerCloseCancelsCommands(t *testing.T) {
	started := make(chan struct{})
	reg := NewRegistry()
	reg.Handle("initiate", func(ctx context.Context, _ *Message, _ EventStreamer) (*Message, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	path := filepath.Join(socketDir(t), "vici.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, testLogger(t))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := dial(t, path)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "initiate", nil)
		errc <- err
	}()
	<-started
	srv.Close() // returns only after the handler returned
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-errc; err == nil {
		t.Fatal("Call succeeded on a closed server")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestSlowConsumerIsDisconnected: a client that registers for events and stops reading is dropped
// once its queue is full, instead of blocking Publish.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	srv, path := startServer(t, NewRegistry())
	raw := dialRaw(t, path)
	raw.register("log")
	msg := NewMessage().Set("msg", strings.Repeat("x", 4096))
	published := 0
	for {
		n, err := srv.Publish("log", msg)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		published++
	}
	if published < connQueueLen {
		t.Fatalf("dropped after %d events, queue holds %d", published, connQueueLen)
	}
	// What was written before the drop is still readable, then the connection ends.
	for {
		p, err := ReadPacket(raw.r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading after drop: %v", err)
			}
			break
		}
		if p.Name != "log" {
			t.Fatalf("unexpected %+v", p)
		}
	}
}

func TestCommandsOnOneConnectionRunInOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	reg := NewRegistry()
	for _, name := range []string{"a", "b", "c"} {
		reg.Handle(name, func(context.Context, *Message, EventStreamer) (*Message, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return NewMessage().Set("name", name), nil
		})
	}
	_, path := startServer(t, reg)
	raw := dialRaw(t, path)
	// A client that does not wait for responses: requests queue up and are answered in order.
	for _, name := range []string{"a", "b", "c"} {
		raw.send(&Packet{Type: CmdRequest, Name: name})
	}
	for _, name := range []string{"a", "b", "c"} {
		if p := raw.recv(); p.Type != CmdResponse || p.Message.Get("name") != name {
			t.Fatalf("got %+v, want response from %s", p, name)
		}
	}
	if strings.Join(order, "") != "abc" {
		t.Fatalf("ran in order %q", order)
	}
}

// TestNoGoroutineLeak: once the server and its clients are closed, every goroutine they started
// has ended (Server.Close and Client.Close wait for their own).
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	h := &listSAs{n: 3, registered: make(chan bool, 1)}
	reg := NewRegistry()
	reg.Handle("list-sas", h.serve)
	path := filepath.Join(socketDir(t), "vici.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c, err := govici.NewSession(govici.WithSocketPath(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range c.CallStreaming(context.Background(), "list-sas", "list-sa", nil) {
		if err != nil {
			t.Fatal(err)
		}
	}
	idle, err := govici.NewSession(govici.WithSocketPath(path)) // left connected: Close must end its server side
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Close()
	<-served
	idle.Close()
	// govici's reader goroutines end asynchronously after Close: give them a moment.
	for range 200 {
		if runtime.NumGoroutine() <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// TestRegisterConfirmedBeforeEvents: while events are published without pause, the answer to
// EVENT_REGISTER is always the first packet the client gets after it (an event never overtakes
// the confirmation; govici's Subscribe hung when one did), and events follow once registered.
func TestRegisterConfirmedBeforeEvents(t *testing.T) {
	srv, path := startServer(t, NewRegistry())
	raw := dialRaw(t, path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				srv.Publish("log", NewMessage().Set("msg", "x"))
				time.Sleep(50 * time.Microsecond) // slower than the client reads: never dropped
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for range 100 {
		raw.register("log") // fails unless the next packet is EVENT_CONFIRM
		if p := raw.recv(); p.Type != Event || p.Name != "log" {
			t.Fatalf("after registering: %v %q, want a log event", p.Type, p.Name)
		}
		raw.send(&Packet{Type: EventUnregister, Name: "log"})
		for p := raw.recv(); p.Type != EventConfirm; p = raw.recv() {
			if p.Type != Event { // events queued before the unregistration may still arrive
				t.Fatalf("unregistering: got %v", p.Type)
			}
		}
	}
}
