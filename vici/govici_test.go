package vici

// The server's tests drive it with strongSwan's own Go client library, govici: a second,
// independent implementation of the protocol checks goipsec's server (and Debian's swanctl, in
// swanctl_test.go, a third). testClient adapts govici to the calls the tests make; the
// hand-written packet layer is used only where a test must send what no client sends
// (rawConn: protocol violations, half-written packets).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	govici "github.com/strongswan/govici/vici"
)

// Outcomes the tests tell apart.
var (
	ErrUnknownCommand = errors.New("vici: unknown command")
	ErrUnknownEvent   = errors.New("vici: unknown event")
)

type testClient struct {
	s *govici.Session
}

func dial(t *testing.T, path string) *testClient {
	t.Helper()
	s, err := govici.NewSession(govici.WithSocketPath(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &testClient{s: s}
}

func (c *testClient) Close() error { return c.s.Close() }

// toGovici converts a message item by item (govici keeps the order of keys).
func toGovici(m *Message) *govici.Message {
	out := govici.NewMessage()
	if m == nil {
		return out
	}
	for _, it := range m.Items() {
		switch it.Kind {
		case KindValue:
			out.Set(it.Key, it.Value)
		case KindList:
			out.Set(it.Key, it.List)
		case KindSection:
			out.Set(it.Key, toGovici(it.Section))
		}
	}
	return out
}

func fromGovici(m *govici.Message) *Message {
	out := NewMessage()
	if m == nil {
		return out
	}
	for _, k := range m.Keys() {
		switch v := m.Get(k).(type) {
		case string:
			out.Set(k, v)
		case []string:
			out.SetList(k, v...)
		case *govici.Message:
			out.SetSection(k, fromGovici(v))
		}
	}
	return out
}

// translate maps govici's errors to the outcomes the tests check. govici reports CMD_UNKNOWN as
// an unexpected response type (2, RFC-less but strongSwan's README numbering) and EVENT_UNKNOWN
// as an unknown event type.
func translate(cmd string, err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "unexpected response type: 2"):
		return fmt.Errorf("%w: %s", ErrUnknownCommand, cmd)
	case strings.Contains(err.Error(), "unknown event type"):
		return fmt.Errorf("%w: %v", ErrUnknownEvent, err)
	}
	return err
}

// Call sends cmd and returns the response; a response with success = no is returned as is (its
// Err method tells the failure), as swanctl reads it.
func (c *testClient) Call(ctx context.Context, cmd string, req *Message) (*Message, error) {
	resp, err := c.s.Call(ctx, cmd, toGovici(req))
	if err != nil && resp != nil {
		return fromGovici(resp), nil
	}
	if err != nil {
		return nil, translate(cmd, err)
	}
	return fromGovici(resp), nil
}

// CallStreaming registers for event, sends cmd, passes each streamed event to fn and unregisters.
// govici hands over only the events; a failed response comes back as an error.
func (c *testClient) CallStreaming(ctx context.Context, cmd, event string, req *Message, fn func(*Message)) error {
	for m, err := range c.s.CallStreaming(ctx, cmd, event, toGovici(req)) {
		if err != nil {
			if m != nil {
				return fmt.Errorf("%s failed: %s", cmd, m.Get("errmsg"))
			}
			return translate(cmd, err)
		}
		fn(fromGovici(m))
	}
	return nil
}

// Listen subscribes to events and passes each to fn until ctx ends or the session fails; then it
// unsubscribes.
func (c *testClient) Listen(ctx context.Context, fn func(event string, m *Message), events ...string) error {
	ch := make(chan govici.Event, 128)
	c.s.NotifyEvents(ch)
	defer c.s.StopEvents(ch)
	if err := c.s.Subscribe(events...); err != nil {
		return translate("", err)
	}
	defer c.s.Unsubscribe(events...)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-ch:
			if !ok {
				return errors.New("session closed")
			}
			fn(ev.Name, fromGovici(ev.Message))
		}
	}
}
