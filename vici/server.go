package vici

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// Server limits. None is a performance target; they bound what a stuck or hostile client can cost.
const (
	// connQueueLen is how many encoded packets may wait for a connection's writer. Responses and
	// streamed events wait for room; published events that find the queue full close the
	// connection, so a client that stops reading cannot stall the daemon's event sources.
	connQueueLen = 1024
	// writeTimeout bounds a single write to a client that does not read.
	writeTimeout = 30 * time.Second
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("vici: server closed")

// errConnClosed is returned to a handler streaming to a connection that has gone away.
var errConnClosed = errors.New("vici: connection closed")

// CommandFunc serves one command. req is the request message (never nil). Events the command
// streams, such as list-sa during list-sas, go through stream and reach the client before the
// response, as in strongSwan. ctx ends when the client disconnects or the server closes.
//
// A non-nil error is sent to the client as the response {success = no, errmsg = <error text>},
// which is what swanctl prints for failed commands; the returned message is then ignored.
type CommandFunc func(ctx context.Context, req *Message, stream EventStreamer) (*Message, error)

// Handler gives the server the function for each command name.
type Handler interface {
	// Command returns the function serving the named command, or nil if no such command exists;
	// the client then gets a CMD_UNKNOWN packet.
	Command(name string) CommandFunc
}

// EventStreamer sends events to the client whose command is running.
type EventStreamer interface {
	// Registered reports whether the client registered for event, so a handler can skip building
	// messages nobody receives.
	Registered(event string) bool
	// Stream sends event with msg to the client if it registered for event, and silently does
	// nothing otherwise (as strongSwan). It fails if the connection has closed or msg cannot be
	// encoded.
	Stream(event string, msg *Message) error
}

// Registry is a Handler built from functions registered by command name.
//
// A strongSwan command nobody registered is answered so that swanctl names it in its error: with
// NotImplemented where swanctl prints errmsg, and with CMD_UNKNOWN where it ignores errmsg (see
// SwanctlShowsErrmsg). Names strongSwan does not define get CMD_UNKNOWN.
//
// It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	commands map[string]CommandFunc // guarded by mu
	events   map[string]bool        // extra event names beyond strongSwan's; guarded by mu
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{commands: make(map[string]CommandFunc), events: make(map[string]bool)}
}

// EventKnower is implemented by a Handler that defines events of its own; a client may register
// for those as well as for strongSwan's.
type EventKnower interface {
	KnowsEvent(name string) bool
}

// Event declares an event name of goipsec's own so clients may register for it.
func (r *Registry) Event(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[name] = true
}

// KnowsEvent implements EventKnower.
func (r *Registry) KnowsEvent(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.events[name]
}

// Handle registers f for the command name, replacing any earlier function.
func (r *Registry) Handle(name string, f CommandFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commands[name] = f
}

// Command implements Handler.
func (r *Registry) Command(name string) CommandFunc {
	r.mu.RLock()
	f := r.commands[name]
	r.mu.RUnlock()
	if f != nil {
		return f
	}
	if SwanctlShowsErrmsg(name) {
		return NotImplemented(name)
	}
	return nil
}

// Implemented returns the names of the registered commands, sorted.
func (r *Registry) Implemented() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.commands))
	for name := range r.commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// NotImplemented returns a CommandFunc answering {success = no, errmsg = "goipsec does not
// implement <name> yet"}.
//
// swanctl prints this as "<command> failed: goipsec does not implement <command> yet" for the
// commands whose errmsg it shows; for CMD_UNKNOWN it prints only an errno text ("<command> request
// failed: No such file or directory"). docs/vici.md has the details.
func NotImplemented(name string) CommandFunc {
	return func(context.Context, *Message, EventStreamer) (*Message, error) {
		return nil, fmt.Errorf("goipsec does not implement %s yet", name)
	}
}

// Server serves VICI clients. Create it with NewServer, start it with Serve on one or more
// listeners, stop it with Close.
//
// Lock order: Server.mu before serverConn.mu.
type Server struct {
	handler Handler
	log     *slog.Logger

	ctx    context.Context // parent of every connection's context; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection goroutines

	mu        sync.Mutex
	closed    bool                      // guarded by mu
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[*serverConn]struct{}  // guarded by mu
}

