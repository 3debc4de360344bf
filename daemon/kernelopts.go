package daemon

import (
	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
)

// childPolicy holds a child's policy settings for the data plane: the fixed priority and the
// XFRM-only options (config refuses those unless daemon.dataplane = kernel).
type childPolicy struct {
	priority int
	kernel   dataplane.KernelPolicyOptions
}

// childPolicyOf looks the child's settings up in the configuration (zero when the connection or
// child is gone).
func (d *Daemon) childPolicyOf(conn, child string) childPolicy {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[conn]
	if c == nil {
		return childPolicy{}
	}
	for _, ch := range c.cfg.Children {
		if ch.Name == child {
			return childPolicyFrom(ch)
		}
	}
	return childPolicy{}
}

func childPolicyFrom(ch *config.Child) childPolicy {
	return childPolicy{priority: int(ch.Priority), kernel: dataplane.KernelPolicyOptions{
		IfIDIn: ch.IfIDIn, IfIDOut: ch.IfIDOut,
		MarkIn:    dataplane.Mark{Value: ch.MarkIn.Value, Mask: ch.MarkIn.Mask},
		MarkOut:   dataplane.Mark{Value: ch.MarkOut.Value, Mask: ch.MarkOut.Mask},
		Interface: ch.Interface, FwdOut: ch.PoliciesFwdOut,
	}}
}
