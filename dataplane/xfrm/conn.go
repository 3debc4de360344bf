package xfrm

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// conn is one NETLINK_XFRM request socket: a request is sent and its answer read before the next
// one is sent (the mutex), so replies never need to be matched across requests.
type conn struct {
	mu   sync.Mutex
	sock *nl.NetlinkSocket
	seq  uint32
}

func dial() (*conn, error) {
	s, err := nl.Subscribe(unix.NETLINK_XFRM)
	if err != nil {
		return nil, fmt.Errorf("xfrm: open netlink socket: %w", err)
	}
	return &conn{sock: s}, nil
}

func (c *conn) close() { c.sock.Close() }

// do sends req and returns the data of the kernel's answer messages of type want (none for a
// plain ACK), or the kernel's error.
func (c *conn) do(req *nl.NetlinkRequest, want uint16) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	req.Seq = c.seq
	if err := c.sock.Send(req); err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		msgs, _, err := c.sock.Receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq {
				continue // a late answer to an earlier request that timed out
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("xfrm: short netlink error")
				}
				if code := int32(ne.Uint32(m.Data)); code != 0 {
					return nil, syscall.Errno(-code)
				}
				return out, nil // the ACK
			case unix.NLMSG_DONE:
				return out, nil
			case want:
				out = append(out, m.Data)
				if m.Header.Flags&unix.NLM_F_MULTI == 0 && req.Flags&unix.NLM_F_ACK == 0 {
					return out, nil
				}
			}
		}
	}
}