// NewServer returns a server dispatching commands to handler. A nil logger discards logs.
func NewServer(handler Handler, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		handler:   handler,
		log:       logger,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
	}
}

// Serve accepts connections on l until l fails or the server is closed, serving each in its own
// goroutines. It closes l before returning and returns ErrServerClosed after Close, or the accept
// error that ended it.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("vici: accept: %w", err)
		}
		s.startConn(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops all listeners, disconnects all clients, cancels running commands' contexts and waits
// for the connection goroutines to finish, so it returns only once every running command handler
// has returned: handlers must honour their context.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Publish sends an asynchronous event (log, ike-updown, child-updown, ike-rekey, child-rekey, ...)
// to every client registered for it and returns how many clients it was queued for. It never blocks:
// a client whose queue is full is disconnected.
func (s *Server) Publish(event string, msg *Message) (int, error) {
	b, err := AppendPacket(nil, &Packet{Type: Event, Name: event, Message: msg})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.Registered(event) && c.send(b, false) == nil {
			n++
		}
	}
	return n, nil
}

// Listening reports whether any client is registered for event, so that a publisher can skip
// building messages nobody would receive.
func (s *Server) Listening(event string) bool {
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if c.Registered(event) {
			return true
		}
	}
	return false
}

func (s *Server) startConn(nc net.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &serverConn{
		srv:    s,
		nc:     nc,
		ctx:    ctx,
		cancel: cancel,
		out:    make(chan []byte, connQueueLen),
		done:   make(chan struct{}),
		events: make(map[string]bool),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	s.log.Debug("vici: client connected")
	go c.writeLoop()
	go c.readLoop()
}

// serverConn is one client connection: readLoop decodes packets and starts commands one at a time
// in their own goroutine, writeLoop writes queued packets in order.
type serverConn struct {
	srv    *Server
	nc     net.Conn
	ctx    context.Context // canceled when the connection closes
	cancel context.CancelFunc
	out    chan []byte   // encoded packets for writeLoop
	done   chan struct{} // closed by close

	closeOnce sync.Once

	mu     sync.Mutex
	events map[string]bool // registered event names; guarded by mu
}

func (c *serverConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancel()
		c.nc.Close()
	})
}

func (c *serverConn) readLoop() {
	defer c.srv.wg.Done()
	defer func() {
		c.close()
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		c.srv.log.Debug("vici: client disconnected")
	}()
	r := bufio.NewReader(c.nc)
	// Commands run in their own goroutine so that this loop keeps reading: a client that goes away
	// mid-command is noticed at once and the command's context canceled. running is closed when the
	// active command has queued its response.
	var running chan struct{}
	for {
		p, err := ReadPacket(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.srv.log.Warn("vici: dropping client", "err", err)
			}
			return
		}
		switch p.Type {
		case CmdRequest:
			// VICI responses carry no request ID, so commands on one connection run one after
			// the other; a client that does not wait for its response simply waits here.
			if running != nil {
				select {
				case <-running:
				case <-c.done:
					return
				}
			}
			running = make(chan struct{})
			c.srv.wg.Add(1) // the reader's own count keeps the group above zero here
			go func(name string, req *Message, finished chan struct{}) {
				defer c.srv.wg.Done()
				defer close(finished)
				if !c.command(name, req) {
					c.close()
				}
			}(p.Name, p.Message, running)
		case EventRegister, EventUnregister:
			c.register(p.Type, p.Name)
		default:
			c.srv.log.Warn("vici: dropping client: unexpected packet", "type", p.Type)
			return
		}
	}
}

// command runs one command and queues its response. It reports false if the connection should
// close.
func (c *serverConn) command(name string, req *Message) (ok bool) {
	log := c.srv.log.With("command", name)
	f := c.srv.handler.Command(name)
	if f == nil {
		log.Info("vici: unknown command")
		return c.send(mustPacket(&Packet{Type: CmdUnknown}), true) == nil
	}
	log.Debug("vici: command")
	resp, err := c.run(f, req)
	if err != nil {
		if errors.Is(err, errHandlerPanic) {
			return false
		}
		resp = errorResponse(err.Error())
	}
	b, err := AppendPacket(nil, &Packet{Type: CmdResponse, Message: resp})
	if err != nil {
		// Most likely larger than MaxSegmentSize: tell the client instead of leaving it waiting.
		log.Error("vici: cannot encode response", "err", err)
		b = mustPacket(&Packet{Type: CmdResponse, Message: errorResponse("goipsec: response not encodable: " + err.Error())})
	}
	return c.send(b, true) == nil
}

