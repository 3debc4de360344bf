package vici

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
)

// ErrNoSuchEvent is returned by CallStreaming when the server does not know the event.
var ErrNoSuchEvent = errors.New("vici: the server does not know the event")

// ErrNoSuchCommand is returned by CallStreaming when the server does not know the command.
var ErrNoSuchCommand = errors.New("vici: the server does not know the command")

// CallStreaming is the client side of a streaming command on a connection of its own: it registers
// for event at the VICI socket socketPath, sends cmd with req, hands every event of that name to
// fn in order and returns the response (the caller checks its Err).
//
// goipsec's CLI uses this instead of govici's CallStreaming: govici 0.8.0 picks at random between
// an event and the response when both are waiting, and so can lose the last events, which the
// paged status (goipsec-status-part) cannot afford.
func CallStreaming(ctx context.Context, socketPath, cmd, event string, req *Message, fn func(*Message)) (*Message, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	r := bufio.NewReader(nc)
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if err := WritePacket(nc, &Packet{Type: EventRegister, Name: event}); err != nil {
		return nil, fail(err)
	}
	p, err := ReadPacket(r)
	if err != nil {
		return nil, fail(err)
	}
	if p.Type != EventConfirm {
		return nil, fmt.Errorf("%w %q", ErrNoSuchEvent, event)
	}
	if req == nil {
		req = NewMessage()
	}
	if err := WritePacket(nc, &Packet{Type: CmdRequest, Name: cmd, Message: req}); err != nil {
		return nil, fail(err)
	}
	for {
		p, err := ReadPacket(r)
		if err != nil {
			return nil, fail(err)
		}
		switch p.Type {
		case Event:
			if p.Name == event && p.Message != nil {
				fn(p.Message)
			}
		case CmdResponse:
			return p.Message, nil
		case CmdUnknown:
			return nil, fmt.Errorf("%w %q", ErrNoSuchCommand, cmd)
		default:
			return nil, fmt.Errorf("vici: %s answered with a %v packet", cmd, p.Type)
		}
	}
}
