package vici

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Client errors.
var (
	ErrUnknownCommand    = errors.New("vici: unknown command")
	ErrUnknownEvent      = errors.New("vici: unknown event")
	ErrAlreadyRegistered = errors.New("vici: event already has a handler on this client")
	ErrProtocol          = errors.New("vici: protocol violation by server")
	ErrClientClosed      = errors.New("vici: client closed")
)

// unregisterTimeout bounds the unregistrations Listen sends after its context has ended.
const unregisterTimeout = 5 * time.Second

// Client is a VICI client connection. Its methods may be called from several goroutines; requests
// are sent one at a time, because VICI responses carry no request ID.
//
// Event callbacks run on the client's reader goroutine, in the order the events arrive and before
// the response of the command that streamed them is returned. They must not call the Client.
type Client struct {
	nc      net.Conn
	callMu  sync.Mutex    // held for a whole request/reply exchange
	replies chan *Packet  // the reply to the outstanding request; capacity 1
	done    chan struct{} // closed when the reader goroutine ends

	mu       sync.Mutex
	pending  bool                                      // a request awaits its reply; guarded by mu
	handlers map[string]func(event string, m *Message) // guarded by mu
	err      error                                     // why the reader ended; guarded by mu
}

// Dial connects to the VICI socket at path ("unix://" prefix optional).
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext is Dial with a context bounding the connection attempt.
func DialContext(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", strings.TrimPrefix(path, "unix://"))
	if err != nil {
		return nil, fmt.Errorf("vici: %w", err)
	}
	return NewClient(nc), nil
}

// NewClient runs the VICI client protocol over an established connection, which the Client owns
// from then on.
func NewClient(nc net.Conn) *Client {
	c := &Client{
		nc:       nc,
		replies:  make(chan *Packet, 1),
		done:     make(chan struct{}),
		handlers: make(map[string]func(string, *Message)),
	}
	go c.readLoop()
	return c
}

// Close closes the connection and waits for the reader goroutine to end. Later calls fail with
// ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClientClosed
	}
	c.mu.Unlock()
	err := c.nc.Close()
	<-c.done
	return err
}

func (c *Client) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.nc)
	for {
		p, err := ReadPacket(r)
		if err != nil {
			c.fail(err)
			return
		}
		switch p.Type {
		case Event:
			c.mu.Lock()
			h := c.handlers[p.Name]
			c.mu.Unlock()
			if h != nil {
				h(p.Name, p.Message)
			}
		case CmdResponse, CmdUnknown, EventConfirm, EventUnknown:
			c.mu.Lock()
			expected := c.pending
			c.pending = false
			c.mu.Unlock()
			if !expected {
				c.fail(fmt.Errorf("%w: unsolicited %v", ErrProtocol, p.Type))
				return
			}
			c.replies <- p
		default:
			c.fail(fmt.Errorf("%w: %v from server", ErrProtocol, p.Type))
			return
		}
	}
}

// fail records why the connection is unusable and closes it.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

func (c *Client) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// roundTrip sends p and waits for the reply. If ctx ends first the connection is closed, because a
// late reply would otherwise be taken for the answer to the next request.
func (c *Client) roundTrip(ctx context.Context, p *Packet) (*Packet, error) {
	b, err := AppendPacket(nil, p)
	if err != nil {
		return nil, err
	}
	c.callMu.Lock()
	defer c.callMu.Unlock()
	select {
	case <-c.done:
		return nil, c.readErr()
	default:
	}
	c.mu.Lock()
	c.pending = true
	c.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetWriteDeadline(dl)
	} else {
		c.nc.SetWriteDeadline(time.Time{})
	}
	if _, err := c.nc.Write(b); err != nil {
		c.fail(err)
		<-c.done
		return nil, c.readErr()
	}
	select {
	case r := <-c.replies:
		return r, nil
	case <-c.done:
		return nil, c.readErr()
	case <-ctx.Done():
		// A reply that arrived together with the cancellation still answers this request.
		select {
		case r := <-c.replies:
			return r, nil
		default:
		}
		c.fail(ctx.Err())
		<-c.done
		return nil, ctx.Err()
	}
}

// Call sends the command cmd with request req (nil for an empty one) and returns the response. A
// command the server does not know yields ErrUnknownCommand. A response saying success = no is
// returned as is; use its Err method to turn it into an error.
func (c *Client) Call(ctx context.Context, cmd string, req *Message) (*Message, error) {
	r, err := c.roundTrip(ctx, &Packet{Type: CmdRequest, Name: cmd, Message: req})
	if err != nil {
		return nil, err
	}
	switch r.Type {
	case CmdResponse:
		return r.Message, nil
	case CmdUnknown:
		return nil, fmt.Errorf("%w: %s", ErrUnknownCommand, cmd)
	}
	c.fail(fmt.Errorf("%w: %v in reply to command %s", ErrProtocol, r.Type, cmd))
	return nil, c.readErr()
}

// CallStreaming registers for event, sends cmd and passes every event the server streams during the
// command to fn, then unregisters and returns the response, as swanctl does for list-sas (event
// list-sa), list-conns (list-conn), initiate (control-log) and the like.
func (c *Client) CallStreaming(ctx context.Context, cmd, event string, req *Message, fn func(*Message)) (*Message, error) {
	if err := c.register(ctx, event, func(_ string, m *Message) { fn(m) }); err != nil {
		return nil, err
	}
	resp, err := c.Call(ctx, cmd, req)
	if uerr := c.unregister(ctx, event); err == nil {
		err = uerr
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Listen registers for events and passes each one received to fn until ctx ends or the connection
// fails; then it unregisters. It returns ctx's error or the connection's.
func (c *Client) Listen(ctx context.Context, fn func(event string, m *Message), events ...string) error {
	var registered []string
	defer func() {
		// The registrations outlive ctx, so undo them with a context of their own.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
		defer cancel()
		for _, e := range registered {
			c.unregister(uctx, e)
		}
	}()
	for _, e := range events {
		if err := c.register(ctx, e, fn); err != nil {
			return err
		}
		registered = append(registered, e)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.readErr()
	}
}

// register installs fn for event and asks the server to send the event.
func (c *Client) register(ctx context.Context, event string, fn func(string, *Message)) error {
	c.mu.Lock()
	if _, dup := c.handlers[event]; dup {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrAlreadyRegistered, event)
	}
	c.handlers[event] = fn
	c.mu.Unlock()
	r, err := c.roundTrip(ctx, &Packet{Type: EventRegister, Name: event})
	if err == nil && r.Type != EventConfirm {
		err = fmt.Errorf("%w: %s", ErrUnknownEvent, event)
		if r.Type != EventUnknown {
			err = fmt.Errorf("%w: %v in reply to registering %s", ErrProtocol, r.Type, event)
			c.fail(err)
		}
	}
	if err != nil {
		c.mu.Lock()
		delete(c.handlers, event)
		c.mu.Unlock()
	}
	return err
}

// unregister asks the server to stop sending event and removes its handler.
func (c *Client) unregister(ctx context.Context, event string) error {
	defer func() {
		c.mu.Lock()
		delete(c.handlers, event)
		c.mu.Unlock()
	}()
	r, err := c.roundTrip(ctx, &Packet{Type: EventUnregister, Name: event})
	if err != nil {
		return err
	}
	if r.Type != EventConfirm {
		return fmt.Errorf("%w: %s", ErrUnknownEvent, event)
	}
	return nil
}