var errHandlerPanic = errors.New("vici: command handler panicked")

// run calls f, turning a panic into errHandlerPanic so one faulty handler cannot take the daemon
// down; the connection that triggered it is closed.
func (c *serverConn) run(f CommandFunc, req *Message) (resp *Message, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.log.Error("vici: command handler panicked", "panic", v, "stack", string(debug.Stack()))
			resp, err = nil, errHandlerPanic
		}
	}()
	if req == nil {
		req = NewMessage()
	}
	return f(c.ctx, req, c)
}

func (c *serverConn) register(typ PacketType, event string) {
	reply := EventConfirm
	known := IsStrongSwanEvent(event)
	if k, ok := c.srv.handler.(EventKnower); ok && !known {
		known = k.KnowsEvent(event)
	}
	if !known {
		reply = EventUnknown
		c.srv.log.Info("vici: registration for unknown event", "event", event)
		c.send(mustPacket(&Packet{Type: reply}), true)
		return
	}
	c.srv.log.Debug("vici: event registration", "type", typ, "event", event)
	if typ == EventRegister {
		// No event may reach the client ahead of the confirmation (a client such as govici
		// reading the confirmation of its EVENT_REGISTER must not find an EVENT first), and an
		// event published once the client has the confirmation must reach it. So the
		// registration takes effect and the confirmation is queued in one step under c.mu,
		// which publishers take to check the registration. Only when the queue is full (a
		// client not reading) is the confirmation queued first, waiting, and the registration
		// marked after it.
		b := mustPacket(&Packet{Type: reply})
		c.mu.Lock()
		select {
		case c.out <- b:
			c.events[event] = true
			c.mu.Unlock()
			return
		default:
		}
		c.mu.Unlock()
		if c.send(b, true) != nil {
			return
		}
		c.mu.Lock()
		c.events[event] = true
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	delete(c.events, event)
	c.mu.Unlock()
	c.send(mustPacket(&Packet{Type: reply}), true)
}

// Registered implements EventStreamer.
func (c *serverConn) Registered(event string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[event]
}

// Stream implements EventStreamer.
func (c *serverConn) Stream(event string, msg *Message) error {
	if !c.Registered(event) {
		return nil
	}
	b, err := AppendPacket(nil, &Packet{Type: Event, Name: event, Message: msg})
	if err != nil {
		return err
	}
	return c.send(b, true)
}

// send queues an encoded packet. With wait it waits for room (responses and streamed events must
// not be lost); without, a full queue means the client stopped reading and it is disconnected.
func (c *serverConn) send(b []byte, wait bool) error {
	if wait {
		select {
		case c.out <- b:
			return nil
		case <-c.done:
			return errConnClosed
		}
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return errConnClosed
	default:
		c.srv.log.Warn("vici: dropping client: not reading its events", "queued", len(c.out))
		c.close()
		return errConnClosed
	}
}

func (c *serverConn) writeLoop() {
	defer c.srv.wg.Done()
	for {
		select {
		case b := <-c.out:
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(b); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					c.srv.log.Warn("vici: dropping client: write failed", "err", err)
				}
				c.close()
				return
			}
		case <-c.done:
			return
		}
	}
}

// maxErrmsgLen keeps error responses far below every size limit, whatever a handler's error says.
const maxErrmsgLen = 4096

// errorResponse is strongSwan's failure convention, {success = no, errmsg = text}.
func errorResponse(text string) *Message {
	if len(text) > maxErrmsgLen {
		text = text[:maxErrmsgLen]
	}
	return NewMessage().Set("success", "no").Set("errmsg", text)
}

// mustPacket encodes packets that cannot fail: fixed types without names or with small messages.
func mustPacket(p *Packet) []byte {
	b, err := AppendPacket(nil, p)
	if err != nil {
		panic("vici: encoding a fixed packet: " + err.Error())
	}
	return b
}
