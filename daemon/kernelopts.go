package daemon

import (
	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/dataplane"
)

// childPolicy holds a child's policy and SA settings for the data plane: the fixed priority and
// the XFRM-only options (config refuses those unless daemon.dataplane = kernel). Settings with
// strongSwan's %unique or %unique-dir hold no value until resolve gives them one.
type childPolicy struct {
	priority int
	kernel   dataplane.KernelPolicyOptions
	// noPolicies: policies = no, the Child SA's SAs are installed without policies.
	noPolicies bool
	// markInSA: the inbound SA carries mark_in too (mark_in_sa); otherwise only the inbound
	// and forward policies do.
	markInSA bool
	// setMarkIn and setMarkOut are the SAs' output marks (set_mark_in/out); sameIn and sameOut
	// say that their values are mark_in's and mark_out's (%same).
	setMarkIn, setMarkOut dataplane.Mark
	sameIn, sameOut       bool
	// unique says which of mark_in, mark_out, if_id_in and if_id_out are %unique or %unique-dir.
	unique [numUnique]config.Unique
}

// The settings that may be %unique, indexes into childPolicy.unique and uniqueIDs.
const (
	uMarkIn = iota
	uMarkOut
	uIfIDIn
	uIfIDOut
	numUnique
)

// uniqueIDs are the values a Child SA's %unique settings got (0 where the setting is not unique).
// A rekeyed Child SA keeps its predecessor's, as strongSwan does, so that its policies stay the
// same policies; a new Child SA of the same child gets values of its own (and policies of its
// own, which the unique marks or interface IDs keep apart).
type uniqueIDs [numUnique]uint32

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
	cp := childPolicy{priority: int(ch.Priority), kernel: dataplane.KernelPolicyOptions{
		IfIDIn: ch.IfIDIn, IfIDOut: ch.IfIDOut,
		MarkIn:    dataplane.Mark{Value: ch.MarkIn.Value, Mask: ch.MarkIn.Mask},
		MarkOut:   dataplane.Mark{Value: ch.MarkOut.Value, Mask: ch.MarkOut.Mask},
		Interface: ch.Interface, FwdOut: ch.PoliciesFwdOut,
	},
		noPolicies: !ch.Policies,
		markInSA:   ch.MarkInSA,
		setMarkIn:  dataplane.Mark{Value: ch.SetMarkIn.Value, Mask: ch.SetMarkIn.Mask},
		setMarkOut: dataplane.Mark{Value: ch.SetMarkOut.Value, Mask: ch.SetMarkOut.Mask},
		sameIn:     ch.SetMarkIn.Same,
		sameOut:    ch.SetMarkOut.Same,
	}
	cp.unique[uMarkIn], cp.unique[uMarkOut] = ch.MarkIn.Unique, ch.MarkOut.Unique
	cp.unique[uIfIDIn], cp.unique[uIfIDOut] = ch.IfIDInUnique, ch.IfIDOutUnique
	return cp
}

// hasUnique reports whether any setting is %unique or %unique-dir.
func (cp childPolicy) hasUnique() bool {
	return cp.unique != [numUnique]config.Unique{}
}

// allocUnique gives the %unique settings their values for a new Child SA: one value for all
// %unique settings, one more for each %unique-dir setting (strongSwan's meaning: %unique is
// unique per Child SA, %unique-dir also per direction). next returns a fresh value each call.
func (cp childPolicy) allocUnique(next func() uint32) uniqueIDs {
	var ids uniqueIDs
	var shared uint32
	for i, u := range cp.unique {
		switch u {
		case config.UniqueChild:
			if shared == 0 {
				shared = next()
			}
			ids[i] = shared
		case config.UniqueDir:
			ids[i] = next()
		}
	}
	return ids
}

// withUnique puts the values of ids into the settings that are unique, and resolves %same.
func (cp childPolicy) withUnique(ids uniqueIDs) childPolicy {
	k := &cp.kernel
	if ids[uMarkIn] != 0 {
		k.MarkIn = dataplane.Mark{Value: ids[uMarkIn], Mask: 0xffffffff}
	}
	if ids[uMarkOut] != 0 {
		k.MarkOut = dataplane.Mark{Value: ids[uMarkOut], Mask: 0xffffffff}
	}
	if ids[uIfIDIn] != 0 {
		k.IfIDIn = ids[uIfIDIn]
	}
	if ids[uIfIDOut] != 0 {
		k.IfIDOut = ids[uIfIDOut]
	}
	// %same: the value (not the mask) of mark_in/mark_out.
	if cp.sameIn {
		cp.setMarkIn.Value = k.MarkIn.Value & cp.setMarkIn.Mask
	}
	if cp.sameOut {
		cp.setMarkOut.Value = k.MarkOut.Value & cp.setMarkOut.Mask
	}
	return cp
}

// saMarks returns the marks and interface IDs of a Child SA's inbound and outbound SA.
func (cp childPolicy) saMarks(in, out *dataplane.SAParams) {
	in.IfID, out.IfID = cp.kernel.IfIDIn, cp.kernel.IfIDOut
	if cp.markInSA {
		in.Mark = cp.kernel.MarkIn
	}
	out.Mark = cp.kernel.MarkOut
	in.SetMark, out.SetMark = cp.setMarkIn, cp.setMarkOut
}
